"""Lottery tickets: iterative magnitude pruning with rewinding, and open_lth's two controls.

    lottery(TrainConfig.for_model(model="vit", ...), "runs/lt", levels=4, fraction=0.2,
            rewind_iter=50, strategy="global", branches=BRANCHES, workers=2)

Level 0 trains the dense network and keeps its full training state after K = rewind_iter updates
(DIR/level_0/ticket/state_K.npz: weights, AdamW moments, step, the data and evaluation streams).
Level k >= 1 prunes `fraction` of the prunable weights still alive in level k-1's trained ticket,
smallest magnitude first (training/masks.py), and trains three branches from that step-K state
for the remaining max_iters - K steps, each in its own run folder DIR/level_k/<branch>/:

    ticket                 the surviving weights rewound to their step-K values (K = 0: their
                           initial values, Frankle & Carbin 2019; K > 0: Frankle et al. 2020)
    randomly_reinitialize  the same mask on fresh weights of the same init scheme (another seed)
    randomly_prune         a random mask with the ticket's per-tensor sparsity, rewound weights

All branches of a level share everything else of the step-K state: schedule position, data
order, evaluation batches, and (optimizer_state="rewind", the default) the AdamW moments times
the branch's mask. open_lth restarts its optimizer at the rewind point instead; with Adam that
repeats the large bias-corrected first steps warmup exists to avoid, so we rewind the optimizer
state with the weights unless optimizer_state="fresh" asks for open_lth's way (moments 0, step
count 0, the schedule still at step K).

A branch's starting point is one file, DIR/level_k/<branch>.start.npz: the step-K state with the
branch's weights and its masks (mask.<name>). The branches of a level are independent, so they
run through the sweep engine as one sweep with one axis, start_from (run_level), in parallel
with --workers / --scheduler; its run folders are DIR/level_k/sweep/runs/..., and
DIR/level_k/<branch> links to each. A Dask cluster must share the file system with this
process: the next level prunes the ticket's checkpoint.
The chain of levels is sequential, and every step of it is a file written atomically from
files before it, so a rerun after a kill at any point redoes only what is missing and gives
the same results as a run never stopped (tests/test_lottery.py kills one).

Outputs: DIR/lottery.json (the spec; a different spec in the same folder is refused),
DIR/results.csv, DIR/report.md with its figures (lottery_report.py).
"""
from dataclasses import replace
from pathlib import Path
import csv
import io
import json

import numpy as np

from ..errors import ConfigError, RunFolderError
from ..training import masks as M
from ..training.build import make_model, model_config, resolve_data
from ..training.checkpoint import load_checkpoint
from ..training.runfolder import atomic_write, read_json, read_run_config, save_arrays, write_json

BRANCHES = ("ticket", "randomly_reinitialize", "randomly_prune")
OPTIMIZER_STATES = ("rewind", "fresh")      # the optimizer at step K: as it was, or a new one
CONTROLS = BRANCHES[1:]
COLUMNS = ("level", "branch", "sparsity", "status", "final_val_loss", "best_val_loss", "val_acc",
           "early_stop_step")
FORBIDDEN = ("init_from", "start_from", "mask", "save_state_at")   # the lottery sets these itself
REINIT_SEED_OFFSET = 100_003        # randomly_reinitialize at level k: init_seed + k * this
PRUNE_SEED_OFFSET = 200_003         # randomly_prune's mask at level k: default_rng(seed + k * this)


def check_spec(cfg, levels, fraction, rewind_iter, strategy, branches, optimizer_state="rewind"):
    """Every input of a lottery, checked before anything is written (one line each)."""
    if optimizer_state not in OPTIMIZER_STATES:
        raise ConfigError(f"--optimizer-state must be one of {', '.join(OPTIMIZER_STATES)}, got "
                          f"{optimizer_state!r}")
    if not isinstance(levels, int) or isinstance(levels, bool) or levels < 1:
        raise ConfigError(f"--levels must be an integer >= 1 (pruning rounds), got {levels!r}")
    M.check_fraction(fraction)
    if not isinstance(rewind_iter, int) or rewind_iter < 0:
        raise ConfigError(f"--rewind-iter must be an integer >= 0, got {rewind_iter!r}")
    if rewind_iter >= cfg.max_iters:
        raise ConfigError(f"--rewind-iter {rewind_iter} is beyond the training: it must be below "
                          f"--max-iters ({cfg.max_iters})")
    if strategy not in M.STRATEGIES:
        raise ConfigError(f"--strategy must be one of {', '.join(M.STRATEGIES)}, got {strategy!r}")
    unknown = [b for b in branches if b not in BRANCHES]
    if unknown or "ticket" not in branches:
        raise ConfigError(f"--branches must include ticket and name only "
                          f"{', '.join(BRANCHES)}; got {', '.join(branches)}")
    given = [f"--{f.replace('_', '-')}" for f in FORBIDDEN if getattr(cfg, f) is not None]
    if given:
        raise ConfigError(f"the lottery sets {', '.join(given)} itself; drop it")


