"""The documentation: the configuration page made from the settings table, the README's
two commands, and no machine's own folders named anywhere in the repository."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from zoomreel.frontends.config import TABLE_MARKERS, markdown_table, with_table

ROOT = Path(__file__).resolve().parent.parent
CONFIGURATION = ROOT / "docs" / "configuration.md"
REGENERATE = "python -m zoomreel.frontends.config --write docs/configuration.md"

# Folders that exist on one machine only. Each pattern is built from pieces so that this
# file does not name what it looks for. A path counts where it starts (not inside a URL
# such as example.com/work/).
_START = r"(?<![\w.~-])"
_SEP = "/"
MACHINE_LOCAL = re.compile("|".join([
    _START + _SEP + "work" + _SEP,
    _START + _SEP + "root" + _SEP,
    _START + _SEP + "home" + _SEP + r"[\w.-]+" + _SEP,
    _START + _SEP + "Users" + _SEP + r"[\w.-]+",
    r"\b[A-Za-z]:\\+" + "Users" + r"\\+",
    r"\.\." + _SEP + "shared" + _SEP,
]))


@pytest.mark.unit
def test_the_configuration_page_is_made_from_the_settings_table() -> None:
    text = CONFIGURATION.read_text()
    assert all(marker in text for marker in TABLE_MARKERS)
    assert text == with_table(text), (
        f"docs/configuration.md is stale: regenerate it with `{REGENERATE}`")
    assert markdown_table() in text


@pytest.mark.unit
def test_with_table_replaces_only_what_lies_between_the_markers() -> None:
    begin, end = TABLE_MARKERS
    page = f"# Settings\n\nbefore\n{begin}\n| an old | table |\n{end}\nafter\n"
    assert with_table(page) == (
        f"# Settings\n\nbefore\n{begin}\n{markdown_table()}\n{end}\nafter\n")
    with pytest.raises(ValueError, match="settings: end"):
        with_table(f"no table here\n{begin}\n")


@pytest.mark.unit
def test_the_readme_names_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "pip install . && zoomreel serve" in readme
    assert re.search(r"^tox\b", readme, re.MULTILINE)


@pytest.mark.unit
def test_the_pattern_finds_machine_local_paths() -> None:
    home = _SEP + "home" + _SEP + "alice" + _SEP
    for found in (_SEP + "work" + _SEP + "corpus", "cd " + home + "data",
                  "C:" + "\\" + "Users" + "\\" + "alice", "--corpus .." + _SEP + "shared" + _SEP):
        assert MACHINE_LOCAL.search(found), found
    for fine in ("https://example.com" + _SEP + "work" + _SEP, "/srv/zoomreel",
                 "/usr/bin/chromium", "~/.cache/zoomreel", "$ZOOMREEL_CORPUS/photo.jpg"):
        assert not MACHINE_LOCAL.search(fine), fine


@pytest.mark.system  # runs git ls-files
def test_no_tracked_file_names_a_machine_local_path() -> None:
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    names = subprocess.run([git, "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    found = []
    for name in filter(None, names):
        path = ROOT / name
        if not path.is_file():  # deleted in the working tree, or a submodule
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:  # binary
            continue
        for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            if MACHINE_LOCAL.search(line):
                found.append(f"{name}:{number}: {line.strip()}")
    assert not found, ("machine-local paths (write PATH/TO/..., $ZOOMREEL_CORPUS or a "
                       "flag instead):\n" + "\n".join(found))
