"""Keep freed memory in the process instead of handing it back to the OS after every array.

A training step allocates and frees dozens of arrays of 0.5-2 MB. glibc serves blocks that large
with fresh mmap pages (or trims them off the heap on free), so every step page-faults and the
kernel zeroes ~100 MB: on nanoGPT's configuration that was a third of the step's CPU time
(96 -> 65 ms single-threaded). Raising glibc's mmap and trim thresholds makes freed blocks get
reused, which is what PyTorch's caching allocator achieves by other means. Linux/glibc only;
elsewhere, or with MINITRANSFORMER_KEEP_MALLOC=1, nothing changes.
"""
import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def tune():
    """Returns True when the thresholds were raised."""
    if not sys.platform.startswith("linux") or os.environ.get("MINITRANSFORMER_KEEP_MALLOC"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):                  # musl and others have no mallopt
        return False
    ok = mallopt(_M_MMAP_THRESHOLD, 512 * 2**20)       # blocks below 512 MB come from the heap
    ok &= mallopt(_M_TRIM_THRESHOLD, 1024 * 2**20)     # keep up to 1 GB of free heap
    ok &= mallopt(_M_TOP_PAD, 64 * 2**20)              # grow the heap in 64 MB steps
    return bool(ok)


TUNED = tune()
