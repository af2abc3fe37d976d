"""The data folder is private: 0700, every file in it 0600, whatever the umask.

The folder holds the users' images, their password hashes and session tokens (SQLite), and
the archives made for them. The service owns its process, so :func:`make_private` sets the
process umask to 077 when a command starts working on a data folder: every file that the
service or its libraries create afterwards (SQLite's database, WAL and shared-memory files,
archives, thumbnails, uploads) is private from its first byte. It also tightens whatever an
earlier version left wider (folders to 0700, files to 0600), so an old data folder becomes
private at the next start.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600


def make_private(data_dir: Path) -> Path:
    """Set the process umask to 077, create ``data_dir`` (0700) if missing, and take every
    permission for group and others from it and from everything under it. Returns it."""
    os.umask(PRIVATE_UMASK)
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    _tighten(data_dir, DIR_MODE)
    for root, dirs, files in os.walk(data_dir):
        for name in dirs:
            _tighten(Path(root) / name, DIR_MODE)
        for name in files:
            _tighten(Path(root) / name, FILE_MODE)
    return data_dir


def _tighten(path: Path, mode: int) -> None:
    try:
        info = path.lstat()
    except FileNotFoundError:  # removed meanwhile (a finished upload)
        return
    if stat.S_ISLNK(info.st_mode):
        return
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, stat.S_IMODE(info.st_mode) & mode)