def lottery(cfg, out, levels, fraction=0.2, rewind_iter=0, strategy="global",
            branches=BRANCHES, workers=None, scheduler=None, progress=True,
            optimizer_state="rewind"):
    """Run (or finish) the lottery in folder `out`; returns the rows of results.csv."""
    check_spec(cfg, levels, fraction, rewind_iter, strategy, branches, optimizer_state)
    branches = tuple(b for b in BRANCHES if b in branches)     # the canonical order
    out = Path(out)
    spec = {"train": cfg.to_dict(), "levels": levels, "prune_fraction": fraction,
            "rewind_iter": rewind_iter, "strategy": strategy, "branches": list(branches)}
    if optimizer_state != "rewind":                   # absent by default: older folders match
        spec["optimizer_state"] = optimizer_state
    model_config(cfg, resolve_data(cfg))               # data and shapes, before any file
    _claim_folder(out, spec)
    say = _Say(progress)
    say(f"level 0: dense network, keeping the state after {rewind_iter} updates")
    run_level(out, 0, cfg, "save_state_at", {"ticket": rewind_iter}, workers, scheduler,
              progress)
    for level in range(1, levels + 1):
        masks = level_masks(out, level, fraction, strategy)
        say(f"level {level}: sparsity {M.sparsity(masks):.3f} of the prunable weights; "
            f"branches {', '.join(branches)}")
        starts = {b: str(write_start(out, level, b, cfg, rewind_iter, masks, optimizer_state))
                  for b in branches}
        run_level(out, level, cfg, "start_from", starts, workers, scheduler, progress)
    rows = collect(out, levels, branches)
    write_csv(out / "results.csv", rows)
    from .lottery_report import write_report                 # matplotlib only when asked
    write_report(out, rows, spec)
    say(f"done: {out / 'results.csv'}, {out / 'report.md'}")
    return rows


class _Say:
    def __init__(self, enabled):
        self.enabled = enabled

    def __call__(self, text):
        if self.enabled:
            import sys
            print(f"lottery: {text}", file=sys.stderr, flush=True)


def _claim_folder(out, spec):
    """Write DIR/lottery.json, or check that the one already there is the same spec."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder")
    path = out / "lottery.json"
    if path.is_file():
        if read_json(path) != json.loads(json.dumps(spec)):
            raise ConfigError(f"{out} holds a lottery with other settings (see {path}); "
                              f"choose another --out")
        return
    out.mkdir(parents=True, exist_ok=True)
    write_json(path, spec)


# ---------------------------------------------------------------------------------------------
# The chain: masks and starting points, each a file computed from the files before it

def _final_params(run_dir):
    """The trained weights of a finished run folder (its final checkpoint)."""
    if not (run_dir / "summary.json").is_file():
        raise ConfigError(f"{run_dir} has not finished; rerun the lottery to complete it")
    summary = read_json(run_dir / "summary.json")
    if summary["status"] != "completed":
        raise ConfigError(f"{run_dir} {summary['status']} at step {summary.get('step')}: "
                          f"nothing to prune")
    return load_checkpoint(run_dir / "checkpoint.npz")


def level_masks(out, level, fraction, strategy):
    """DIR/level_k/mask.npz: level k-1's ticket mask with `fraction` of its survivors pruned
    by the magnitude of level k-1's trained ticket. Computed once, then read back."""
    path = out / f"level_{level}" / "mask.npz"
    prev = out / f"level_{level - 1}" / "ticket"
    ckpt = _final_params(prev)
    params = {name: ckpt[name] for name in _param_names(prev)}
    if path.is_file():
        return M.load_masks(path, params)
    before = (M.load_masks(prev / "mask.npz", params) if (prev / "mask.npz").is_file()
              else M.full_masks(params))
    masks = M.magnitude_prune(params, before, fraction, strategy)
    path.parent.mkdir(parents=True, exist_ok=True)
    M.save_masks(path, masks)
    return masks


def _param_names(run_dir):
    _, cfg, mcfg = read_run_config(run_dir)
    return list(make_model(cfg, mcfg).params)


