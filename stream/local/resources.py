"""Files the installed tool needs at run time, shipped inside the package under ``resources/``.

They are read with :mod:`importlib.resources`, so ``esn-pulse`` works from a wheel anywhere, not
only from a git checkout. Programs that need a file on disk (Maven, the broker, Prometheus) get
a copy in their own state directory: a running broker never depends on where the package lives,
and an upgrade of the package cannot change a file under it.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path


def _packaged(relative: str) -> Traversable:
    node = resources.files("stream.local").joinpath("resources")
    for part in relative.split("/"):
        node = node.joinpath(part)
    return node


def packaged_text(relative: str) -> str:
    """The text of a shipped file, e.g. ``"kafka/pom.xml"``."""
    return _packaged(relative).read_text(encoding="utf-8")


def packaged_names(relative_dir: str, suffix: str) -> list[str]:
    """Sorted names of the shipped files in ``relative_dir`` ending in ``suffix``."""
    return sorted(
        node.name
        for node in _packaged(relative_dir).iterdir()
        if node.is_file() and node.name.endswith(suffix)
    )


def install(relative: str, directory: Path) -> Path:
    """Copy a shipped file into ``directory`` (rewritten only when it differs); its path there."""
    text = packaged_text(relative)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / relative.rsplit("/", 1)[-1]
    if not target.is_file() or target.read_text(encoding="utf-8") != text:
        # Written aside, then renamed: a process reading the file never sees half of it.
        staging = target.with_name(target.name + ".part")
        staging.write_text(text, encoding="utf-8")
        staging.replace(target)
    return target


def install_dir(relative_dir: str, suffix: str, directory: Path) -> list[Path]:
    """Copy the shipped files of ``relative_dir`` ending in ``suffix`` into ``directory``; a
    stale file there with that suffix and no shipped twin is removed. Returns the copies."""
    names = packaged_names(relative_dir, suffix)
    copies = [install(f"{relative_dir}/{name}", directory) for name in names]
    for stale in directory.glob(f"*{suffix}"):
        if stale.name not in names:
            stale.unlink()
    return copies
