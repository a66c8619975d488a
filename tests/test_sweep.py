"""Tests of sweeps (studies/): the rows, statuses and folders of a small grid on the digits ViT and
a tiny GPT with 2 workers; bit-identical results whatever the number of workers and after a
kill -9 of the sweep; every bad input one line with nothing written. The Dask backend's tests are
in test_sweep_dask.py."""
import csv
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
from minitransformer.errors import ConfigError
from minitransformer.studies.sweep import SweepSpec, sweep

ROOT = Path(__file__).resolve().parents[1]
VIT = dict(model="vit", data="digits", max_iters=40, n_layer=1, n_embd=16, n_head=2,
           batch_size=16, patch_size=4, eval_interval=20, eval_iters=2, log_interval=5,
           checkpoint_interval=10, warmup_iters=2)
SPEC = SweepSpec(base=VIT, grid={"lr": [1e-3, 1e-2]}, seeds=2)
TIMINGS = ("ms_per_iter", "wall_time_s")          # measured, so they differ between sweeps


def results(out):
    """results.csv without the timing columns, as text (bit-identical comparisons)."""
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: v for k, v in r.items() if k not in TIMINGS} for r in rows]


def run_files(out):
    """Every run's metrics.jsonl bytes and checkpoint parameters: what a run computed."""
    files = {}
    for run in sorted((out / "runs").iterdir()):
        files[run.name, "metrics"] = (run / "metrics.jsonl").read_bytes()
        with np.load(run / "checkpoint.npz") as z:
            for k in z.files:
                if not k.startswith("train."):     # train.elapsed_s is a timing
                    files[run.name, k] = z[k].tobytes()
    return files


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "w2"
    rows = sweep(SPEC, out, workers=2, progress=False)
    return out, rows


def test_grid_rows_statuses_and_folders_vit(two_workers):
    out, rows = two_workers
    names = ["lr=0.001,seed=0", "lr=0.001,seed=1", "lr=0.01,seed=0", "lr=0.01,seed=1"]
    assert [r["run"] for r in rows] == [f"runs/{n}" for n in names]       # grid order, seeds inner
    assert sorted(p.name for p in (out / "runs").iterdir()) == names
    assert {r["status"] for r in rows} == {"completed"}
    for r in rows:
        summary = json.loads((out / r["run"] / "summary.json").read_text())
        assert r["final_val_loss"] == summary["final_val_loss"]
        assert r["val_acc"] == summary["val_acc"] and 0 <= r["val_acc"] <= 1
        cfg = json.loads((out / r["run"] / "config.json").read_text())["train"]
        assert (cfg["lr"], cfg["seed"], cfg["max_iters"]) == (r["lr"], r["seed"], 40)
    assert json.loads((out / "sweep.json").read_text())["grid"] == {"lr": [0.001, 0.01]}
    md = (out / "results.md").read_text()
    assert "| lr | runs | n | diverged | failed |" in md and md.count("| 0.0") == 2
    assert len(results(out)) == 4


def test_statuses_diverged_and_failed_are_rows_gpt(tmp_path, capsys):
    """A tiny GPT: one setting diverges (a result), one fails late (init_from a missing folder:
    a row with its one-line error), and the sweep goes on."""
    base = dict(max_iters=8, n_layer=1, n_embd=16, n_head=2, block_size=16, batch_size=4,
                eval_interval=4, eval_iters=1, log_interval=2, warmup_iters=0, grad_clip=0.0,
                min_lr=0.0)
    spec = SweepSpec(base=base, grid={"lr": [1e-3, 10.0],
                                      "init_from": [None, str(tmp_path / "no_such_run")]})
    rows = sweep(spec, tmp_path / "s", workers=2, progress=False)
    st = {(r["lr"], r["init_from"] is None): r for r in rows}
    assert st[1e-3, True]["status"] == "completed" and st[1e-3, True]["val_acc"] is None
    assert st[10.0, True]["status"] == "diverged" and st[10.0, True]["final_val_loss"] is None
    assert st[10.0, True]["diverged_step"] is not None
    for lr in (1e-3, 10.0):
        r = st[lr, False]
        assert r["status"] == "failed" and "no_such_run" in r["error"]
        assert "\n" not in r["error"] and r["final_val_loss"] is None
    table = (tmp_path / "s" / "results.md").read_text()
    assert "Failed runs:" in table and "1 completed, 1 diverged, 2 failed" in table
    assert table.index("| 0.001 | none |") < table.index("| 10.0 | none |")   # best first
    # plot DIR on a sweep folder: a heatmap over two axes and the curves, or one-line errors
    code, err = _cli(capsys, "plot", str(tmp_path / "s"), "--x", "lr", "--y", "init-from")
    assert code == 0, err
    for name in ("sweep_heatmap.png", "sweep_curves.png"):
        assert (tmp_path / "s" / "plots" / name).stat().st_size > 10_000
    for args, words in ((["--x", "colour"], ["--x colour", "not an axis", "lr, init_from"]),
                        (["--x", "lr", "--y", "lr"], ["both lr"]),
                        (["--metric", "val_acc"], ["no accuracy"])):
        code, err = _cli(capsys, "plot", str(tmp_path / "s"), *args)
        _assert_one_line(code, err, words)


