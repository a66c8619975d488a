"""Process-wide settings, applied explicitly by entry points (the CLI, sweep workers, the test
session), never as a side effect of `import minitransformer`: a library must not change the
allocator, threading or umask of the program that imports it.

    from minitransformer import runtime
    runtime.setup()                 # what `python cli.py ...` does first

What setup() changes, and why (each measured on nanoGPT's CPU configuration):

1. glibc's malloc thresholds. A training step allocates and frees dozens of arrays of 0.5-2 MB.
   glibc serves blocks that large with fresh mmap pages (or trims them off the heap on free), so
   every step page-faults and the kernel zeroes ~100 MB: that was a third of the step's CPU time
   (96 -> 65 ms single-threaded). Raising the mmap and trim thresholds makes freed blocks get
   reused, which is what PyTorch's caching allocator achieves by other means. Linux/glibc only;
   with MINITRANSFORMER_KEEP_MALLOC=1 it is skipped.
2. Numba's threading layer: "workqueue" unless NUMBA_THREADING_LAYER is set. The default OpenMP
   threads spin-wait after each parallel loop and fight OpenBLAS's threads for the cores (a matmul
   after a parallel kernel ran 5-10x slower).
3. Optionally, thread counts: `setup(threads=1)` is how sweep workers run, one BLAS and one Numba
   thread each, so that N workers on N cores do not oversubscribe them. BLAS reads its thread
   count when it loads, so a worker process gets THREAD_ENV (worker_env) in its environment before
   NumPy is imported; setup() sets Numba's count, which can change at any time. (OpenBLAS's count
   can also be changed later, through its own C function: blas_threads below.)
4. cores(): how many cores this process may use (its CPU affinity within its cgroup's CPU quota,
   or setup's `threads`), which is how many shards a training step is cut into by default
   (training/shards.py), and blas_threads(n): OpenBLAS's thread count, read or changed while the process runs, through the
   library's own C function. A sharded step runs each shard on its own thread with one BLAS thread.
"""
import ctypes
import ctypes.util
import math
import os
import sys

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")

_done = {}                                              # what setup() has applied in this process


def tune_malloc():
    """Raise glibc's mmap/trim thresholds. Returns True when they were raised."""
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


def setup(threads=None):
    """Apply the settings above (idempotent). threads: Numba threads for this process (BLAS
    threads must come from worker_env before NumPy loads). Returns what was applied."""
    if "malloc" not in _done:
        _done["malloc"] = tune_malloc()
    if "threading_layer" not in _done:
        import numba
        if "NUMBA_THREADING_LAYER" not in os.environ:
            numba.config.THREADING_LAYER = "workqueue"
        _done["threading_layer"] = numba.config.THREADING_LAYER
    if threads is not None:
        import numba
        numba.set_num_threads(min(int(threads), numba.config.NUMBA_NUM_THREADS))
        _done["threads"] = int(threads)
    return dict(_done)


def worker_env(threads=1, base=None):
    """The environment for a worker process: `base` (default os.environ) with every thread count
    of THREAD_ENV set to `threads`."""
    env = dict(os.environ if base is None else base)
    env.update({k: str(threads) for k in THREAD_ENV})
    return env


# --------------------------------------------------------------------------------------------
# Cores and BLAS threads

def cores():
    """The cores this process may use: setup(threads=N)'s N, else the size of its CPU affinity,
    at most its cgroup's CPU quota (a container may see every core of its host but be allowed
    two of them)."""
    if "threads" in _done:
        return _done["threads"]
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:                             # not Linux
        return os.cpu_count() or 1
    quota = cpu_quota()
    return n if quota is None else min(n, quota)


def cpu_quota(path="/sys/fs/cgroup/cpu.max"):
    """Whole CPUs allowed by a cgroup v2 quota ("200000 100000" -> 2, rounded up), or None."""
    try:
        with open(path) as f:
            quota, period = f.read().split()[:2]
        return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        return None


# OpenBLAS's own functions, under the names NumPy's wheels (scipy-openblas, 64-bit ints) and
# other builds export them.
_BLAS_SET = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
             "openblas_set_num_threads64_", "openblas_set_num_threads")
_BLAS_GET = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
             "openblas_get_num_threads64_", "openblas_get_num_threads")


_openblas_found = []                                   # [(get, set) or None] once looked up


def _openblas():
    """(get, set) C functions of the OpenBLAS that NumPy loaded, or None: found among the shared
    libraries this process has mapped (Linux), as threadpoolctl does."""
    if _openblas_found:
        return _openblas_found[0]
    found = None
    try:
        import numpy  # noqa: F401  (loads BLAS)
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower()})
        for path in paths:
            lib = ctypes.CDLL(path)
            get = next((getattr(lib, n) for n in _BLAS_GET if hasattr(lib, n)), None)
            set_ = next((getattr(lib, n) for n in _BLAS_SET if hasattr(lib, n)), None)
            if get is not None and set_ is not None:
                get.restype, set_.argtypes = ctypes.c_int, [ctypes.c_int]
                found = (get, set_)
                break
    except OSError:
        found = None
    _openblas_found.append(found)                      # not in _done: setup() did not apply it
    return found


def blas_threads(n=None):
    """OpenBLAS's thread count; with n, set it to n first. None when NumPy's BLAS is not an
    OpenBLAS this process can reach (then nothing is changed)."""
    fns = _openblas()
    if fns is None:
        return None
    if n is not None:
        fns[1](int(n))
    return int(fns[0]())
