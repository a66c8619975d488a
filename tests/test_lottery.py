"""Tests of the lottery (studies/lottery.py) and the instability analysis (studies/instability.py)
on a tiny digits ViT: rewinding, the controls' masks, resuming after SIGKILL mid-level, the
barrier of identical copies (exactly 0) and of two independent runs (clearly positive), and bad
input as one line with exit status 2."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from minitransformer.cli import main
from minitransformer.studies import instability as I
from minitransformer.studies.lottery import lottery
from minitransformer.training import masks as M
from minitransformer.training.build import make_model, resolve_data
from minitransformer.training.config import TrainConfig
from minitransformer.training.loop import run
from minitransformer.training.checkpoint import load_checkpoint
from minitransformer.training.runfolder import read_run_config

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(model="vit", data="digits", n_layer=1, n_head=2, n_embd=16, patch_size=4,
            batch_size=16, max_iters=40, warmup_iters=5, lr=1e-2, eval_interval=10,
            eval_iters=1, log_interval=5, checkpoint_interval=15)
FLAGS = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
SPEC = dict(levels=2, fraction=0.3, rewind_iter=5, strategy="global")
LOTTERY_FLAGS = ["--levels", "2", "--prune-fraction", "0.3", "--rewind-iter", "5", "--quiet"]


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """One uninterrupted tiny lottery (2 levels, 3 branches: 5 runs of 35-40 steps)."""
    out = tmp_path_factory.mktemp("lottery") / "ref"
    rows = lottery(TrainConfig.for_model(**TINY), out, workers=1, progress=False, **SPEC)
    return out, rows


def test_levels_prune_rewind_and_controls(done):
    out, rows = done
    assert [(r["level"], r["branch"]) for r in rows] == [
        (0, "ticket"), (1, "ticket"), (1, "randomly_reinitialize"), (1, "randomly_prune"),
        (2, "ticket"), (2, "randomly_reinitialize"), (2, "randomly_prune")]
    assert all(r["status"] == "completed" for r in rows)
    state = load_checkpoint(out / "level_0" / "ticket" / "state_5.npz")
    alive = None
    for level in (1, 2):
        lv = out / f"level_{level}"
        mask = {k: v for k, v in np.load(lv / "mask.npz").items()}
        alive = alive or sum(m.size for m in mask.values())
        alive -= M.prune_count(0.3, alive)                        # exactly this many survive
        assert sum(int(m.sum()) for m in mask.values()) == alive
        # ticket: exactly the step-5 values times the mask; every other tensor exactly step 5
        start = load_checkpoint(lv / "ticket.start.npz")
        for name in state:
            if name in mask:
                assert np.array_equal(start[name], state[name] * mask[name]), name
                for moment in ("opt.m.", "opt.v."):           # no momentum for pruned weights
                    assert np.array_equal(start[moment + name],
                                          state[moment + name] * mask[name]), (moment, name)
            elif not name.startswith(("opt.", "mask.")):
                assert np.array_equal(start[name], state[name]), name
        rand = {k: v for k, v in np.load(lv / "randomly_prune" / "mask.npz").items()}
        reinit = load_checkpoint(lv / "randomly_reinitialize.start.npz")
        for name, m in mask.items():
            assert rand[name].sum() == m.sum() and not np.array_equal(rand[name], m)
            assert np.array_equal(reinit[name] != 0, m)              # fresh weights, same mask
            assert not np.array_equal(reinit[name], start[name])
        for branch in ("ticket", "randomly_reinitialize", "randomly_prune"):
            ckpt = load_checkpoint(lv / branch / "checkpoint.npz")
            m = np.load(lv / branch / "mask.npz")
            for name in m.files:                                     # still exactly zero
                assert np.all(ckpt[name][~m[name]] == 0)
    text = (out / "results.csv").read_text().splitlines()
    assert text[0] == ("level,branch,sparsity,status,final_val_loss,best_val_loss,val_acc,"
                       "early_stop_step")
    report = (out / "report.md").read_text()
    assert "Verdict: " in report and "lottery_metric.png" in report
    assert (out / "lottery_metric.png").stat().st_size > 0


def test_fresh_optimizer_state_starts_every_branch_with_a_new_adamw(done, tmp_path, run_cli):
    """--optimizer-state fresh (open_lth's way): each branch starts from the step-K weights
    with every AdamW moment 0 and step count 0, the schedule still at step K; the default
    rewinds the moments with the weights. The folder records the choice, and the same folder
    with the other choice is refused."""
    ref, _ = done
    out = tmp_path / "fresh"
    code, _, err = run_cli("lottery", *FLAGS, "--levels", "1", "--prune-fraction", "0.3",
                           "--rewind-iter", "5", "--optimizer-state", "fresh", "--quiet",
                           "--out", out)
    assert code == 0, err
    state = load_checkpoint(ref / "level_0" / "ticket" / "state_5.npz")
    assert int(state["opt.t"]) == 5                                # what the default keeps
    rewound = load_checkpoint(ref / "level_1" / "ticket.start.npz")
    assert int(rewound["opt.t"]) == 5 and any(np.any(rewound[k] != 0) for k in rewound
                                              if k.startswith("opt.v."))
    for branch in ("ticket", "randomly_reinitialize", "randomly_prune"):
        start = load_checkpoint(out / "level_1" / f"{branch}.start.npz")
        assert int(start["opt.t"]) == 0 and int(start["step"]) == 5, branch
        moments = [k for k in start if k.startswith(("opt.m.", "opt.v."))]
        assert moments and all(not np.any(start[k]) for k in moments), branch
        same = load_checkpoint(ref / "level_1" / f"{branch}.start.npz")
        for name in (k for k in start if not k.startswith(("opt.", "mask."))):
            if name in same and name != "step":
                assert np.array_equal(start[name], same[name]), (branch, name)
        summary = json.loads((out / "level_1" / branch / "summary.json").read_text())
        assert summary["status"] == "completed"
    assert json.loads((out / "lottery.json").read_text())["optimizer_state"] == "fresh"
    assert "(optimizer fresh)" in (out / "report.md").read_text()
    assert "optimizer_state" not in json.loads((ref / "lottery.json").read_text())
    code, _, err = run_cli("lottery", *FLAGS, "--levels", "1", "--prune-fraction", "0.3",
                           "--rewind-iter", "5", "--quiet", "--out", out)
    assert code == 2 and "holds a lottery with other settings" in err


def test_telemetry_replay_of_a_sparse_branch_reproduces_it(done, tmp_path):
    """inspect telemetry replays a lottery branch from its start state, mask included."""
    import shutil
    from minitransformer.analysis.replay import record_run
    from minitransformer.training.runfolder import read_jsonl
    src = done[0] / "level_2" / "randomly_prune"
    run_dir = tmp_path / "copy"
    shutil.copytree(src.resolve(), run_dir)
    res = record_run(run_dir, every=10)
    assert res["checked_against_checkpoint"] and res["steps"] == 35
    recs = read_jsonl(run_dir / "telemetry.jsonl")
    assert recs[0]["step"] == 10 and recs[0]["sparsity"] == pytest.approx(0.51, abs=0.01)


def test_killed_lottery_resumes_to_the_same_results(done, tmp_path):
    """SIGKILL while level 1's branches train (after a first checkpoint), then the same command:
    results.csv and every final checkpoint equal the uninterrupted lottery's."""
    ref, _ = done
    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1")
    args = [sys.executable, "-c", "from minitransformer.cli import main; main()", "lottery",
            *FLAGS, *LOTTERY_FLAGS, "--workers", "1", "--out", str(out)]
    proc = subprocess.Popen(args, env=env, stderr=subprocess.PIPE)
    runs = out / "level_1" / "sweep" / "runs"                   # the level's sweep folders
    deadline = time.time() + 120
    while (not any(runs.glob("*/checkpoint.npz")) and proc.poll() is None
           and time.time() < deadline):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    assert not (out / "results.csv").exists()
    main(["lottery", *FLAGS, *LOTTERY_FLAGS, "--workers", "1", "--out", str(out)])
    assert (out / "results.csv").read_text() == (ref / "results.csv").read_text()
    for level, branch in ((0, "ticket"), (1, "ticket"), (2, "randomly_prune")):
        a = load_checkpoint(ref / f"level_{level}" / branch / "checkpoint.npz")
        b = load_checkpoint(out / f"level_{level}" / branch / "checkpoint.npz")
        for k in a:
            if k != "train.elapsed_s":
                assert np.array_equal(a[k], b[k]), (level, branch, k)


def test_instability_barrier_zero_for_identical_copies_positive_for_independent_runs(done,
                                                                                     tmp_path):
    dense = done[0] / "level_0" / "ticket"
    same = I.instability(dense, [5], n_points=5, same_order=True, progress=False)
    p = same["points"][0]
    assert p["barrier"] == 0.0 and p["loss_barrier"] == 0.0
    assert len(set(p["loss"])) == 1
    diff = I.instability(dense, [5], n_points=5, progress=False)["points"][0]
    assert diff["loss"][0] != diff["loss"][-1]                    # the copies differ
    # two runs from different random inits: a clear loss barrier between them
    cfg = dict(TINY, max_iters=150, batch_size=32, eval_interval=0, checkpoint_interval=0,
               telemetry=False)
    ends = []
    for seed in (1, 2):
        run(TrainConfig.for_model(seed=seed, **cfg), tmp_path / f"s{seed}", progress=False)
        ends.append(load_checkpoint(tmp_path / f"s{seed}" / "checkpoint.npz"))
    _, tcfg, mcfg = read_run_config(tmp_path / "s1")
    model = make_model(tcfg, mcfg)
    theta = [{n: e[n] for n in model.params} for e in ends]
    evaluate = I.evaluator(tcfg, resolve_data(tcfg))
    path = I.path_metrics(model, theta[0], theta[1], np.linspace(0, 1, 5), evaluate)
    loss_barrier = I.barrier([q["loss"] for q in path])
    assert path[0]["loss"] < 1.2 and path[-1]["loss"] < 1.2         # both learned (2.30 at 0)
    assert loss_barrier > 0.3, [q["loss"] for q in path]             # measured: 0.71


@pytest.mark.parametrize("extra, words", [
    (["--levels", "2", "--prune-fraction", "0"], "prune fraction must be in (0, 1)"),
    (["--levels", "2", "--prune-fraction", "1.5"], "prune fraction must be in (0, 1)"),
    (["--levels", "0"], "--levels must be an integer >= 1"),
    (["--levels", "2", "--rewind-iter", "40"], "--rewind-iter 40 is beyond the training"),
    (["--levels", "2", "--strategy", "random"], "--strategy must be one of global, layerwise"),
    (["--levels", "2", "--branches", "ticket,lucky"], "--branches must include ticket"),
    (["--levels", "2", "--optimizer-state", "reset"], "--optimizer-state must be one of rewind, "
                                                      "fresh"),
    (["--levels", "2", "--mask", "m.npz"], "the lottery sets --mask itself"),
    (["--levels", "2", "--patch-size", "3"], "patch_size (3) must divide image_size (8)"),
])
def test_bad_lottery_input_is_one_line(tmp_path, run_cli, extra, words):
    code, _, err = run_cli("lottery", *FLAGS, *extra, "--quiet", "--out", tmp_path / "x")
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert words in err
    assert not (tmp_path / "x").exists()                          # nothing written


def test_help_says_what_is_prunable(run_cli):
    code, out, _ = run_cli("lottery", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "never embedding tables (wte, wpe, pos_embed, cls_token), LayerNorm, biases" in text


def test_bad_mask_file_is_one_line(done, tmp_path, run_cli):
    ticket_mask = done[0] / "level_1" / "mask.npz"
    masks = dict(np.load(ticket_mask))
    bad_name = dict(masks, **{"blocks.7.attn.qkv.weight": masks["blocks.0.attn.qkv.weight"]})
    np.savez(tmp_path / "names.npz", **bad_name)
    bad_shape = dict(masks, **{"head.weight": np.ones((3, 3), bool)})
    np.savez(tmp_path / "shape.npz", **bad_shape)
    for f, words in (("names.npz", "'blocks.7.attn.qkv.weight' is not a parameter"),
                     ("shape.npz", "head.weight has shape (3, 3)")):
        code, _, err = run_cli("train", *FLAGS, "--mask", tmp_path / f, "--quiet",
                               "--out", tmp_path / f"run_{f}")
        assert code == 2 and err.count("\n") == 1 and words in err, err
        assert not (tmp_path / f"run_{f}").exists()
    code, _, err = run_cli("train", *FLAGS, "--mask", ticket_mask, "--quiet",
                           "--out", tmp_path / "ok")
    assert code == 0, err
    assert (tmp_path / "ok" / "mask.npz").read_bytes() != b""
