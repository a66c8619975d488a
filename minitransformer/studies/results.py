"""A sweep's tables: results.csv (one row per run) and results.md (settings grouped over seeds).

results.csv columns: every grid axis, seed, status (completed | diverged | failed),
final_val_loss, best_val_loss, val_acc (ViT; empty for GPT), diverged_step, ms_per_iter,
wall_time_s, run (the run folder, relative to the sweep folder), error (failed runs only).
Numbers are written in Python's shortest exact form, so two sweeps that computed the same thing
have byte-identical result columns (ms_per_iter and wall_time_s are timings and differ).

results.md groups the runs of one setting (all axes but the seed): n, fractions diverged and
failed, and mean ± std over seeds (std with ddof=1, the spread of a sample; blank for n = 1) of
each result. Best setting first: the lowest fraction of runs that diverged or failed, then the
lowest mean final validation loss. A diverged run has no final loss; it counts in "diverged".
"""
import csv
import io
import math

from ..training.runfolder import atomic_write
from .spec import value_text

RESULT_COLUMNS = ("seed", "status", "final_val_loss", "best_val_loss", "val_acc",
                  "diverged_step", "ms_per_iter", "wall_time_s", "run", "error")
NUMERIC = ("final_val_loss", "best_val_loss", "val_acc", "diverged_step", "ms_per_iter",
           "wall_time_s")
MEANS = ("final_val_loss", "best_val_loss", "val_acc")   # grouped in results.md


def make_row(settings, seed, run, result):
    """The row of one run from its task result (see task.run_point)."""
    s = result.get("summary") or {}
    row = dict(settings, seed=seed, status=result["status"])
    for name in ("final_val_loss", "best_val_loss", "val_acc", "diverged_step", "ms_per_iter",
                 "wall_time_s"):
        row[name] = s.get(name)
    row.update(run=run, error=result.get("error"))
    return row


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return value_text(value)


def csv_text(rows, axes):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(axes) + list(RESULT_COLUMNS))
    for r in rows:
        w.writerow([_cell(r[a]) for a in axes] + [_cell(r.get(c)) for c in RESULT_COLUMNS])
    return buf.getvalue()


def read_csv(path):
    """results.csv back as dicts: result numbers as floats (None when empty), seed as int, axis
    values as the text written (as in the run names)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for name in NUMERIC:
            r[name] = float(r[name]) if r.get(name) not in (None, "") else None
        r["seed"] = int(r["seed"])
        r["error"] = r.get("error") or None
    return rows


def _mean_std(values):
    if not values:
        return None, None
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return mean, None
    var = math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


def group_rows(rows, axes):
    """[(settings, stats)] over seeds, best first (module docstring). stats: runs, n (runs with
    a final loss), diverged, failed (fractions), and (mean, std) of each of MEANS."""
    groups = {}
    for r in rows:
        groups.setdefault(tuple(value_text(r[a]) for a in axes), []).append(r)
    out = []
    for key, rs in groups.items():
        stats = {"runs": len(rs),
                 "n": sum(r["final_val_loss"] is not None for r in rs),
                 "diverged": sum(r["status"] == "diverged" for r in rs) / len(rs),
                 "failed": sum(r["status"] == "failed" for r in rs) / len(rs)}
        for name in MEANS:
            stats[name] = _mean_std([r[name] for r in rs if r[name] is not None])
        out.append((dict(zip(axes, key)), stats))

    def rank(item):
        st = item[1]
        mean = st["final_val_loss"][0]
        return (st["diverged"] + st["failed"], math.inf if mean is None else mean)
    return sorted(out, key=rank)


def _pm(mean_std):
    mean, std = mean_std
    if mean is None:
        return "-"
    return f"{mean:.4f}" if std is None else f"{mean:.4f} ± {std:.4f}"


def markdown_text(rows, axes, title, total):
    """results.md: a header with the counts, then one table row per setting (best first)."""
    counts = {s: sum(r["status"] == s for r in rows) for s in ("completed", "diverged", "failed")}
    means = [m for m in MEANS if any(r[m] is not None for r in rows)] or ["final_val_loss"]
    lines = [f"# {title}", "",
             f"{total} runs: {counts['completed']} completed, {counts['diverged']} diverged, "
             f"{counts['failed']} failed, {total - len(rows)} not finished yet.", "",
             "Grouped over seeds: mean ± std (ddof=1) over the runs that finished; n = runs "
             "with a final validation loss. Best first: lowest fraction diverged or failed, "
             "then lowest mean final validation loss.", ""]
    head = list(axes) + ["runs", "n", "diverged", "failed"] + means
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for settings, st in group_rows(rows, axes):
        cells = [settings[a] for a in axes] + [str(st["runs"]), str(st["n"]),
                                               f"{st['diverged']:.0%}", f"{st['failed']:.0%}"]
        cells += [_pm(st[m]) for m in means]
        lines.append("| " + " | ".join(cells) + " |")
    failed = [r for r in rows if r["status"] == "failed"]
    if failed:
        lines += ["", "Failed runs:", ""] + [f"- `{r['run']}`: {r['error']}" for r in failed]
    return "\n".join(lines) + "\n"


def write_results(out_dir, rows, axes, total):
    """results.csv and results.md in out_dir, each written atomically."""
    atomic_write(out_dir / "results.csv", csv_text(rows, axes).encode("utf-8"))
    md = markdown_text(rows, axes, f"Sweep results: {out_dir.name}", total)
    atomic_write(out_dir / "results.md", md.encode("utf-8"))