def branch_start(out, level, branch, cfg, rewind_iter, masks, optimizer_state="rewind"):
    """The step-K state of level 0 with the branch's weights and masks, as arrays; with
    optimizer_state="fresh", a new optimizer's state (every moment 0, opt.t 0)."""
    dense = out / "level_0" / "ticket"
    state = load_checkpoint(dense / f"state_{rewind_iter}.npz")
    names = _param_names(dense)
    params = {name: state[name] for name in names}
    if branch == "randomly_prune":
        masks = M.random_masks(masks, np.random.default_rng(cfg.seed + level * PRUNE_SEED_OFFSET))
    if branch == "randomly_reinitialize":
        _, _, mcfg = read_run_config(dense)
        fresh = make_model(replace(cfg, init_seed=cfg.init_seed + level * REINIT_SEED_OFFSET),
                           mcfg)
        params = {name: p.astype(state[name].dtype) for name, p in fresh.params.items()}
    start = dict(state)
    start.update(M.rewind(params, masks))
    moments = ("opt.m.", "opt.v.", "opt.buf.")
    for name, m in masks.items():
        start[M.MASK_PREFIX + name] = m
        if optimizer_state == "rewind":
            for moment in moments:                             # no momentum for removed weights
                if moment + name in start:
                    start[moment + name] = start[moment + name] * m
    if optimizer_state == "fresh":                             # a new optimizer: all zero
        for key in [k for k in start if k.startswith(moments)] + ["opt.t"]:
            start[key] = np.zeros_like(start[key])
    return start


def write_start(out, level, branch, cfg, rewind_iter, masks, optimizer_state="rewind"):
    """DIR/level_k/<branch>.start.npz (once); returns its path."""
    path = out / f"level_{level}" / f"{branch}.start.npz"
    if not path.is_file():
        save_arrays(path, branch_start(out, level, branch, cfg, rewind_iter, masks,
                                       optimizer_state))
    return path.resolve()


# ---------------------------------------------------------------------------------------------
# Running independent runs

def run_level(out, level, cfg, axis, values, workers=None, scheduler=None, progress=True):
    """The independent runs of one level through the sweep engine (studies/sweep.py): one grid
    axis (start_from; save_state_at for the dense level 0), the lottery's settings as the shared
    options, its seed as the only seed. The sweep's run folders live in DIR/level_k/sweep/runs/;
    DIR/level_k/<branch> is a relative link to each. values: {branch: axis value}."""
    from .sweep import SweepSpec, sweep
    base = {k: getattr(cfg, k) for k in cfg.explicit if k != "seed"}
    spec = SweepSpec(base=base, grid={axis: list(values.values())}, seeds=[cfg.seed])
    level_dir = out / f"level_{level}"
    rows = sweep(spec, level_dir / "sweep", workers=workers, scheduler=scheduler,
                 progress=progress)
    for branch, row in zip(values, rows):              # rows come in grid order
        link = level_dir / branch
        if not link.is_symlink():
            link.symlink_to(Path("sweep") / row["run"], target_is_directory=True)
        if branch == "ticket" and row["status"] == "failed":
            raise RunFolderError(f"the ticket of level {level} failed ({row['error']}); see "
                                 f"{link}")


# ---------------------------------------------------------------------------------------------
# Results

def early_stop_step(run_dir):
    """The step of the lowest validation loss in metrics.jsonl (the first, on ties)."""
    best = None
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("val_loss") is not None and (best is None or rec["val_loss"] < best[1]):
            best = (rec["step"], rec["val_loss"])
    return None if best is None else best[0]


def collect(out, levels, branches):
    """One row per run folder of the lottery (COLUMNS); a run that failed (no summary.json)
    is a row with status failed and no numbers."""
    rows = []
    for level in range(levels + 1):
        for branch in (("ticket",) if level == 0 else branches):
            run_dir = out / f"level_{level}" / branch
            if not (run_dir / "summary.json").is_file():
                masks = dict(np.load(out / f"level_{level}" / "mask.npz"))
                rows.append(dict({c: None for c in COLUMNS}, level=level, branch=branch,
                                 sparsity=round(M.sparsity(masks), 6), status="failed"))
                continue
            summary = read_json(run_dir / "summary.json")
            rows.append({"level": level, "branch": branch,
                         "sparsity": round(summary.get("sparsity", 0.0), 6),
                         "status": summary["status"],
                         "final_val_loss": summary.get("final_val_loss"),
                         "best_val_loss": summary.get("best_val_loss"),
                         "val_acc": summary.get("val_acc"),
                         "early_stop_step": early_stop_step(run_dir)})
    return rows


def write_csv(path, rows):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row[k] is None else row[k] for k in COLUMNS})
    atomic_write(path, buf.getvalue().encode("utf-8"))