def test_one_worker_equals_two_workers_and_rerun_redoes_nothing(two_workers, tmp_path):
    out2, _ = two_workers
    out1 = tmp_path / "w1"
    sweep(SPEC, out1, workers=1, progress=False)
    assert results(out1) == results(out2)
    assert run_files(out1) == run_files(out2)
    before = {p: p.stat().st_mtime_ns for p in out1.rglob("checkpoint.npz")}
    rows = sweep(SPEC, out1, workers=2, progress=False)              # complete: nothing redone
    assert {p: p.stat().st_mtime_ns for p in out1.rglob("checkpoint.npz")} == before
    assert len(rows) == 4 and results(out1) == results(out2)


def test_kill_9_mid_sweep_then_rerun_equals_uninterrupted(two_workers, tmp_path):
    """SIGKILL the sweep while a run is past a checkpoint; its workers die with it; the rerun
    resumes and ends with the same results, one row per run."""
    ref, _ = two_workers
    out = tmp_path / "killed"
    opts = [f"--{k.replace('_', '-')}={v}" for k, v in VIT.items()]
    cmd = [sys.executable, str(ROOT / "cli.py"), "sweep", "--out", str(out), *opts,
           "--grid", "lr=1e-3,1e-2", "--seeds", "2", "--workers", "2", "--quiet"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60

    def mid_run():
        runs = out / "runs"
        return runs.is_dir() and any((r / "checkpoint.npz").exists() and
                                     not (r / "summary.json").exists() for r in runs.iterdir())
    while not mid_run() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    interrupted = [r for r in (out / "runs").iterdir() if not (r / "summary.json").exists()]
    assert interrupted, "the sweep finished before it could be killed"
    time.sleep(0.2)                                 # its workers die with it (PR_SET_PDEATHSIG)
    rows = sweep(SweepSpec(base=VIT, grid={"lr": ["1e-3", "0.01"]}, seeds=[0, 1]), out,
                 workers=2, progress=False)
    assert len(rows) == 4 and len({r["run"] for r in rows}) == 4
    assert results(out) == results(ref)
    assert run_files(out) == run_files(ref)


def test_progress_line_on_a_terminal():
    """done / running / failed / waiting and an ETA once a run has finished, in place on a TTY;
    nothing when the stream is not a terminal."""
    import io
    from minitransformer.studies.sweep import SweepProgress

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    term = Terminal()
    show = SweepProgress(True, total=6, parallel=2, stream=term)
    show.draw(done=0, failed=0, running=2, force=True)
    assert term.getvalue().endswith("0/6 done (0 failed), 2 running, 4 waiting, ETA ?")
    show.t0 -= 10.0                                 # 10 s in, 2 runs finished on 2 workers:
    show.finished_here = 2                          # 10 s a run; 4 left, 2 of them half done:
    show.draw(done=2, failed=1, running=2, force=True)   # 3 runs' work on 2 workers = 15 s
    line = term.getvalue().split("\r\033[K")[-1]
    assert line == "sweep: 2/6 done (1 failed), 2 running, 2 waiting, ETA 0:00:15", line
    plain = io.StringIO()
    SweepProgress(True, total=6, parallel=2, stream=plain).draw(0, 0, 0, force=True)
    assert plain.getvalue() == ""


T = ["--model", "vit", "--data", "digits", "--max-iters", "5", "--n-layer", "1", "--batch-size",
     "8", "--patch-size", "4", "--warmup-iters", "0"]


@pytest.mark.parametrize("args, words", [
    (["--grid", "colour=red"], ["--grid colour", "unknown training setting"]),
    (["--grid", "lr=abc"], ["--grid lr=abc", "must be a number"]),
    (["--grid", "lr=0.1,-1"], ["--grid lr=-1.0", "lr must be positive"]),
    (["--grid", "init=gpt2,nonsense"], ["--grid init=nonsense", "unknown init"]),
    (["--grid", "norm=pre,sideways"], ["--grid norm=sideways", "norm must be one of"]),
    (["--grid", "rezero=maybe"], ["--grid rezero=maybe", "true or false"]),
    (["--grid", "n_head=2,3"], ["--grid n_head=3", "divisible"]),
    (["--grid", "lr=1e-3,0.001"], ["--grid lr=0.001", "given twice"]),
    (["--grid", "lr=1e-3", "--grid", "lr=1e-2"], ["--grid lr", "twice"]),
    (["--grid", "seed=1,2"], ["--grid seed", "--seeds"]),
    (["--grid", "lr"], ["--grid lr", "NAME=V1,V2"]),
    (["--grid", "lr=1e-3,"], ["--grid lr=1e-3,", "empty"]),
    (["--grid", "warmup-iters=0,10"], ["warmup_iters", "both a grid axis and a shared option"]),
    (["--grid", "n_embd=16,24", "--grid", "n_head=4,16"],
     ["--grid n_embd=24,n_head=16", "divisible"]),
    (["--grid", "patch_size=4,5"], ["--grid patch_size=5", "must divide"]),
    (["--grid", "init_std=0.02,0"], ["--grid init_std=0.0", "init_std must be positive"]),
    (["--data", "cifar", "--grid", "lr=1e-3"], ["shared options", "data for vit"]),
    (["--seeds", "x"], ["--seeds", "count"]),
    (["--seeds", "0"], ["--seeds 0", "at least 1"]),
    (["--seeds", "1,1"], ["--seeds", "twice"]),
    (["--seed", "3"], ["--seed", "--seeds"]),
    (["--workers", "0"], ["--workers", "positive integer"]),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], ["--workers", "--scheduler"]),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, words):
    out = tmp_path / "s"
    base = T[:-4] + T[-2:] if "patch_size=4,5" in args else T     # the axis, not the option
    code, err = _cli(capsys, "sweep", "--out", str(out), *base, *args)
    _assert_one_line(code, err, words)
    assert not out.exists()


