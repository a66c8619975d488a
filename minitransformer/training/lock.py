"""Who may write a run folder: one process at a time, by an exclusive flock(2) on its lock file.

Sweeps start many runs at once and users start a second `train` on a live folder by mistake; the
lock turns both into one clear line naming the live process. The kernel drops the lock when its
holder ends in any way (kill -9 included), so a crashed run never blocks its own --resume.
"""
import fcntl
import os
import time
from pathlib import Path

from ..errors import RunFolderError

def check_not_in_use(run_dir):
    """RunFolderError naming the live process that holds run_dir's lock, if one does."""
    path = Path(run_dir) / LOCK
    if path.is_file():
        lock_folder(run_dir, write_pid=False).release()


LOCK = ".lock"                   # the lock file, inside the run folder


class FolderLock:
    """An exclusive flock(2) on a run folder's lock file, held until release(). The kernel
    releases it when the process ends in any way (kill -9 included), so a crashed run never
    blocks its own --resume; the file itself stays (deleting it would let two holders in)."""

    def __init__(self, fd, path):
        self.fd, self.path = fd, path

    def release(self):
        if self.fd is not None:
            os.close(self.fd)                           # closing the descriptor drops the lock
            self.fd = None


def lock_folder(run_dir, write_pid=True):
    """Take run_dir's lock for this process's writes, or raise one RunFolderError naming the
    live process that holds it. The holder's PID is written into the lock file (write_pid=False:
    a probe that only checks, as check_not_in_use)."""
    path = Path(run_dir) / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # not inherited by child processes
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _lock_holder(fd)
        os.close(fd)
        raise RunFolderError(f"{run_dir} is in use by process {holder}, which is writing to it; "
                             f"wait for it to end (or stop it), or choose another folder") from None
    except BaseException:
        os.close(fd)
        raise
    if write_pid:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return FolderLock(fd, path)


def _lock_holder(fd, tries=50):
    """The PID written by the lock's holder (it writes it right after taking the lock)."""
    for _ in range(tries):
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if text.isdigit():
            return int(text)
        time.sleep(0.01)
    return "(unknown pid)"
