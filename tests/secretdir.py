"""A directory of secrets laid out the way Kubernetes mounts a Secret: each key a symlink
through `..data` to a timestamped directory, all swapped at once on an update."""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from pathlib import Path

_serial = itertools.count()


def write_secret_dir(path: Path, files: Mapping[str, str]) -> None:
    """Replace the directory's content atomically, as the kubelet does."""
    path.mkdir(parents=True, exist_ok=True)
    version = path / f"..2026_12_01_{next(_serial):06d}"
    version.mkdir()
    for name, value in files.items():
        (version / name).write_text(value + "\n")
    staging = path / "..data_tmp"
    staging.unlink(missing_ok=True)
    staging.symlink_to(version.name)
    old = os.readlink(path / "..data") if (path / "..data").is_symlink() else None
    os.replace(staging, path / "..data")
    for name in files:
        link = path / name
        if not link.is_symlink():
            link.symlink_to(f"..data/{name}")
    for entry in path.iterdir():
        # Keys that left the Secret: their links dangle and are removed.
        if entry.is_symlink() and not entry.name.startswith("..") and entry.name not in files:
            entry.unlink()
    if old is not None:
        for file in (path / old).iterdir():
            file.unlink()
        (path / old).rmdir()
