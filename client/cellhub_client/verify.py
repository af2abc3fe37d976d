"""Is a downloaded archive the one the server made? Two checks, both before the file gets
its final name:

1. ``check_digest``: the SHA-256 of the whole file is the download's ``ETag`` (the server
   records it when the archive is complete; the job JSON's ``sha256`` says the same);
2. ``check_members``: every member's SHA-256 and size are those ``metadata.json`` lists
   (``files``: member name -> ``{"sha256", "size"}``, every member but itself), no member
   is missing or unlisted, and zip's own CRC-32 holds. Members are read in 1 MiB pieces, so
   memory stays flat whatever their size.
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

from cellhub_client.errors import ArchiveCorrupt

METADATA = "metadata.json"
SHOWN = 5


def check_digest(actual: str, expected: str, what: str) -> None:
    """``ArchiveCorrupt`` unless the hex digests ``actual`` and ``expected`` agree."""
    if actual.lower() != expected.lower():
        raise ArchiveCorrupt(f"{what}: the file's SHA-256 is {actual}, the server's is {expected}")


def check_members(path: Path) -> dict[str, Any]:
    """The archive's ``metadata.json`` once every member matches it; ``ArchiveCorrupt``
    naming the first few members that do not."""
    try:
        with zipfile.ZipFile(path) as archive:
            metadata = json.loads(archive.read(METADATA))
            files = _listed_files(metadata)
            names = [info.filename for info in archive.infolist() if not info.is_dir()]
            problems = [f"{name}: not listed in {METADATA}" for name in names if name != METADATA and name not in files]
            problems += [f"{name}: missing" for name in files if name not in set(names)]
            for name in (n for n in names if n in files):
                digest, size = _member_digest(archive, name)
                want = files[name]
                if digest != want.get("sha256") or size != want.get("size"):
                    problems.append(f"{name}: SHA-256 {digest} ({size} bytes), {METADATA} says "
                                    f"{want.get('sha256')} ({want.get('size')} bytes)")
    except (zipfile.BadZipFile, OSError, ValueError, KeyError) as exc:
        raise ArchiveCorrupt(f"{path.name} is not a readable export archive: {exc}") from None
    if problems:
        more = f" (and {len(problems) - SHOWN} more)" if len(problems) > SHOWN else ""
        raise ArchiveCorrupt("the archive does not match its metadata.json: " + "; ".join(problems[:SHOWN]) + more)
    return metadata


def _listed_files(metadata: Any) -> dict[str, dict]:
    files = metadata.get("files") if isinstance(metadata, dict) else None
    if not isinstance(files, dict):
        raise ValueError(f"{METADATA} has no 'files' table")
    return files


def _member_digest(archive: zipfile.ZipFile, name: str) -> tuple[str, int]:
    sha, size = hashlib.sha256(), 0
    with archive.open(name) as member:  # zipfile checks the CRC-32 at the end (BadZipFile)
        while chunk := member.read(1 << 20):
            sha.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), size
