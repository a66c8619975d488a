"""Run a study through the sweep engine and write its report; rebuild a report from the runs.

    run_experiment("warmup", size="smoke", out="exp/warmup")    # -> the verdict.json dict
    report_experiment("exp/warmup")                              # report.md etc. from the runs

The experiment folder DIR:
    experiment.json      the study, size and seeds (written first: a rerun must match it)
    sweeps/<part>/       one sweep engine folder per part of the study (sweep.json, runs/, ...)
    results.csv          one line per run: grid values, seed, status, losses, measured numbers
    verdict.json         the verdict, its rule, the numbers it saw, the notes
    report.md            claim, paper, setup, command, table, figures, verdict
    *.png                the figures

Running again resumes: the sweep engine skips finished runs and continues interrupted ones, and
the report is written again from the same runs, so it is the same report.
"""
from pathlib import Path
import csv
import sys

from ...analysis.figure import pyplot as _plt   # matplotlib (Agg), or one line naming the extra
from ...errors import ConfigError, RunFolderError
from ...training.runfolder import read_json, write_json
from .. import sweep as _sweep
from . import registry, report
from .common import run_dir

SIZE_NAMES = ("smoke", "full")
TIMING = ("ms_per_iter", "wall_time_s")          # machine-dependent: kept out of the report


def check_size(size):
    if size not in SIZE_NAMES:
        raise ConfigError(f"unknown size {size!r}: choose smoke or full")
    return size


def resolve_seeds(study, size, seeds):
    """The seed list: 0..n-1, n = `seeds` or the size's default."""
    n = study.SIZES[size]["seeds"] if seeds is None else seeds
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"--seeds must be a positive integer, got {seeds!r}")
    return list(range(n))


def check_out(out, name, size, seeds):
    """DIR may be new, empty, or an experiment folder of the same study, size and seeds.
    Returns the experiment.json document to write (or already there)."""
    out = Path(out)
    meta = {"study": name, "size": size, "seeds": seeds}
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / "experiment.json").is_file():
            raise ConfigError(f"--out {out} is not empty and holds no experiment; choose "
                              f"another folder")
        old = read_json(out / "experiment.json")
        if old.get("study") != name:
            raise ConfigError(f"--out {out} holds the experiment {old.get('study')!r}, not "
                              f"{name!r}; choose another folder")
        if old.get("size") != size or old.get("seeds") != seeds:
            raise ConfigError(f"--out {out} holds {name} at size {old.get('size')} with "
                              f"{len(old.get('seeds', []))} seed(s); rerun it with --size "
                              f"{old.get('size')} --seeds {len(old.get('seeds', []))} or "
                              f"choose another folder")
    return meta


def _say(progress, text):
    if progress and sys.stderr.isatty():
        print(text, file=sys.stderr, flush=True)


def run_experiment(name, size="smoke", out=None, workers=None, scheduler=None, seeds=None,
                   progress=True):
    """Run (or resume) study `name` at `size` into `out` and write its report; returns the
    verdict.json document. Every problem with the input is raised before anything is written."""
    study = registry.get(name)
    check_size(size)
    seeds = resolve_seeds(study, size, seeds)
    out = Path(out) if out is not None else Path("experiments") / f"{name}-{size}"
    meta = check_out(out, name, size, seeds)
    plt = _plt()
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "experiment.json").is_file():
        write_json(out / "experiment.json", meta)
    done = {}
    while True:
        todo = [p for p in study.plan(size, seeds, done, out) if p.name not in done]
        if not todo:
            break
        for part in todo:
            _say(progress, f"{name}: part {part.name} ({_n_runs(part)} runs)")
            spec = _sweep.SweepSpec(base=dict(part.base), grid=dict(part.grid),
                                    seeds=list(part.seeds))
            _sweep.sweep(spec, out / "sweeps" / part.name, workers=workers,
                         scheduler=scheduler, progress=progress)
            # read back what the engine wrote, exactly as `experiment report` does
            done[part.name] = read_sweep_rows(out / "sweeps" / part.name, part, meta, out)
    return _write(study, meta, out, done, plt)


def report_experiment(out):
    """Rebuild DIR's report from its finished runs (nothing is trained). A run that has not
    finished is an error naming the command that finishes it."""
    out = Path(out)
    if not (out / "experiment.json").is_file():
        raise RunFolderError(f"{out} is not an experiment folder (it has no experiment.json)")
    meta = read_json(out / "experiment.json")
    study = registry.get(meta["study"])
    done = {}
    while True:
        todo = [p for p in study.plan(meta["size"], meta["seeds"], done, out)
                if p.name not in done]
        if not todo:
            break
        for part in todo:
            done[part.name] = read_sweep_rows(out / "sweeps" / part.name, part, meta, out)
    return _write(study, meta, out, done, _plt())


def _n_runs(part):
    n = len(part.seeds)
    for values in part.grid.values():
        n *= len(values)
    return n


def read_sweep_rows(folder, part, meta, out):
    """The rows of a finished sweep from its results.csv, values typed back (numbers, None)."""
    path = folder / "results.csv"
    again = (f"python cli.py experiment run {meta['study']} --size {meta['size']} --seeds "
             f"{len(meta['seeds'])} --out {out}")
    if not path.is_file():
        raise RunFolderError(f"{folder} has no results.csv: finish the runs with: {again}")
    with open(path, newline="", encoding="utf-8") as f:
        rows = [{k: _typed(v) for k, v in r.items()} for r in csv.DictReader(f)]
    if len(rows) != _n_runs(part) or any(r.get("status") not in ("completed", "diverged")
                                         for r in rows):
        raise RunFolderError(f"{folder} has unfinished or failed runs: finish them with: {again}")
    return [dict(r, part=part.name) for r in rows]


def _typed(text):
    if text is None or text == "":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text in ("True", "False"):
        return text == "True"
    return text


def _write(study, meta, out, done, plt):
    """Measure every run, apply the rule, and write results.csv, the figures, verdict.json and
    report.md (each atomically)."""
    rows = []
    for part_rows in done.values():
        for r in part_rows:
            r = {k: v for k, v in r.items() if k not in TIMING}
            if r.get("status") == "completed" and hasattr(study, "measure"):
                r.update(study.measure(r, run_dir(out, r), meta["size"]))
            rows.append(r)
    verdict = study.verdict(rows)
    figures = study.figures(rows, out, plt)
    report.write_results_csv(out / "results.csv", rows)
    doc = report.verdict_document(study, meta, verdict, rows)
    write_json(out / "verdict.json", doc)
    report.write_report(out / "report.md", study, meta, out, verdict, rows, figures)
    return doc
