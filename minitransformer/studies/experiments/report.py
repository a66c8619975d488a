"""The experiment's files: results.csv, verdict.json, report.md and the figures (all atomic).

report.md, in this order: the claim and its paper; the setup (what every part of the study
trains, its grid, its seeds, the command that reproduces the whole study); the tables (mean ±
std over seeds); the figures; one line `Verdict: SUPPORTED | NOT SUPPORTED | INCONCLUSIVE`, the
rule that decided it and the numbers it saw; where the seeds disagree.
Nothing machine-dependent (times) goes in, so a resumed experiment writes the same report.
"""
from pathlib import Path
import csv
import io
import math

from ...training.runfolder import atomic_write
from .common import fmt, groups, markdown_table, mean, std

FIRST = ("part",)                  # results.csv: then the grid axes, seed, status, numbers
RUN_COLUMNS = ("seed", "status", "final_val_loss", "best_val_loss", "val_acc", "diverged_step")
LAST = ("run", "error")


def write_text(path, text):
    atomic_write(path, text.encode("utf-8"))


def save_figure(fig, path, plt):
    """fig as a PNG at path, atomically; the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write(path, buf.getvalue())
    return Path(path).name


def columns_of(rows):
    """results.csv's columns: part, the grid axes, the run columns, measured numbers, run."""
    seen = []
    for r in rows:
        for k in r:
            if k not in seen:
                seen.append(k)
    middle = [k for k in seen if k not in FIRST + RUN_COLUMNS + LAST]
    axes = [k for k in middle if k in _axes(rows)]
    measured = [k for k in middle if k not in axes]
    return list(FIRST) + axes + [c for c in RUN_COLUMNS if c in seen] + measured + \
        [c for c in LAST if c in seen]


def _axes(rows):
    """Keys that the sweep engine put before "seed" (the grid axes), in any part."""
    axes = set()
    for r in rows:
        keys = list(r)
        if "seed" in keys:
            axes.update(k for k in keys[:keys.index("seed")] if k not in FIRST)
    return axes


def write_results_csv(path, rows):
    cols = columns_of(rows)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _cell(r.get(k)) for k in cols})
    write_text(path, buf.getvalue())


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return v


def _json_safe(v):
    if isinstance(v, float):
        return v if math.isfinite(v) else ("inf" if v > 0 else "-inf" if v < 0 else None)
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


def verdict_document(study, meta, verdict, rows):
    statuses = [r.get("status") for r in rows]
    return _json_safe({
        "study": study.NAME, "claim": study.CLAIM, "paper": study.PAPER, "size": meta["size"],
        "seeds": meta["seeds"], "verdict": verdict.verdict, "rule": study.RULE,
        "numbers": verdict.numbers, "notes": verdict.notes, "n_runs": len(rows),
        "n_completed": statuses.count("completed"), "n_diverged": statuses.count("diverged")})


def _settings(base):
    return ", ".join(f"{k}={v}" for k, v in base.items())


def reproduce_command(meta, out):
    return (f"python cli.py experiment run {meta['study']} --size {meta['size']} "
            f"--seeds {len(meta['seeds'])} --out {out}")