def test_bad_folder_and_resume_inputs(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, err = _cli(capsys, "sweep", "--out", str(tmp_path / "file"), *T)
    _assert_one_line(code, err, ["is a file"])
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    code, err = _cli(capsys, "sweep", "--out", str(tmp_path / "busy"), *T)
    _assert_one_line(code, err, ["not empty", "not a sweep folder"])
    code, err = _cli(capsys, "sweep", "--resume", str(tmp_path / "busy"))
    _assert_one_line(code, err, ["not a sweep folder"])
    code, err = _cli(capsys, "sweep", "--resume", str(tmp_path / "busy"), "--lr", "0.1")
    _assert_one_line(code, err, ["--resume", "drop --lr"])
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["busy", "file", "notes.txt"]


def test_other_spec_in_same_folder_is_an_error_and_resume_continues(tmp_path, capsys):
    out = tmp_path / "s"
    sweep(SweepSpec(base=dict(zip(T[::2], T[1::2])), grid={"lr": [1e-3]}), out, workers=1,
          progress=False)
    snapshot = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    code, err = _cli(capsys, "sweep", "--out", str(out), *T, "--grid", "lr=1e-3,1e-2")
    _assert_one_line(code, err, ["holds a different sweep", "grid"])
    with pytest.raises(ConfigError, match="seeds"):
        sweep(SweepSpec(base=dict(zip(T[::2], T[1::2])), grid={"lr": [1e-3]}, seeds=2), out)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == snapshot
    code, err = _cli(capsys, "sweep", "--resume", str(out), "--workers", "1", "--quiet")
    assert code == 0, err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()
            and p.name not in ("results.csv", "results.md")} == \
        {p: b for p, b in snapshot.items() if p.name not in ("results.csv", "results.md")}


def _cli(capsys, *args):
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    return code, capsys.readouterr().err


def _assert_one_line(code, err, words):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for w in words:
        assert w in lines[0], lines[0]
