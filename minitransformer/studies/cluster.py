"""The Dask backend: each run a task on an existing Dask cluster (`sweep --scheduler ADDRESS`).

    pool = DaskPool("tcp://127.0.0.1:8786", out_dir, spec_id)   # same interface as LocalPool

dask.distributed is the optional extra `cluster`; this module imports it only when a sweep asks
for a scheduler, so the package works without it.

A task (dask_task) is task.run_point on a worker, hence idempotent: a run already complete is
read, not redone; one that was interrupted resumes from its checkpoint. Dask reruns a task whose
worker died (up to its `distributed.scheduler.allowed-failures`, 3 by default; after that the run
is a failed row), and retries once a task that raised.

Where a task writes: if the worker sees this sweep's sweep.json at the same path (a file system
shared with the client, the usual HPC setup), it trains straight into DIR/runs/<name>, so a
retried task resumes from the checkpoint even on another machine. Otherwise it trains into a
scratch folder of its own machine (<tmp>/minitransformer-sweeps/<spec id>/<name>, which a retry
on the same machine resumes) and returns the run's small files (config, metrics, telemetry,
summary) with its result; the client writes them into DIR/runs/<name>, so results.csv and the
curves are complete without a shared file system (the checkpoint stays on the worker).
"""
from pathlib import Path
import tempfile
import time

from .. import runtime
from ..errors import ConfigError, MissingDependency, RunFolderError
from ..training.runfolder import atomic_write, read_json, run_files
from .task import run_point

CLUSTER_EXTRA = 'dask.distributed is needed for --scheduler: pip install -e ".[cluster]"'


def _distributed():
    try:
        import distributed
    except ImportError:
        raise MissingDependency(CLUSTER_EXTRA) from None
    return distributed


def connect(scheduler, timeout=10):
    """A distributed.Client for `scheduler` (an address, or a Client used as it is)."""
    distributed = _distributed()
    if isinstance(scheduler, distributed.Client):
        return scheduler, False
    if not isinstance(scheduler, str) or "://" not in scheduler:
        raise ConfigError(f"--scheduler must be an address like tcp://HOST:8786, got "
                          f"{scheduler!r}")
    try:
        return distributed.Client(scheduler, timeout=timeout, set_as_default=False), True
    except (OSError, TimeoutError) as e:
        raise ConfigError(f"--scheduler {scheduler}: cannot connect ({type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else 'no answer'})") from None


def shares_folder(sweep_dir, spec_id):
    """True when this machine sees the client's sweep folder (same path, same spec)."""
    path = Path(sweep_dir) / "sweep.json"
    try:
        return path.is_file() and read_json(path).get("id") == spec_id
    except (OSError, RunFolderError):
        return False


def scratch_dir(spec_id, name):
    return Path(tempfile.gettempdir()) / "minitransformer-sweeps" / spec_id / name


def dask_task(train_dict, run_dir, sweep_dir, spec_id):
    """One run on a Dask worker (module docstring); returns run_point's result plus in_place."""
    runtime.setup(threads=1)         # one Numba thread; the nanny already set one BLAS thread
    in_place = shares_folder(sweep_dir, spec_id)
    where = run_dir if in_place else scratch_dir(spec_id, Path(run_dir).name)
    if not in_place:
        Path(where).parent.mkdir(parents=True, exist_ok=True)
    result = run_point(train_dict, where, want_files=not in_place)
    result["in_place"] = in_place
    return result


def write_returned(run_dir, files):
    """The small files a task returned, into the client's run folder (summary.json last, so a
    folder with a summary is complete). A checkpoint there from an earlier attempt elsewhere
    does not belong to these results and is removed."""
    f = run_files(run_dir)
    f.dir.mkdir(parents=True, exist_ok=True)
    for path in (f.config, f.metrics, f.telemetry, f.sharpness, f.summary):
        if path.name in files:
            atomic_write(path, files[path.name].encode("utf-8"))
    f.checkpoint.unlink(missing_ok=True)


def _failure(exc):
    lines = str(exc).strip().splitlines()
    return {"status": "failed", "summary": None, "traceback": None, "log": "", "files": None,
            "error": f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")}


class DaskPool:
    """Runs as Dask tasks, with LocalPool's interface (submit, results, running, pending,
    close)."""

    def __init__(self, scheduler, sweep_dir, spec_id):
        distributed = _distributed()
        self.client, self.own_client = connect(scheduler)
        self.sweep_dir, self.spec_id = str(Path(sweep_dir).resolve()), spec_id
        # this client's loop: without it, as_completed looks for a default client
        self.done = distributed.as_completed([], loop=self.client.loop, with_results=False)
        self.futures = {}                  # future -> (run name, run_dir)
        self.parallel = max(1, sum(self.client.nthreads().values()))

    def submit(self, name, train_dict, run_dir):
        # The key names the sweep and the run: submitting it again while the cluster still
        # holds it returns the same task instead of a second copy.
        fut = self.client.submit(dask_task, train_dict, run_dir, self.sweep_dir, self.spec_id,
                                 key=f"minitransformer-sweep-{self.spec_id}-{name}",
                                 retries=1, pure=False)
        self.futures[fut] = (name, run_dir)
        self.done.add(fut)

    @property
    def pending(self):
        return len(self.futures)

    @property
    def running(self):
        keys = {f.key for f in self.futures}
        return sum(k in keys for ks in self.client.processing().values() for k in ks)

    def results(self, timeout):
        """Yield (name, result) of the tasks finished within `timeout` seconds."""
        end = time.monotonic() + timeout
        batch = self.done.next_batch(block=False)
        while not batch and time.monotonic() < end:
            time.sleep(0.02)
            batch = self.done.next_batch(block=False)
        for fut in batch:
            name, run_dir = self.futures.pop(fut)
            if fut.status == "finished":
                result = fut.result()
                if not result.get("in_place") and result.get("files"):
                    write_returned(run_dir, result["files"])
            elif fut.status == "error":    # KilledWorker after too many deaths, a lost task
                result = _failure(fut.exception())
            else:                          # cancelled by someone else's client
                result = _failure(RuntimeError(f"the Dask task was {fut.status}"))
            fut.release()
            yield name, result

    def close(self, kill=False):
        if kill and self.futures:
            self.client.cancel(list(self.futures))
        self.futures.clear()
        if self.own_client:
            self.client.close()
