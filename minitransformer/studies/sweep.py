"""The sweep engine: every run of a grid, on local worker processes or a Dask cluster.

    from minitransformer.studies.sweep import SweepSpec, sweep
    spec = SweepSpec(base={"model": "vit", "data": "digits", "max_iters": 50},
                     grid={"init": ["vit", "mimetic"], "lr": [1e-3, 3e-3]}, seeds=[0, 1, 2])
    rows = sweep(spec, "sweeps/demo", workers=2)     # or scheduler="tcp://HOST:8786"

What it writes into out_dir:
    sweep.json         the spec (checked on every rerun: another spec in this folder is an error)
    runs/<name>/       one normal run folder per run, named by its settings (spec.run_name)
    results.csv/.md    the rows and the grouped table (results.py), rewritten after every run

Order of events: the spec, every axis value and every combination are checked (spec.check_spec)
before anything is written; then sweep.json, then the runs. Runs already complete are read, not
redone; interrupted ones resume from their checkpoints (task.run_point). So after Ctrl-C or kill -9
the same call finishes the job, and its results equal an uninterrupted sweep's, bit for bit: each
run is a deterministic function of its settings, computed in a process with one BLAS thread
whatever the backend, and each appears once in results.csv since rows are keyed by run folder.
"""
from pathlib import Path
import fcntl
import os
import sys
import time

from ..errors import ConfigError, RunFolderError
from ..training.runfolder import read_json, run_files, write_json
from .results import make_row, write_results
from .spec import SweepSpec, check_spec  # noqa: F401  SweepSpec is part of this module's API
from .task import run_point


def default_workers():
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                 # not Linux
        return os.cpu_count() or 1


def load_spec(out_dir):
    """The SweepSpec recorded in out_dir/sweep.json (for `sweep --resume DIR`)."""
    path = Path(out_dir) / "sweep.json"
    if not path.is_file():
        raise RunFolderError(f"{out_dir} is not a sweep folder (it has no sweep.json)")
    try:
        return SweepSpec.from_dict(read_json(path))
    except (KeyError, TypeError, AttributeError) as e:
        raise RunFolderError(f"{path} is incomplete or damaged ({e})") from None


def _spec_difference(old, new):
    """A few words on how two normalized specs differ."""
    for part in ("grid", "seeds", "base"):
        if old.get(part) != new.get(part):
            return f"its {part} is {old.get(part)} instead of {new.get(part)}"
    return "its format differs"


def check_folder(out, spec):
    """out_dir may hold this sweep: absent, empty, or a sweep folder with the same spec."""
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"output path {out} is a file, not a folder; choose another --out")
    if (out / "sweep.json").is_file():
        old = read_json(out / "sweep.json")
        new = dict(spec.to_dict(), id=spec.spec_id())
        if old != new:
            raise ConfigError(f"{out} holds a different sweep ({_spec_difference(old, new)}); "
                              f"continue it with `sweep --resume {out}` or choose another --out")
    elif out.is_dir() and any(out.iterdir()):
        raise RunFolderError(f"{out} is not empty and is not a sweep folder; choose another --out")


def _lock(out):
    """An exclusive lock on sweep.json for as long as this sweep runs: two sweeps writing the
    same folder would race. Returns the open file holding it."""
    f = open(out / "sweep.json", "rb")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise RunFolderError(f"{out} is being run by another sweep process; wait for it or "
                             f"stop it first") from None
    return f


def _check_backend(workers, scheduler):
    if scheduler is not None:
        if workers is not None:
            raise ConfigError("--workers is for the local pool; with --scheduler the cluster's "
                              "workers run the tasks")
        return None
    if workers is None:
        return default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"--workers must be a positive integer, got {workers!r}")
    return workers


