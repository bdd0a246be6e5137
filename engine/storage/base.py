"""The storage interface: what the job system and the download route need of a backend."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, ClassVar

__all__ = ["ObjectInfo", "Storage", "UPLOADS", "VIDEOS", "POSTER_EXTENSION", "chunk_key",
           "poster_name", "upload_key", "video_key"]

#: Key prefixes of finished videos and of uploaded images.
VIDEOS = "videos/"
UPLOADS = "uploads/"


def video_key(filename: str) -> str:
    """The key of the finished video ``filename``."""
    return VIDEOS + filename


#: The extension of a video's poster (one JPEG frame, kept beside the video).
POSTER_EXTENSION = ".jpg"


def poster_name(filename: str) -> str:
    """The file name of the poster of the video ``filename`` (kept under ``videos/``)."""
    return filename.rsplit(".", 1)[0] + POSTER_EXTENSION


def upload_key(name: str) -> str:
    """The key of the uploaded image ``name``."""
    return UPLOADS + name


def chunk_key(job_id: str, index: int, extension: str) -> str:
    """The key of a chunked job's part ``index`` (zoomreel.jobs.chunks)."""
    return f"chunks/{job_id}/{index}{extension}"


@dataclass(frozen=True)
class ObjectInfo:
    """What is known of a stored object without reading it.

    Attributes:
        size: its length in bytes.
        modified: when it was written, seconds since the epoch.
        version: changes whenever its bytes do (a modification time, an ETag).
    """

    size: int
    modified: float
    version: str


class Storage(abc.ABC):
    """A place for uploads and videos, addressed by key.

    Every method that reaches a remote store raises
    :class:`~zoomreel.errors.StorageError` (naming the storage and the cause) when it is
    unreachable or refuses; a missing object is not an error (None, or nothing to do).

    Attributes:
        kind: ``local`` or ``s3``; recorded with each finished job (its video's home).
        scratch: the local folder where a render writes its video before
            :meth:`save_file` stores it (for the local folder, the video's final place).
    """

    kind: ClassVar[str]
    scratch: Path

    @abc.abstractmethod
    def describe(self) -> str:
        """The storage in words, for messages (no credentials)."""

    @abc.abstractmethod
    def save_file(self, key: str, path: Path, content_type: str) -> None:
        """Store the complete local file ``path`` under ``key``; the file at ``path`` is
        gone afterwards unless it is the stored file itself (the local folder)."""

    @abc.abstractmethod
    def save_bytes(self, key: str, data: bytes, content_type: str) -> None:
        """Store ``data`` under ``key``."""

    @abc.abstractmethod
    def load_bytes(self, key: str) -> bytes | None:
        """The object's bytes; None when there is none."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object (nothing to do when there is none)."""

    @abc.abstractmethod
    def info(self, key: str) -> ObjectInfo | None:
        """The object's size and version; None when there is none."""

    @abc.abstractmethod
    def open(self, key: str, start: int, length: int) -> BinaryIO:
        """A stream of ``length`` bytes of the object from ``start`` (the caller closes it).
        """

    @abc.abstractmethod
    def list(self, prefix: str) -> Iterator[tuple[str, float]]:
        """``(key, modified)`` of every object whose key starts with ``prefix``."""

    @abc.abstractmethod
    def check(self) -> None:
        """Raise StorageError, saying what is wrong, unless the storage can be used."""

    def local_path(self, key: str) -> Path | None:
        """The object as a local file, where it is one (served as a file)."""
        return None

    def link(self, key: str, ttl: float) -> str | None:
        """A URL that fetches the object without zoomreel, valid ``ttl`` seconds at least
        (a presigned or public bucket URL); None where there is none."""
        return None
