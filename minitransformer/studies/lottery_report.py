"""The lottery's report: the verdict rule (fixed here, before any run), report.md and its figures.

The claim tested (Frankle & Carbin 2019; Frankle et al. 2020 with rewinding): a sparse
subnetwork found by iterative magnitude pruning, trained from its rewound weights, matches the
dense network up to a substantial sparsity, while the same sparsity with a fresh init
(randomly_reinitialize) or a random mask (randomly_prune) does not.

Rule (verdict(); nothing in it depends on the results):
  metric    ViT: final validation accuracy, matching = at least dense - 0.01 (1 point);
            GPT: final validation loss, matching = at most dense + 0.02 nats. All runs of a
            lottery are evaluated on the same batches (the evaluation stream is part of the
            rewound state), so these are paired comparisons.
  claim     the first level whose sparsity (fraction of prunable weights removed) is >= 0.5.
  SUPPORTED      the ticket matches at every level up to the claim level, and at the claim level
                 every control that was run does not match.
  NOT SUPPORTED  the ticket fails to match at some level up to the claim level, or a control
                 matches at the claim level too (then the ticket's weights are not what keeps it).
  INCONCLUSIVE   the dense run did not complete, the lottery stopped below sparsity 0.5, or no
                 control was run.
"""
import json
import math

from ..training.runfolder import atomic_write

CLAIM_SPARSITY = 0.5
METRIC = {  # model -> (results column, +1 higher is better / -1 lower is better, margin)
    "vit": ("val_acc", +1, 0.01),
    "gpt": ("final_val_loss", -1, 0.02),
}


