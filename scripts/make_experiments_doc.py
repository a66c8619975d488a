#!/usr/bin/env python
"""Write docs/experiments.md from finished experiment folders (what `experiment run` wrote).

    python scripts/make_experiments_doc.py FULL_ROOT [--smoke SMOKE_ROOT] [--times times.log]

FULL_ROOT/<study>/ holds each study run at --size full; a study without a finished full run is
taken from SMOKE_ROOT/<study>/ instead and labelled as smoke, never passed off as full. Each
section is the study's own report.md (claim, setup, tables, verdict, numbers), with its first
figure copied to docs/experiments/<study>.png. README's lines between <!-- experiments:begin -->
and <!-- experiments:end --> get one verdict line per study. --times: lines "HH:MM:SS end <study> rc=0 <s> s"
(the log of the runs) give the measured wall time of each full run.
"""
import argparse
import json
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from minitransformer.studies.experiments.registry import STUDIES  # noqa: E402

DOC = ROOT / "docs" / "experiments.md"
FIG_DIR = ROOT / "docs" / "experiments"


# What else the tables show, written after the runs (the verdicts above are the rules' alone).
READING = """## Reading the results (written after the runs)

- **symmetry**: the part of the claim about symmetry holds exactly: every zeros run ends with
  identical hidden units (unit_spread 0), every random run, even at std 1e-3, with distinct ones.
  The loss part misses the rule's bar at lr 1e-2 only, where the gpt2 reference itself trains
  badly (2.79): there the gap is 0.28 nats and two of three seeds fall below 0.3.
- **scale-lr**: with pre-LN and AdamW the best lr is 3e-3 at init scales 0.25, 1 and 4 alike; the
  scale changes the loss (0.25 is worse by 0.2 nats) but not where the optimum is, in this grid.
- **warmup**: pre-LN gains from the long warmup at lr >= 1e-2 (0.35 and 0.55 nats), the opposite
  of the claim's second half. Post-LN with the long warmup ends near 3.35 nats at lr >= 1e-2 (no
  better than a unigram model); without warmup it does the same at 3e-2, and at 1e-2 two of
  three seeds do better without warmup (2.46 and 2.79): 100 warmup steps did not rescue post-LN
  in 300 steps. At lr 3e-3 the long warmup does help post-LN (2.63 against 2.80).
- **no-norm-depth**: at depth 24 T-Fixup gains 0.59 nats over the better no-LN baseline, ReZero
  0.20, DeepNet 0.09, Admin none; Xavier and gpt2 without LN diverge at lr 5e-3 at depth 24.
  Two seeds per setting only (the cost of depth 24 here).
- **vit-small-data**: mimetic gains 10 points at 300 images, structured 4; but both gain as
  much or more at 8,000 images (mimetic +24 points): with 300 steps these ViTs are far from
  trained (vit 60% at 8,000 images), so the inits speed training up rather than help small data
  specifically; and the best lr is the largest tried (3e-3) for every init, so the grid was not
  wide enough to find each init's optimum.
- **early-updates**: the relative update of std-0.02 matrices over the first 20 steps is 3.2-3.5x
  smaller with a 50-step warmup and 6.4-7.6x larger than at std 0.2; without warmup the
  preconditioned sharpness exceeds 38/lr in a third to a half of the early probes, with warmup
  in none (std 0.02).
- **seeds**: the init seed alone and the data seed alone give the same spread (std 0.027 of the
  final validation loss each, 12 runs each); varying both gives 0.019.
- **rmt**: at init every matrix of every run fits its MP law (no eigenvalue outside, median KS
  0.03). After 600 steps every gpt2-initialized matrix has outliers and a heavier tail (median
  alpha 4.7 -> 2.0), but only a third of the xavier ones do (alpha unchanged): the rule's
  "every run" part fails on xavier.
- **sharp-flat**: no positive link between sharpness and gap (rho -0.29); sharpness is set by the
  learning rate (rho(lr, sharpness) = -0.89), as the edge-of-stability picture predicts.
- **pretrained-init**: pretrained weights give 82.9% on digits 5-9 after 100 steps on 300
  images, against 70.0% from scratch, in every seed.
"""


