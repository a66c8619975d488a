"""The local backend: N worker processes on this machine, no server needed.

    with LocalPool(workers=2) as pool:
        pool.submit(key, train_dict, run_dir)
        for key, result in pool.results(timeout=0.2): ...

Why processes we start ourselves, rather than multiprocessing's pool: a worker must get ONE BLAS
thread, and OpenBLAS reads its thread count when NumPy loads, which in a spawned multiprocessing
child happens before any initializer runs (the child imports the parent's main module first). So
each worker is `python -m minitransformer.studies.pool` started with runtime.worker_env(1) as its
environment: one BLAS and one Numba thread, and N workers on N cores do not oversubscribe them.
The worker's PYTHONPATH starts with the folder holding the package the parent imported, so both
run the same code.

Protocol: one JSON line per task on the worker's stdin ({"key", "train", "run_dir"}), one JSON
line per result on a private copy of its stdout (the training code's own prints go to stderr).
A worker runs in a session of its own, so Ctrl-C on the terminal reaches only the sweep, which
then stops its workers with SIGTERM: each checkpoints at its current step (training/signals.py)
and exits, so resuming loses nothing. A worker dies with its parent on Linux (PR_SET_PDEATHSIG),
so a sweep killed with kill -9 leaves no orphan writing into its run folders. A worker
that dies during a task (killed, out of memory) is replaced and the task retried once: it resumes
from the run's checkpoint; a second death makes the run a failed row.
"""
from pathlib import Path
import ctypes
import json
import os
import selectors
import signal
import subprocess
import sys

from .. import runtime

MAX_ATTEMPTS = 2                      # a task whose worker dies twice is reported as failed
_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """preexec_fn of a worker: SIGKILL when the sweep process dies (Linux; elsewhere the worker
    exits when its stdin closes, after its current run)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass


def worker_environment():
    """runtime.worker_env(1) with this package's folder first on PYTHONPATH."""
    env = runtime.worker_env(1)
    root = str(Path(__file__).resolve().parents[2])
    rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([root] + rest)
    return env


class _Worker:
    def __init__(self, env):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "minitransformer.studies.pool"], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
            start_new_session=True, preexec_fn=_die_with_parent)
        self.task = None                  # (key, train_dict, run_dir, attempt) while busy

    def send(self, task):
        self.task = task
        key, train, run_dir, _ = task
        try:
            self.proc.stdin.write(json.dumps({"key": key, "train": train, "run_dir": run_dir})
                                  + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:           # it died: results() sees its end and retries the task
            pass

    def stop(self, how="close", timeout=30):
        """End the worker: "close" its input (it finishes its run first), "term" (it checkpoints
        at its current step and exits) or "kill"; SIGKILL after `timeout` seconds."""
        if self.proc.poll() is None:
            if how == "kill":
                self.proc.kill()
            elif how == "term":
                self.proc.terminate()
        self.finish(timeout)

    def finish(self, timeout):
        try:
            self.proc.stdin.close()       # the worker exits at end of input
        except (OSError, ValueError):     # a broken pipe to a dead worker: nothing to flush
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except (OSError, ValueError):  # a broken pipe to a dead worker: nothing to flush
                pass


class LocalPool:
    """`workers` worker processes fed from a queue of tasks (see the module docstring)."""

    def __init__(self, workers):
        self.env = worker_environment()
        self.workers = [_Worker(self.env) for _ in range(workers)]
        self.queue = []                   # tasks not yet sent, in order
        self.selector = selectors.DefaultSelector()
        for w in self.workers:
            self.selector.register(w.proc.stdout, selectors.EVENT_READ, w)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(kill=exc_type is not None)

    def submit(self, key, train_dict, run_dir):
        self.queue.append((key, train_dict, str(run_dir), 1))

    @property
    def running(self):
        return sum(w.task is not None for w in self.workers)

    @property
    def pending(self):
        return len(self.queue) + self.running

    def _feed(self):
        for w in self.workers:
            if w.task is None and self.queue:
                w.send(self.queue.pop(0))

    def _replace(self, dead):
        """A worker died: start another in its place; returns the new one."""
        self.selector.unregister(dead.proc.stdout)
        dead.stop("kill")
        new = _Worker(self.env)
        self.workers[self.workers.index(dead)] = new
        self.selector.register(new.proc.stdout, selectors.EVENT_READ, new)
        return new

    def results(self, timeout):
        """Send queued tasks to idle workers, wait up to `timeout` s; yield (key, result) of the
        tasks that finished."""
        self._feed()
        for sel_key, _ in self.selector.select(timeout):
            w = sel_key.data
            line = w.proc.stdout.readline()
            if line:
                task, w.task = w.task, None
                yield task[0], json.loads(line)
                continue
            task, code = w.task, w.proc.wait()
            self._replace(w)
            if task is None:
                continue
            key, train, run_dir, attempt = task
            if attempt < MAX_ATTEMPTS:    # resumes from the run's checkpoint
                self.queue.insert(0, (key, train, run_dir, attempt + 1))
            else:
                how = f"signal {-code}" if code < 0 else f"exit status {code}"
                yield key, {"status": "failed", "summary": None, "traceback": None, "log": "",
                            "files": None, "error": f"the worker process died twice during "
                                                    f"this run ({how})"}
        self._feed()

    def close(self, kill=False):
        """Stop the workers: at once with kill (Ctrl-C, an error: each checkpoints at its current
        step first), else when their runs are done (there are none left when a sweep ends)."""
        for w in self.workers:
            if kill and w.proc.poll() is None:
                w.proc.terminate()
        for w in self.workers:
            w.finish(timeout=10 if kill else 30)
        self.selector.close()


def worker_main():
    """The worker process: tasks in on stdin, results out on a private copy of stdout."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)                          # anything else printed goes to stderr
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    runtime.setup(threads=1)
    from .task import run_point
    try:
        for line in sys.stdin:
            msg = json.loads(line)
            result = run_point(msg["train"], msg["run_dir"])
            proto.write(json.dumps(result, allow_nan=True) + "\n")
    except KeyboardInterrupt:             # SIGTERM from the sweep: the run has checkpointed
        sys.exit(143)


if __name__ == "__main__":
    worker_main()
