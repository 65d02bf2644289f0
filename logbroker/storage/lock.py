"""The data directory's owner lock: ``<data>/.lock``.

Exactly one writer process per data directory.  The owner holds an exclusive ``flock`` on the file
for as long as it runs and writes its pid (and, when serving, its listen address) into it as
``pid=<n>`` / ``listen=<host:port>`` lines.  The kernel drops the lock when the process dies, so a
SIGKILLed owner never leaves the directory locked; the stale text is just overwritten.  A second
writer gets DataDirLockedError naming the owner's pid.  Read-only opens do not take the lock.
"""

from __future__ import annotations

import fcntl
import os

from ..errors import DataDirLockedError

LOCK_FILE = ".lock"


def read_lock_owner(data_dir: str) -> dict[str, str]:
    """The ``key=value`` lines of the lock file (may be stale if nobody holds the lock)."""
    try:
        with open(os.path.join(data_dir, LOCK_FILE), encoding="utf-8") as fh:
            text = fh.read()
    except (FileNotFoundError, UnicodeDecodeError):
        return {}
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def is_locked(data_dir: str) -> bool:
    """True when some process holds the lock right now."""
    path = os.path.join(data_dir, LOCK_FILE)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class DataDirLock:
    def __init__(self, data_dir: str):
        self.data_dir = data_dir
        self.path = os.path.join(data_dir, LOCK_FILE)
        self.fd = -1

    def acquire(self, *, listen: str | None = None) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            owner = read_lock_owner(self.data_dir)
            pid = owner.get("pid")
            where = f", serving on {owner['listen']}" if owner.get("listen") else ""
            raise DataDirLockedError(
                f"data directory {self.data_dir} is in use by process {pid or '(unknown pid)'}{where}; "
                f"stop that process first (read-only commands such as consume work meanwhile)",
                owner_pid=int(pid) if pid and pid.isdigit() else None, listen=owner.get("listen")) from None
        self.fd = fd
        self.update(listen=listen)

    def update(self, *, listen: str | None = None) -> None:
        text = f"pid={os.getpid()}\n" + (f"listen={listen}\n" if listen else "")
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, text.encode(), 0)

    def release(self) -> None:
        if self.fd >= 0:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = -1
