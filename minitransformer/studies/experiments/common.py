"""What every study shares: a sweep to run (Part), a verdict, and the statistics over seeds.

A study is a module of studies/experiments/ with these names (see symmetry.py, the simplest):

    NAME, CLAIM, PAPER          the study's name, its claim in one sentence, the source
    RULE                        the verdict rule in words, fixed before any run
    SIZES                       {"smoke": {...}, "full": {...}}: settings per size, with "seeds"
                                (how many by default) and "minutes" (measured here: 2 workers
                                on the 2-core machine while other sessions shared it)
    plan(size, seeds, done, out) the sweeps (Parts) to run; `done` holds the rows of the parts
                                already run, so a later part may use an earlier one's run
                                folders (under out/sweeps/<part>/)
    measure(row, folder, size)  extra numbers of one finished run, read from its folder (optional)
    table(rows)                 (columns, table rows): the report's table, means ± std over seeds
    verdict(rows)               Verdict: applies RULE to the per-run rows (a pure function of them)
    figures(rows, out_dir, plt) [(file name, caption)] of the PNGs it drew into out_dir

Every number a rule sees comes from `rows`, the per-run table also written to results.csv, so
the rule can be tested on synthetic tables (tests/test_experiments_rules.py).
"""
from dataclasses import dataclass, field
import math

import numpy as np

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "SUPPORTED", "NOT SUPPORTED", "INCONCLUSIVE"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE)


@dataclass(frozen=True)
class Part:
    """One sweep of a study: TrainConfig settings shared by its runs, a grid, seeds. Its runs live
    in DIR/sweeps/<name>/ (the sweep engine's layout, studies/sweep.py)."""
    name: str
    base: dict
    grid: dict
    seeds: tuple


@dataclass
class Verdict:
    verdict: str                                 # one of VERDICTS
    numbers: dict                                # what the rule looked at: name -> value
    notes: list = field(default_factory=list)    # where seeds disagree, what is missing

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


# ---------------------------------------------------------------------------------------------
# Per-run numbers

def ok(row):
    """A run that finished its steps (diverged and failed runs did not)."""
    return row.get("status") == "completed"


def loss_of(row, key="final_val_loss"):
    """The run's loss, +inf for a run that diverged or failed: a run that blew up counts as worse
    than any that finished, so a mean over seeds that includes one is +inf."""
    value = row.get(key)
    if not ok(row) or value is None or not math.isfinite(value):
        return math.inf
    return float(value)


def run_dir(out, row):
    """The run folder of a row: out/sweeps/<part>/<run>."""
    return out / "sweeps" / row["part"] / row["run"]


def select(rows, **match):
    """The rows whose fields equal every given value, in row order."""
    return [r for r in rows if all(r.get(k) == v for k, v in match.items())]


def by_seed(rows, key, **match):
    """{seed: key(row)} of the rows matching `match` (key: a function of the row)."""
    return {r["seed"]: key(r) for r in select(rows, **match)}


def mean(values):
    """Mean of the finite values, +inf if any is +inf, None if there are none."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    if any(v == math.inf for v in vals):
        return math.inf
    return float(np.mean(vals))


def std(values):
    """Sample standard deviation (ddof 1; 0 for one value), None when undefined (inf or none)."""
    vals = [v for v in values if v is not None]
    if not vals or any(not math.isfinite(v) for v in vals):
        return None
    return float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0


def groups(rows, keys):
    """{(values of keys): [rows]} in first-seen order."""
    out = {}
    for r in rows:
        out.setdefault(tuple(r.get(k) for k in keys), []).append(r)
    return out


# ---------------------------------------------------------------------------------------------
# Formatting for the report

def fmt(value, digits=3):
    """A number as the report shows it ('-' for None, 'inf' for a run that blew up)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if value == math.inf:
        return "inf"
    if value != 0 and (abs(value) >= 1e4 or abs(value) < 10 ** -digits):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}f}"


def mean_pm_std(values, digits=3, failed=0):
    """'m ± s' over seeds; runs that diverged are counted apart ('(2/3 diverged)') and left out
    of m and s, so the spread of the finished ones stays visible."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    n_bad = failed + sum(1 for v in values if v is not None and not math.isfinite(v))
    n = len(finite) + n_bad
    if not finite:
        return f"diverged {n_bad}/{n}" if n_bad else "-"
    text = f"{fmt(mean(finite), digits)} ± {fmt(std(finite), digits)}"
    return text + (f" ({n_bad}/{n} diverged)" if n_bad else "")


def markdown_table(columns, rows):
    """A markdown table: columns are the header names, rows lists of cells (already text)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def seed_table(rows, keys, metrics, digits=3):
    """(columns, table rows): one line per combination of `keys`, each metric as mean ± std over
    its seeds. metrics: [(column title, function row -> number or inf)]."""
    columns = list(keys) + ["seeds"] + [title for title, _ in metrics]
    out = []
    for combo, members in groups(rows, keys).items():
        cells = [fmt(v) if not isinstance(v, str) else v for v in combo] + [str(len(members))]
        cells += [mean_pm_std([f(r) for r in members], digits) for _, f in metrics]
        out.append(cells)
    return columns, out


def spread_note(values_by_seed, what):
    """A sentence when seeds disagree about a yes/no outcome, else None."""
    yes = sorted(s for s, v in values_by_seed.items() if v)
    no = sorted(s for s, v in values_by_seed.items() if not v)
    if yes and no:
        return f"seeds disagree on {what}: yes for seed(s) {yes}, no for seed(s) {no}"
    return None
