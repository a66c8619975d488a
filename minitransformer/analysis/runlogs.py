"""A run's logs as the pictures read them: metrics.jsonl, telemetry.jsonl, sharpness.jsonl and
summary.json through the run folder's one reader (training/runfolder.py), and every number a
figure draws checked on the way, so that a damaged value is one RunFolderError naming the
file, its line and the key, never a matplotlib error or a silently missing point.

    recs = read_metrics(run)                         # [] when the run has no metrics.jsonl
    losses = pairs(recs, run_files(run).metrics, "loss")      # [(step, loss)] where logged
    ratios = numbers(recs, path, "tensors", name, "update_ratio")
"""
from pathlib import Path

from ..errors import RunFolderError
from ..training.runfolder import read_json, read_jsonl, run_files


def read_metrics(run):
    p = run_files(run).metrics
    return read_jsonl(p, keys=("step",)) if p.is_file() else []


def read_log(run, name, keys=("step",)):
    """The records of RUN/name (telemetry.jsonl, sharpness.jsonl), [] when there is none; a
    damaged line is a RunFolderError naming the file and the line."""
    p = Path(run) / name
    return read_jsonl(p, keys=keys) if p.is_file() else []


def _number(v, path, line, key, null=True):
    """v when it is a number (or None, if null), else a RunFolderError naming file, line, key."""
    if (v is None and null) or (not isinstance(v, bool) and isinstance(v, (int, float))):
        return v
    raise RunFolderError(f"{path} line {line}: {key} is {v!r}, expected a number"
                         + (" or null" if null else ""))


def numbers(recs, path, *keys, lines=None):
    """[record[k1][k2]...] of every record: a number or None. A missing key or anything else
    is a RunFolderError naming the file, the line (record i is line i + 1, as read_jsonl keeps
    every line, unless `lines` gives the records' own line numbers) and the key."""
    where = ".".join(map(str, keys))
    out = []
    for line, rec in zip(lines or range(1, len(recs) + 1), recs):
        v = rec
        for k in keys:                                 # a str key of an object, an int of a list
            if isinstance(v, dict) and k in v or isinstance(v, list) and 0 <= k < len(v):
                v = v[k]
            else:
                raise RunFolderError(f"{path} line {line}: key {where!r} is missing")
        out.append(_number(v, path, line, where))
    return out


def pairs(recs, path, key):
    """[(step, value)] of the records whose `key` holds a number; records without it or with
    null are left out (only evaluation steps have val_loss). Anything else names its line."""
    out = []
    for line, rec in enumerate(recs, start=1):
        step = _number(rec["step"], path, line, "step", null=False)
        v = _number(rec.get(key), path, line, key)
        if v is not None:
            out.append((step, v))
    return out


# --------------------------------------------------------------------------------------------
# Curves of several runs


def check_logs(run):
    """Read every log of a run as the figures will, so that a damaged line is reported before
    anything is drawn."""
    files = run_files(run)
    for key in ("loss", "val_loss", "lr"):
        pairs(read_metrics(run), files.metrics, key)
    read_log(run, files.telemetry.name, keys=("step", "tensors"))
    sharp = read_log(run, files.sharpness.name, keys=("step", "lambda_max", "two_over_lr"))
    for key in ("step", "lambda_max", "two_over_lr"):
        numbers(sharp, files.sharpness, key)
    if files.summary.is_file():
        read_json(files.summary, keys=("status",))
