"""One run of a sweep as a task that any backend can execute, any number of times.

    result = run_point(train_dict, run_dir)

Idempotent: a run folder with a summary.json is complete and is returned as it is; one with a
config.json but no summary was interrupted and is resumed from its checkpoint (training's resume
is bit-identical, see training/loop.py); anything else starts afresh. So a task repeated after a
crash, a kill -9 or a dead Dask worker ends with the same files as a task that ran once.

A failure is a result too: the run's one-line error is returned (and, for an exception that is not
a user error, its traceback), because one bad run must never stop a sweep of hundreds.

The result is a small dict: {"status", "summary", "error", "traceback", "log", "files"}; "files"
(the run folder's small files as text) is filled only when asked, for a Dask client that does not
share the workers' file system.
"""
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
import io
import json
import traceback

from ..errors import MinitransformerError, RunFolderError
from ..training.build import data_path
from ..training.config import TrainConfig
from ..training.loop import run
from ..training.runfolder import read_json, read_saved_config, run_files


def small_files(run_dir):
    """The files a client copies into the sweep folder when it does not share the workers' file
    system (the checkpoint stays with the worker); summary.json last: it marks the run complete."""
    f = run_files(run_dir)
    return (f.config, f.metrics, f.telemetry, f.sharpness, f.summary)


def _canonical(d):
    """A dict as it reads back from JSON (tuples become lists), for comparing configurations."""
    return json.loads(json.dumps(d))


def _as_recorded(train_dict):
    """train_dict with every field (a run made before a field existed has its default) and a
    GPT's text path resolved to an absolute one, as training/loop.py stores it (so that a run
    resumes from any directory); runs made before it did that hold the path as given, so both
    sides of the comparison go through this."""
    try:
        d = TrainConfig.from_dict(dict(train_dict)).to_dict()
    except (MinitransformerError, TypeError):          # a newer or damaged config: not this run
        return dict(train_dict)
    if d.get("model") == "gpt" and d.get("data"):
        d["data"] = str(data_path(d["data"]).resolve())
    if d.get("shards") is None:                        # made before shards existed: it had one
        d["shards"] = 1
    return d


def _check_same_config(run_dir, train_dict):
    """The run folder must hold this run: a folder left by another spec is never resumed."""
    saved = read_saved_config(run_dir)
    if _canonical(_as_recorded(saved.get("train") or {})) != \
            _canonical(_as_recorded(train_dict)):
        raise RunFolderError(f"{run_dir} holds a run with other settings than this sweep point; "
                             f"move it away and rerun")


def run_point(train_dict, run_dir, want_files=False):
    """Bring the run in run_dir to completion (see the module docstring); returns the result dict.
    train_dict: TrainConfig.to_dict() of the run."""
    run_dir = Path(run_dir)
    result = {"status": None, "summary": None, "error": None, "traceback": None, "log": "",
              "files": None}
    log = io.StringIO()
    try:
        with redirect_stderr(log), redirect_stdout(log):
            cfg = TrainConfig.from_dict(train_dict)
            files = run_files(run_dir)
            if files.summary.is_file():
                _check_same_config(run_dir, train_dict)
                summary = read_json(files.summary)
            else:
                resume = files.config.is_file()
                if resume:
                    _check_same_config(run_dir, train_dict)
                summary = run(cfg, run_dir, resume=resume, progress=False)
        result.update(status=summary["status"], summary=summary)
    except MinitransformerError as e:                   # the user's input, found late: one line
        msg = str(e).strip()
        result.update(status="failed", error=msg.splitlines()[0] if msg else type(e).__name__)
    except Exception as e:                              # noqa: BLE001  a crash: kept in full
        # A crash of one run (a bug, memory) must not stop the sweep; it is reported, not hidden:
        # the row says what happened and the sweep prints the traceback.
        msg = str(e).strip().splitlines()
        result.update(status="failed", error=f"{type(e).__name__}: {msg[0] if msg else ''}",
                      traceback=traceback.format_exc())
    result["log"] = log.getvalue()
    if want_files and result["summary"] is not None:
        result["files"] = {p.name: p.read_text(encoding="utf-8")
                           for p in small_files(run_dir) if p.is_file()}
    return result
