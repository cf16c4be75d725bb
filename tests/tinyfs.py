"""A tiny tmpfs: a filesystem that fills up for real (mounting needs root, which these machines have)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def tiny_tmpfs(where: Path, size_kib: int = 64) -> Iterator[Path]:
    """Mount a tmpfs of ``size_kib`` at ``where`` (made if missing); skip the test where that is impossible."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(where)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(mount: Path, leave_kib: int) -> Path:
    """Fill the filesystem at ``mount`` until about ``leave_kib`` KiB are free; returns the filler (delete it to
    give the space back)."""
    free = shutil.disk_usage(mount).free
    filler = mount / "filler"
    filler.write_bytes(b"x" * max(0, free - leave_kib * 1024))
    return filler