def _matches(value, dense, sign, margin):
    """value is within margin of dense (or better); a missing value (diverged) never matches."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return False
    return sign * (value - dense) >= -margin


def verdict(rows, model):
    """(word, reason) from the results rows by the rule of the module docstring."""
    column, sign, margin = METRIC[model]
    dense = [r for r in rows if r["level"] == 0 and r["branch"] == "ticket"]
    if not dense or dense[0]["status"] != "completed" or dense[0][column] is None:
        return "INCONCLUSIVE", "the dense run (level 0) did not complete"
    d = dense[0][column]
    tickets = sorted((r for r in rows if r["branch"] == "ticket" and r["level"] > 0),
                     key=lambda r: r["level"])
    claim = next((r for r in tickets if r["sparsity"] >= CLAIM_SPARSITY), None)
    if claim is None:
        top = max([r["sparsity"] for r in tickets] + [0.0])
        return "INCONCLUSIVE", (f"the lottery reached sparsity {top:.3f} only, below the claim's "
                                f"{CLAIM_SPARSITY}: run more levels")
    for r in tickets[:tickets.index(claim) + 1]:
        if not _matches(r[column], d, sign, margin):
            return "NOT SUPPORTED", (f"the ticket falls out of the margin at level {r['level']} "
                                     f"(sparsity {r['sparsity']:.3f}): {column} {_fmt(r[column])} "
                                     f"vs dense {_fmt(d)} (margin {margin})")
    controls = [r for r in rows if r["level"] == claim["level"] and r["branch"] != "ticket"]
    if not controls:
        return "INCONCLUSIVE", "no control was run (--branches)"
    matching = [r for r in controls if _matches(r[column], d, sign, margin)]
    if matching:
        names = ", ".join(f"{r['branch']} ({_fmt(r[column])})" for r in matching)
        return "NOT SUPPORTED", (f"at sparsity {claim['sparsity']:.3f} the ticket matches dense "
                                 f"({_fmt(claim[column])} vs {_fmt(d)}) but so does {names}")
    names = ", ".join(f"{r['branch']} {_fmt(r[column])}" for r in controls)
    return "SUPPORTED", (f"the ticket matches dense ({column} {_fmt(d)}, margin {margin}) up to "
                         f"sparsity {claim['sparsity']:.3f} ({_fmt(claim[column])}) while the "
                         f"controls fall below it: {names}")


def _fmt(x):
    return "none" if x is None else f"{x:.4f}"


def largest_matching_sparsity(rows, model):
    """The highest sparsity up to which every ticket level matches dense (None: not even 1)."""
    column, sign, margin = METRIC[model]
    dense = next((r[column] for r in rows if r["level"] == 0), None)
    best = None
    for r in sorted((r for r in rows if r["branch"] == "ticket" and r["level"] > 0),
                    key=lambda r: r["level"]):
        if dense is None or not _matches(r[column], dense, sign, margin):
            break
        best = r["sparsity"]
    return best


# ---------------------------------------------------------------------------------------------
# report.md and figures

def _series(rows, branch, column):
    """(percent of prunable weights remaining, value) of one branch, densest first; the ticket's
    series starts at the dense network (level 0 is the ticket branch of an unpruned mask)."""
    pts = sorted(((100 * (1.0 - r["sparsity"]), r[column]) for r in rows
                  if r["branch"] == branch and r[column] is not None), reverse=True)
    return [p[0] for p in pts], [p[1] for p in pts]


def write_figures(out, rows, model):
    """lottery_metric.png and lottery_early_stop.png; returns their names (none without
    matplotlib, which the report then says)."""
    from ..analysis.figure import pyplot
    plt = pyplot()
    column, sign, margin = METRIC[model]
    label = "validation accuracy" if column == "val_acc" else "final validation loss"
    dense = next(r[column] for r in rows if r["level"] == 0)
    names = []
    for fname, col, ylabel, band in (("lottery_metric.png", column, label, True),
                                     ("lottery_early_stop.png", "early_stop_step",
                                      "early-stop step (best validation loss)", False)):
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        for branch, style in (("ticket", "o-"), ("randomly_reinitialize", "s--"),
                              ("randomly_prune", "^:")):
            x, y = _series(rows, branch, col)
            if x:
                ax.plot(x, y, style, label=branch)
        if band:
            ax.axhline(dense, color="gray", lw=0.8)
            ax.axhspan(dense - margin, dense + margin, color="gray", alpha=0.15,
                       label=f"dense ± margin {margin}")
        ax.set_xscale("log")
        ticks, _ = _series(rows, "ticket", "sparsity")           # every level's remaining %
        ax.set_xticks(ticks, [f"{t:.3g}" for t in ticks], minor=False)
        ax.set_xticks([], minor=True)
        ax.invert_xaxis()
        ax.set_xlabel("prunable weights remaining (%), log scale")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, which="both")
        fig.tight_layout()
        fig.savefig(out / fname, dpi=110)
        plt.close(fig)
        names.append(fname)
    return names


def write_report(out, rows, spec):
    """DIR/report.md: the claim, the settings, the table, the figures and the verdict."""
    from ..errors import MissingDependency
    model = spec["train"]["model"]
    word, reason = verdict(rows, model)
    try:
        figures = write_figures(out, rows, model)
    except MissingDependency as e:
        figures, missing = [], str(e)
    else:
        missing = None
    column, sign, margin = METRIC[model]
    lines = ["# Lottery ticket report", "",
             "Claim (Frankle & Carbin 2019; Frankle et al. 2020): iterative magnitude pruning "
             "with rewinding finds a sparse subnetwork that, trained from its rewound weights, "
             "matches the dense network, while a fresh init of the same mask "
             "(randomly_reinitialize) or a random mask (randomly_prune) does not.", "",
             f"Settings: {spec['levels']} levels, prune fraction {spec['prune_fraction']} "
             f"({spec['strategy']}), rewind to step {spec['rewind_iter']} (optimizer "
             f"{spec.get('optimizer_state', 'rewind')}), branches "
             f"{', '.join(spec['branches'])}.", "",
             "```", json.dumps(spec["train"], sort_keys=True), "```", "",
             "| level | branch | sparsity | status | final val loss | best val loss | val acc | "
             "early-stop step |", "|---:|---|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['level']} | {r['branch']} | {r['sparsity']:.3f} | {r['status']} | "
                     f"{_fmt(r['final_val_loss'])} | {_fmt(r['best_val_loss'])} | "
                     f"{_fmt(r['val_acc'])} | {r['early_stop_step']} |")
    lines.append("")
    for f in figures:
        lines += [f"![{f}]({f})", ""]
    if missing:
        lines += [f"(no figures: {missing})", ""]
    top = largest_matching_sparsity(rows, model)
    lines += [f"Rule (minitransformer/studies/lottery_report.py, fixed before the runs): metric "
              f"{column}, margin {margin}, claim at the first level with sparsity >= "
              f"{CLAIM_SPARSITY}.",
              f"Largest sparsity up to which the ticket matches dense: "
              f"{'none' if top is None else f'{top:.3f}'}.", "",
              f"Verdict: {word} ({reason})", ""]
    atomic_write(out / "report.md", "\n".join(lines).encode("utf-8"))
    return word, reason