def section(text, title, until="\n## "):
    """The body of `## title` in a report (up to the next level-2 heading)."""
    start = text.index(f"## {title}\n") + len(f"## {title}\n")
    end = text.find(until, start)
    return text[start:end if end >= 0 else None].strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("full_root")
    ap.add_argument("--smoke", default=None)
    ap.add_argument("--times", default=None)
    args = ap.parse_args()
    times = {}
    if args.times:
        for line in Path(args.times).read_text().splitlines():
            m = re.match(r"\S+ end (\S+) rc=0 (\d+) s", line)
            if m:
                times[m.group(1)] = int(m.group(2))
    FIG_DIR.mkdir(parents=True, exist_ok=True)
    summary, body, readme = [], [], []
    for i, name in enumerate(STUDIES, 1):
        folder, label = Path(args.full_root) / name, "full"
        ok = (folder / "verdict.json").is_file() and \
            json.loads((folder / "verdict.json").read_text())["size"] == "full"
        if not ok:
            if not args.smoke or not (Path(args.smoke) / name / "verdict.json").is_file():
                summary.append(f"| {name} | not run | - |")
                readme.append(f"- `{name}`: not run")
                continue
            folder, label = Path(args.smoke) / name, "smoke"
        doc = json.loads((folder / "verdict.json").read_text())
        report = (folder / "report.md").read_text()
        figs = re.findall(r"!\[([^\]]*)\]\(([^)]+)\)", report)
        fig_line = ""
        if figs:
            target = FIG_DIR / (name + (".png" if label == "full" else "-smoke.png"))
            shutil.copyfile(folder / figs[0][1], target)
            fig_line = f"![{figs[0][0]}](experiments/{target.name})\n\n*{figs[0][0]}*\n"
        minutes = f", {times[name] / 60:.1f} min measured" if name in times and label == "full" \
            else ""
        summary.append(f"| [{name}](#{i}-{name}) | {label} ({doc['n_runs']} runs{minutes}) | "
                       f"**{doc['verdict']}** |")
        readme.append(f"- `{name}`: **{doc['verdict']}**" + (" (full size" if label == "full"
                      else " (smoke size only: not a test of the claim") +
                      f", {doc['n_runs']} runs). {doc['claim']}")
        warn = ("\n**This study was NOT run at full size here; the numbers below are from the "
                "smoke size (a few steps, one seed): they test the plumbing, not the claim.**\n"
                if label == "smoke" else "")
        setup = section(report, "Setup")
        body += [f"## {i}. {name}", "", f"**Claim.** {doc['claim']}", "",
                 f"**Source.** {doc['paper']}", "", f"**Size.** {label}, {doc['n_runs']} runs, "
                 f"{len(doc['seeds'])} seed(s) per setting{minutes} (2 workers, machine shared "
                 f"with other sessions).", warn, setup, "", section(report, "Results"), "",
                 fig_line, "### Verdict", "", section(report, "Verdict"), ""]
    head = ["# Experiments: the claims, run here, with their verdicts", "",
            "Each study below is one command, `python cli.py experiment run NAME --size full`, "
            "which trains its runs through the sweep engine and writes report.md, results.csv, "
            "verdict.json and figures into its folder. Each verdict comes from the rule "
            "written in the study's module (minitransformer/studies/experiments/) before any "
            "run, and every number is as measured: NOT SUPPORTED and INCONCLUSIVE are results, "
            "and no rule or setting was changed after seeing one. The full sizes are small on "
            "purpose (this 2-core machine, shared with other sessions while these ran: each "
            "study took minutes, not hours), so a verdict here is about these small models and "
            "these step counts, not about the papers' settings. The sections are the studies' "
            "own reports, gathered by `scripts/make_experiments_doc.py`; times are wall-clock "
            "with 2 workers while the machine was shared (load 9-13 on 2 cores), so an idle "
            "machine is several times faster.", "",
            "| study | size | verdict |", "|---|---|---|"] + summary + [""]
    DOC.write_text("\n".join(head + body).replace("\n\n\n", "\n\n") + "\n" + READING)
    readme_path = ROOT / "README.md"
    text = readme_path.read_text()
    begin, end = "<!-- experiments:begin -->\n", "<!-- experiments:end -->"
    i, j = text.index(begin) + len(begin), text.index(end)
    readme_path.write_text(text[:i] + "\n".join(readme) + "\n" + text[j:])
    print(f"wrote {DOC} and README's verdict lines")


if __name__ == "__main__":
    main()
