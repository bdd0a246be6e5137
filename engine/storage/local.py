"""The local backend: a folder per key prefix under the data dir (``videos/``,
``uploads/``), as zoomreel has always kept them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .base import ObjectInfo, Storage, video_key

__all__ = ["LocalStorage"]


class LocalStorage(Storage):
    """Objects as files under ``root`` (the data dir): key ``videos/x.mp4`` is
    ``root/videos/x.mp4``. Renders write straight into ``root/videos`` (the scratch
    folder), so storing a result is a rename at most.

    Args:
        root: the data dir.
    """

    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.scratch = self.root / video_key("").rstrip("/")

    def describe(self) -> str:
        return f"the local folder {self.root}"

    def _path(self, key: str) -> Path:
        return self.root / key

    def save_file(self, key: str, path: Path, content_type: str) -> None:
        target = self._path(key)
        if Path(path) == target:
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(path, target)
        except OSError:  # another file system: copy, then remove
            shutil.move(path, target)

    def save_bytes(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def load_bytes(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def info(self, key: str) -> ObjectInfo | None:
        try:
            st = self._path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not os.path.isfile(self._path(key)):
            return None
        return ObjectInfo(st.st_size, st.st_mtime, str(st.st_mtime_ns))

    def open(self, key: str, start: int, length: int) -> BinaryIO:
        stream = open(self._path(key), "rb")
        stream.seek(start)
        return stream

    def list(self, prefix: str) -> Iterator[tuple[str, float]]:
        folder, _, start = prefix.rpartition("/")
        try:
            entries = list(os.scandir(self.root / folder))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if entry.name.startswith(start) and entry.is_file():
                try:
                    modified = entry.stat().st_mtime
                except FileNotFoundError:
                    continue
                yield f"{folder}/{entry.name}" if folder else entry.name, modified

    def check(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def local_path(self, key: str) -> Path | None:
        path = self._path(key)
        return path if path.is_file() else None