class SweepProgress:
    """done / running / failed / left and an ETA on stderr, one line rewritten in place; only on
    a terminal. The ETA is the mean wall time of the runs finished so far in this call, times
    the runs left, divided by the runs that fit side by side."""

    def __init__(self, enabled, total, parallel, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.total, self.parallel = total, max(1, parallel)
        self.t0, self.finished_here, self.last = time.monotonic(), 0, 0.0

    def message(self, text):
        """A line above the progress line (always shown: failures are news)."""
        if self.enabled:
            self.stream.write("\r\033[K")
        self.stream.write(text.rstrip("\n") + "\n")
        self.stream.flush()

    def draw(self, done, failed, running, force=False):
        if not self.enabled or (not force and time.monotonic() - self.last < 0.2):
            return
        left = self.total - done
        eta = "?"
        if self.finished_here:
            per_run = (time.monotonic() - self.t0) * self.parallel / self.finished_here
            eta = _hms(per_run * (left - running / 2) / self.parallel)
        self.stream.write(f"\r\033[Ksweep: {done}/{self.total} done ({failed} failed), "
                          f"{running} running, {left - running} waiting, ETA {eta}")
        self.stream.flush()
        self.last = time.monotonic()

    def close(self):
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _hms(seconds):
    s = int(round(max(seconds, 0)))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class _NoBackend:
    """The backend of a sweep with nothing left to run."""
    pending = running = 0

    def close(self, kill=False):
        pass


def _open_backend(workers, scheduler, out, spec):
    """The local pool or the Dask client; a Dask client connects here, before anything is
    written, so a wrong address is one error line and an untouched folder."""
    if scheduler is not None:
        from .cluster import DaskPool
        return DaskPool(scheduler, out, spec.spec_id())
    from .pool import LocalPool
    return LocalPool(workers)


def sweep(spec, out_dir, workers=None, scheduler=None, progress=True):
    """Run every point of spec into out_dir (module docstring); returns the rows of results.csv
    as dicts, in sweep order. workers: local processes (default: the cores); scheduler: a Dask
    scheduler address ("tcp://host:8786") or a distributed.Client, instead of the local pool."""
    workers = _check_backend(workers, scheduler)
    spec, runs = check_spec(spec)
    out = Path(out_dir)
    check_folder(out, spec)
    left = sum(not run_files(out / "runs" / name).summary.is_file() for name, *_ in runs)
    backend = _NoBackend()
    if left:                               # workers only for the runs left to do
        backend = _open_backend(min(workers or 1, left), scheduler, out, spec)
    try:
        out.mkdir(parents=True, exist_ok=True)
        if not (out / "sweep.json").is_file():
            write_json(out / "sweep.json", dict(spec.to_dict(), id=spec.spec_id()))
        lock = _lock(out)
        try:
            rows = _run_all(spec, runs, out, backend, progress, workers or 1)
        finally:
            lock.close()
    except BaseException:                  # Ctrl-C or an error: stop the workers at once
        backend.close(kill=True)
        raise
    backend.close()
    return rows


def _run_all(spec, runs, out, backend, progress, parallel):
    axes = list(spec.grid)
    order = {name: i for i, (name, *_) in enumerate(runs)}
    where = {name: (settings, seed) for name, settings, seed, _ in runs}
    rows = {}

    def record(name, result):
        settings, seed = where[name]
        rows[name] = make_row(settings, seed, f"runs/{name}", result)
        if result.get("traceback"):
            show.message(f"run {name} crashed:\n{result['traceback']}")
        elif result["status"] == "failed":
            show.message(f"run {name} failed: {result['error']}")

    show = SweepProgress(progress, len(runs), getattr(backend, "parallel", parallel))
    (out / "runs").mkdir(exist_ok=True)
    for name, settings, seed, cfg in runs:
        run_dir = out / "runs" / name
        if run_files(run_dir).summary.is_file():       # complete: read it, do not redo it
            record(name, run_point(cfg.to_dict(), run_dir))
        else:
            backend.submit(name, cfg.to_dict(), str(run_dir.resolve()))
    if rows:
        write_results(out, _ordered(rows, order), axes, len(runs))
    try:
        while backend.pending:
            if show.enabled:               # asking a Dask scheduler costs a round trip
                show.draw(len(rows), _failed(rows), backend.running)
            for name, result in backend.results(timeout=0.2):
                show.finished_here += 1            # the ETA's pace: runs finished in this call
                record(name, result)
                write_results(out, _ordered(rows, order), axes, len(runs))
        show.draw(len(rows), _failed(rows), 0, force=True)
    except KeyboardInterrupt:
        show.message(f"interrupted: {len(rows)} of {len(runs)} runs done; run the same command "
                     f"again (or `python cli.py sweep --resume {out}`) to continue")
        raise
    finally:
        write_results(out, _ordered(rows, order), axes, len(runs))
        show.close()
    return _ordered(rows, order)


def _ordered(rows, order):
    return [rows[n] for n in sorted(rows, key=order.__getitem__)]


def _failed(rows):
    return sum(r["status"] == "failed" for r in rows.values())