def write_report(path, study, meta, out, verdict, rows, figures):
    parts = study.plan(meta["size"], meta["seeds"], _done_from(rows), out)
    lines = [f"# Experiment `{study.NAME}`", "",
             f"**Claim.** {study.CLAIM}", "", f"**Source.** {study.PAPER}", "",
             f"**Size.** `{meta['size']}` (about {study.SIZES[meta['size']]['minutes']} min with 2 "
             f"workers on this 2-core machine while shared; faster when idle), "
             f"{len(meta['seeds'])} seed(s) per setting "
             f"({', '.join(map(str, meta['seeds']))}), {len(rows)} runs.", "",
             "## Setup", "", study.DESIGN.strip(), "",
             "| part | settings shared by its runs | grid | seeds |", "|---|---|---|---|"]
    for p in parts:
        grid = "; ".join(f"{k} ∈ {{{', '.join(map(str, v))}}}" for k, v in p.grid.items())
        lines.append(f"| {p.name} | {_settings(_public(p.base, out))} | {grid or '-'} | "
                     f"{', '.join(map(str, p.seeds))} |")
    lines += ["", "Reproduce (workers and scheduler do not change any number):", "",
              f"    {reproduce_command(meta, out)}", "", "## Results", ""]
    for title, columns, cells in study.table(rows):
        lines += [f"**{title}**", "", markdown_table(columns, cells), ""]
    n_div = sum(r.get("status") == "diverged" for r in rows)
    lines += [f"{n_div} of {len(rows)} runs diverged (loss non-finite or far above its start); "
              f"a diverged run counts as loss = inf in the rule, and is left out of mean ± std "
              f"(which is then labelled with the count).", ""]
    if figures:
        lines += ["## Figures", ""]
        for name, caption in figures:
            lines += [f"![{caption}]({name})", "", f"*{caption}*", ""]
    lines += ["## Verdict", "", f"Verdict: {verdict.verdict}", "",
              f"Rule (written in `{_module_path(study)}` "
              f"before any run): {study.RULE}", "", "Numbers the rule saw:", ""]
    lines += [f"- {k}: {_show(v)}" for k, v in verdict.numbers.items()]
    lines += ["", "Seeds:", ""]
    lines += [f"- {n}" for n in verdict.notes] or \
        ["- the seeds agree on every comparison the rule makes."]
    write_text(path, "\n".join(lines) + "\n")


def _module_path(study):
    return f"minitransformer/studies/experiments/{study.__name__.rsplit('.', 1)[-1]}.py"


def _show(v):
    if isinstance(v, dict):
        return "; ".join(f"{k}: {_show(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    if isinstance(v, float):
        return fmt(v, 4)
    return str(v)


def _public(base, out):
    """Settings as the report shows them: paths inside the experiment folder made relative."""
    shown = {}
    for k, v in base.items():
        if isinstance(v, str) and v.startswith(str(Path(out).resolve())):
            v = "DIR" + v[len(str(Path(out).resolve())):]
        shown[k] = v
    return shown


def _done_from(rows):
    done = {}
    for r in rows:
        done.setdefault(r["part"], []).append(r)
    return done


# ---------------------------------------------------------------------------------------------
# Figure helpers shared by the studies

def errorbar_lines(ax, rows, x, series, y, label="{}"):
    """One line per value of `series`: mean ± std over seeds of y(row) against row[x]. Settings
    where a run diverged (y = inf) are drawn as a cross at the top edge of the axes."""
    for (sval,), members in groups(rows, [series]).items():
        xs = sorted({r[x] for r in members})
        ys = [[y(r) for r in members if r[x] == xv] for xv in xs]
        m = [mean(v) for v in ys]
        e = [std(v) or 0.0 for v in ys]
        finite = [(a, b, c) for a, b, c in zip(xs, m, e) if b is not None and math.isfinite(b)]
        line = ax.errorbar([a for a, _, _ in finite], [b for _, b, _ in finite],
                           yerr=[c for _, _, c in finite], marker="o", capsize=3,
                           label=label.format(sval))
        bad = [a for a, b, _ in zip(xs, m, e) if b is None or not math.isfinite(b)]
        if bad:
            ax.plot(bad, [1.0] * len(bad), "x", color=line[0].get_color(), ms=9, clip_on=False,
                    transform=ax.get_xaxis_transform())


def val_curve(run_dir, key="val_loss"):
    """(steps, values) of the evaluations in a run folder's metrics.jsonl."""
    from ...training.runfolder import read_jsonl
    path = Path(run_dir) / "metrics.jsonl"
    recs = [r for r in read_jsonl(path) if r.get(key) is not None] if path.is_file() else []
    return [r["step"] for r in recs], [r[key] for r in recs]
