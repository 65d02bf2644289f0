"""File naming and the small durable-write helpers every storage module shares.

Segment files are named by their base offset as a 20-digit zero-padded decimal number
(``00000000000000001234.log``), so that a plain sort of names is a sort by offset.

Atomic replacement (``atomic_write``): write a temporary file in the same directory, fsync it,
rename it over the target, fsync the directory.  After a crash either the old or the new content is
there, never a mix.

Checkpoint files (``write_checkpoint`` / ``read_checkpoint``) use Kafka's text layout: a version
line ``0``, a count line, then ``topic partition offset`` lines.
"""

from __future__ import annotations

import os
import re
import uuid

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
SNAPSHOT_SUFFIX = ".snapshot"
CLEANED_SUFFIX = ".cleaned"
DELETED_SUFFIX = ".deleted"
SWAP_SUFFIX = ".swap"
TMP_SUFFIX = ".tmp"

_SEGMENT_NAME = re.compile(r"^(\d{20})\.(log|index|timeindex|snapshot)$")


def offset_file_name(base_offset: int, suffix: str) -> str:
    return f"{base_offset:020d}{suffix}"


def parse_offset_file_name(name: str) -> tuple[int, str] | None:
    """(base offset, suffix) for a segment-family file name, None for anything else."""
    match = _SEGMENT_NAME.match(name)
    if not match:
        return None
    return int(match.group(1)), "." + match.group(2)


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_synced(path: str, data) -> None:
    """Write ``data`` as the whole content of a new file at ``path`` and fsync it; on failure (a full
    disk) the partial file is removed, so no half-written leftovers pile up."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(fd, data)
        os.fsync(fd)
    except OSError:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)


def atomic_write(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file, whole."""
    directory = os.path.dirname(path) or "."
    # a short temporary name: the target's own name may already be near the 255-byte limit
    tmp = os.path.join(directory, f".{uuid.uuid4().hex[:12]}{TMP_SUFFIX}")
    write_synced(tmp, data)
    os.replace(tmp, path)
    fsync_dir(directory)


def write_all(fd: int, data) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024


def writev_all(fd: int, pieces: list, size: int) -> None:
    """Write ``pieces`` (buffers adding up to ``size`` bytes) with one writev when the kernel allows."""
    if len(pieces) > _IOV_MAX:
        pieces = [b"".join(pieces)]
    written = os.writev(fd, pieces)
    if written < size:  # a short write (signal, nearly full disk): finish the rest plainly
        write_all(fd, memoryview(b"".join(pieces))[written:])


def write_checkpoint(path: str, entries: dict[tuple[str, int], int]) -> None:
    lines = ["0", str(len(entries))]
    lines += [f"{topic} {partition} {offset}" for (topic, partition), offset in sorted(entries.items())]
    atomic_write(path, ("\n".join(lines) + "\n").encode())


def read_checkpoint(path: str) -> dict[tuple[str, int], int]:
    """Entries of a checkpoint file; a missing or malformed file reads as empty (it is a hint)."""
    try:
        with open(path, encoding="ascii") as fh:
            lines = fh.read().splitlines()
    except (FileNotFoundError, UnicodeDecodeError):
        return {}
    try:
        if lines[0] != "0" or int(lines[1]) != len(lines) - 2:
            return {}
        entries = {}
        for line in lines[2:]:
            topic, partition, offset = line.split(" ")
            entries[(topic, int(partition))] = int(offset)
        return entries
    except (IndexError, ValueError):
        return {}
