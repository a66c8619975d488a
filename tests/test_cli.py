"""Tests of the train / sample / bench commands: every bad input of issue 3 item 8 is one line on
stderr with a non-zero exit and no traceback, options map onto TrainConfig, explicit options are
recorded, and a diverging run exits non-zero. Most tests call cli.main in-process (the same code
path as `python cli.py`); one runs the real script in a subprocess."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minitransformer.analysis.bench import cpu_model
from minitransformer.training.shards import shard_bounds
from minitransformer.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--block-size", "16",
        "--batch-size", "8", "--max-iters", "20", "--warmup-iters", "2", "--eval-interval", "10",
        "--eval-iters", "2", "--checkpoint-interval", "10"]
DESIGN_OPTIONS = ("--model --data --out --resume --seed --dtype --init --init-scale --init-std "
                  "--norm --rezero --no-rezero --n-layer --n-head --n-embd --block-size "
                  "--batch-size --patch-size --pool --max-iters --lr --min-lr --warmup-iters "
                  "--lr-decay-iters --schedule --beta1 --beta2 --weight-decay --grad-clip "
                  "--eval-interval --eval-iters --log-interval --checkpoint-interval --optimizer "
                  "--init-from --reinit-head --allow-partial --init-seed --data-seed --extend "
                  "--allow-data-change").split()


def assert_one_line_error(code, err, *words):
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished tiny GPT run."""
    out = tmp_path_factory.mktemp("cli") / "run"
    main(["train", *TINY, "--out", str(out), "--quiet"])
    return out


# ------------------------------------------------------------------------------ bad input

def _files(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "binary.dat").write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00" * 20)
    (tmp_path / "latin1.txt").write_bytes("café crème".encode("latin-1") * 50)
    (tmp_path / "short.txt").write_text("To be, or not to be: that is the question.\n")
    (tmp_path / "a_file").write_text("not a folder")
    return tmp_path


@pytest.mark.parametrize("args, words", [
    (["--data", "{d}/missing.txt"], ["not found", "missing.txt"]),
    (["--data", "{d}/empty.txt"], ["empty.txt is empty"]),
    (["--data", "{d}/binary.dat"], ["binary"]),
    (["--data", "{d}/latin1.txt"], ["not valid UTF-8"]),
    (["--data", "{d}/short.txt"], ["text too short"]),
    (["--n-embd", "30", "--n-head", "4"], ["n_embd (30) must be divisible by n_head (4)"]),
    (["--lr", "0"], ["lr must be positive"]),
    (["--lr", "-0.001"], ["lr must be positive"]),
    (["--lr", "nan"], ["lr must be positive and finite"]),
    (["--lr", "inf"], ["lr must be positive and finite"]),
    (["--batch-size", "0"], ["batch_size must be a positive integer"]),
    (["--init", "xavier_magic"], ["unknown init 'xavier_magic'", "gpt2"]),
    (["--model", "vit", "--patch-size", "5"], ["patch_size (5) must divide image_size (28)"]),
    (["--model", "vit", "--data", "cifar"], ["data for vit must be one of"]),
    (["--schedule", "exponential"], ["schedule must be one of"]),
    (["--out", "{d}/a_file"], ["is a file"]),
    (["--resume", "{d}/no_such_run"], ["run folder not found"]),
    (["--resume", "{d}/a_file"], ["a_file"]),
])
def test_bad_input_is_one_line(tmp_path, run_cli, args, words):
    d = _files(tmp_path)
    args = [a.format(d=d) for a in args]
    shape = [] if args[0] == "--resume" else TINY             # --resume takes no other options
    code, _, err = run_cli("train", *shape, *args, "--quiet")
    assert_one_line_error(code, err, *words)
    assert (d / "a_file").read_text() == "not a folder"       # nothing overwritten


@pytest.mark.parametrize("content, words", [
    (b"garbage, not a zip", ["not an .npz archive"]),
    (b"PK\x03\x04" + b"\x00" * 64, ["corrupt"]),
    ("pickle", ["pickle"]),
    ("object-array", ["pickled objects"]),
])
def test_bad_checkpoint_is_one_line_and_loses_nothing(run_dir, tmp_path, run_cli, content, words):
    import shutil
    bad = tmp_path / "bad"
    shutil.copytree(run_dir, bad)
    (bad / "summary.json").unlink()                          # an unfinished run
    ckpt = bad / "checkpoint.npz"
    if content == "pickle":
        import pickle
        ckpt.write_bytes(pickle.dumps({"wte.weight": [1.0, 2.0]}))
    elif content == "object-array":
        np.savez(ckpt, **{"wte.weight": np.array([None, 1], dtype=object)})
    else:
        ckpt.write_bytes(content)
    metrics = (bad / "metrics.jsonl").read_bytes()
    code, _, err = run_cli("train", "--resume", str(bad))
    assert_one_line_error(code, err, "checkpoint.npz", *words)
    assert (bad / "metrics.jsonl").read_bytes() == metrics   # nothing truncated
    code, _, err = run_cli("sample", str(bad))
    assert_one_line_error(code, err, *words)


def test_resume_refuses_other_options(run_dir, run_cli):
    code, _, err = run_cli("train", "--resume", str(run_dir), "--lr", "0.1")
    assert_one_line_error(code, err, "--resume", "--lr")


def test_existing_run_is_not_overwritten(run_dir, run_cli):
    before = (run_dir / "metrics.jsonl").read_bytes()
    code, _, err = run_cli("train", *TINY, "--out", str(run_dir))
    assert_one_line_error(code, err, "already holds a run")
    assert (run_dir / "metrics.jsonl").read_bytes() == before


def test_real_script_in_subprocess(tmp_path):
    """`python cli.py train` itself: one line, exit 2, no traceback."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, str(ROOT / "cli.py"), "train", "--lr", "-1"],
                       capture_output=True, text=True, env=env, cwd=tmp_path)
    assert p.returncode == 2 and p.stderr == "error: lr must be positive and finite, got -1.0\n"
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------------ options

def test_help_lists_design_options(run_cli):
    code, out, _ = run_cli("train", "--help")
    assert code == 0
    for opt in DESIGN_OPTIONS:
        assert opt in out, opt


def test_options_map_to_config_and_explicit_is_recorded(run_dir):
    config = json.loads((run_dir / "config.json").read_text())
    t = config["train"]
    assert (t["n_layer"], t["n_head"], t["n_embd"], t["block_size"], t["batch_size"]) == \
        (1, 2, 32, 16, 8)
    assert (t["max_iters"], t["warmup_iters"], t["eval_interval"]) == (20, 2, 10)
    assert t["lr"] == 1e-3 and t["beta2"] == 0.99                     # untouched defaults
    assert set(t["explicit"]) == {"n_layer", "n_head", "n_embd", "block_size", "batch_size",
                                  "max_iters", "warmup_iters", "eval_interval", "eval_iters",
                                  "checkpoint_interval"}


def test_train_prints_progress_and_sample(tmp_path, run_cli):
    code, out, err = run_cli("train", *TINY, "--max-iters", "12", "--out",
                             str(tmp_path / "r"))
    assert code == 0
    assert "step 0: train loss" in err and "ms/iter" in err and "ETA" in err
    assert "done: val loss" in err
    assert len(out) >= 200                                          # the sample, on stdout


def test_divergence_exits_nonzero(tmp_path, run_cli):
    code, _, err = run_cli("train", *TINY, "--lr", "50", "--warmup-iters", "0", "--out",
                           str(tmp_path / "d"), "--quiet")
    assert code == 1
    assert "Traceback" not in err and "diverged at step" in err
    assert json.loads((tmp_path / "d" / "summary.json").read_text())["status"] == "diverged"


def test_sample_command(run_dir, run_cli):
    code, out, _ = run_cli("sample", str(run_dir), "--prompt", "ROMEO:",
                           "--max-new-tokens", "30", "--seed", "1")
    assert code == 0 and out.startswith("ROMEO:") and len(out.rstrip("\n")) >= 36
    code, _, err = run_cli("sample", str(run_dir), "--prompt", "naïve")
    assert_one_line_error(code, err, "'ï'")


def test_bench_json(run_cli):
    code, out, _ = run_cli("bench", "--n-layer", "1", "--n-embd", "32", "--n-head", "2",
                           "--block-size", "16", "--batch-size", "4", "--iters", "3",
                           "--warmup", "1", "--gemm-size", "256", "--json")
    assert code == 0
    r = json.loads(out)
    for key in ("ms_median", "ms_p90", "ms_mean", "tokens_per_s", "gflops", "gemm_peak_gflops",
                "fraction_of_peak", "flops_formula"):
        assert key in r
    assert r["ms_min"] <= r["ms_median"] <= r["ms_p90"] and r["threads"] is None
    assert r["machine"]["cpu"] == cpu_model() and r["machine"]["cpu"].strip()
    assert r["tokens_per_iter"] == 64 and r["gemm_peak_gflops"] > 0
    # known values: 15,360 parameters (wte 2,080 + wpe 512 + block 12,704 + ln_f 64) and
    # 6·14,848·4·16 + 12·1·32·16·4·16 = 6,094,848 FLOPs per iteration
    assert r["n_params"] == 15_360 and r["gflop_per_iter"] == 0.0061
    seconds = r["ms_median"] / 1e3
    # ms_median is rounded to 1 us in the JSON: a tiny model's ~0.3 ms step carries up to
    # 0.5 us / ms_median of relative rounding error into anything recomputed from it
    rel = 1e-3 + 0.5e-3 / r["ms_median"]
    assert r["tokens_per_s"] == pytest.approx(64 / seconds, rel=rel)
    assert r["gflops"] == pytest.approx(6_094_848 / seconds / 1e9, rel=rel, abs=0.006)
    assert r["fraction_of_peak"] == pytest.approx(r["gflops"] / r["gemm_peak_gflops"], rel=0.02,
                                                  abs=1e-4)
    # the GEMM floor is that of the largest shard (the shards run at once)
    assert r["gemm_floor_rows"] == max(b - a for a, b in shard_bounds(4, r["shards"]))
    assert r["gemm_floor_ms"] > 0


def test_bench_vit_json(run_cli):
    """--model vit times the ViT: the parameters of test_torch_vit_benchmark_script's ViT,
    17 tokens per image, and by hand 6·4,112·4·17 + 6·170·4 + 12·1·16·17²·4 = 1,903,728 FLOPs
    (4,112 = 4,570 parameters without pos 272, cls 16 and the head's 170)."""
    code, out, _ = run_cli("bench", "--model", "vit", "--n-layer", "1", "--n-embd", "16",
                           "--n-head", "2", "--batch-size", "4", "--iters", "2", "--warmup", "1",
                           "--gemm-size", "128", "--json")
    assert code == 0
    r = json.loads(out)
    assert r["config"]["model"] == "vit" and r["config"]["patch_size"] == 7
    assert r["n_params"] == 4_570 and r["tokens_per_iter"] == 68
    rel = 1e-3 + 0.5e-3 / r["ms_median"]              # ms_median is rounded to 1 us (as above)
    assert r["gflops"] == pytest.approx(1_903_728 / (r["ms_median"] / 1e3) / 1e9, rel=rel,
                                        abs=0.006)
    assert r["gemm_floor_rows"] == max(b - a for a, b in shard_bounds(4, r["shards"]))
    code, out, _ = run_cli("bench", "--model", "vit", "--n-layer", "1", "--n-embd", "16",
                           "--n-head", "2", "--batch-size", "4", "--iters", "1", "--warmup", "0",
                           "--gemm-size", "64")
    assert code == 0 and out.startswith("ViT L=1 NH=2 C=16 P=7 B=4 float32: 4,570 parameters")


@pytest.mark.parametrize("args, words", [(("--model", "vit", "--block-size", "8"),
                                          "--block-size applies to --model gpt only"),
                                         (("--model", "vit", "--vocab-size", "8"), "--vocab-size"),
                                         (("--patch-size", "4"),
                                          "--patch-size applies to --model vit only")])
def test_bench_options_of_the_other_model_are_one_line(run_cli, args, words):
    code, _, err = run_cli("bench", *args)
    assert_one_line_error(code, err, words)


def test_bench_one_thread_float64_in_a_fresh_process(run_cli):
    """--threads 1 runs in a child whose BLAS / Numba thread counts are 1; float64 is timed and
    compared with the float64 GEMM peak."""
    code, out, _ = run_cli("bench", "--n-layer", "1", "--n-embd", "16", "--n-head", "2",
                           "--block-size", "8", "--batch-size", "2", "--iters", "2",
                           "--warmup", "1", "--gemm-size", "128", "--threads", "1",
                           "--dtype", "float64")
    assert code == 0
    assert "float64" in out and "1 thread(s) of BLAS/Numba in a fresh process" in out
    assert "p90" in out and "128x128 float64" in out
    assert f"machine          {cpu_model()}, " in out


@pytest.mark.parametrize("option, value, words", [("--threads", "0", "threads"),
                                                  ("--dtype", "float16", "dtype"),
                                                  ("--gemm-size", "0", "gemm_size")])
def test_bench_bad_options_are_one_line(run_cli, option, value, words):
    code, _, err = run_cli("bench", option, value)
    assert_one_line_error(code, err, words)


def test_percentile_is_numpys_linear_rule():
    from minitransformer.analysis.bench import percentile, summarize
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 90) == \
        pytest.approx(9.1)
    s = summarize([0.010] * 9 + [0.030], tokens=100, flops=1e9, peak=100.0)
    assert s["ms_median"] == 10.0 and s["ms_p90"] == pytest.approx(12.0) and s["ms_mean"] == 12.0


def test_torch_vit_benchmark_script(tmp_path):
    """benchmarks/torch_vit.py on a small ViT in one process: the PyTorch ViT has our parameter
    count tensor for tensor (the script asserts it), both sides timed, a ratio."""
    pytest.importorskip("torch")
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "torch_vit.py"),
                        "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--batch-size", "4",
                        "--iters", "2", "--warmup", "1", "--rounds", "1", "--gemm-size", "128",
                        "--same-process", "--json"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    # patch 49*16+16, cls 16, pos 17*16, block (2*32 + 16*48+48 + 16*16+16 + 16*64+64 + 64*16+16),
    # norm 32, head 16*10+10
    assert r["n_params"] == 800 + 16 + 272 + 3280 + 32 + 170
    assert r["minitransformer"]["ms_p90"] > 0 and r["torch"]["ms_median"] > 0
    assert r["ratio_ours_over_torch"] > 0
    assert r["cpu"] == cpu_model() and r["cpus"] >= 1
    assert r["gemm_floor_ms"] > 0 and r["ms_at_gemm_peak"] > 0
    assert len(r["torch_over_ours_by_round"]) == 1 and r["torch_over_ours_by_round"][0] > 0


def test_torch_benchmark_script(tmp_path):
    """benchmarks/torch_gpt.py on a tiny model: both sides timed, same parameter count, a ratio."""
    pytest.importorskip("torch")
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "torch_gpt.py"),
                        "--n-layer", "1", "--n-embd", "32", "--n-head", "2", "--block-size", "16",
                        "--batch-size", "4", "--iters", "2", "--warmup", "1", "--rounds", "1",
                        "--gemm-size", "256", "--json"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["minitransformer"]["ms_median"] > 0 and r["torch"]["ms_median"] > 0
    assert r["ratio_ours_over_torch"] > 0
    # the two ceilings: the model FLOPs (6,094,848, as test_bench_json) at the GEMM peak, and
    # our GEMM floor
    at_peak = 6_094_848 / (r["gemm_peak_gflops"] * 1e9) * 1e3
    assert r["ms_at_gemm_peak"] == pytest.approx(at_peak, rel=1e-3, abs=0.5e-3)  # ms to 1 us
    # the report rounds ratios to 1e-3 and ms to 1 us: that much relative slack
    ratio_slack = 2e-3 + 0.5e-3 / r["torch_over_peak_time"]
    assert r["torch_over_peak_time"] == pytest.approx(r["torch"]["ms_median"] / at_peak,
                                                      rel=ratio_slack)
    assert r["gemm_floor_ms"] > 0
    floor_slack = 0.5e-3 / r["gemm_floor_ms"] + 0.5e-3 / r["torch_over_floor"]
    assert r["torch_over_floor"] == pytest.approx(r["torch"]["ms_median"] / r["gemm_floor_ms"],
                                                  rel=floor_slack)


def test_versus_report_ratio_round_by_round_and_ceilings():
    """benchmarks/versus.report on hand-made times: medians over all iterations of a side,
    torch / ours per round from that round's two blocks, and the two ceilings."""
    import types
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import versus
    finally:
        sys.path.pop(0)
    a = types.SimpleNamespace(rounds=2, threads=1)
    ours = [[0.010, 0.012, 0.011], [0.020, 0.020, 0.020]]
    torch_times = [[0.030] * 3, [0.030] * 3]
    r = versus.report(a, "test", 10, 1e9, 100, ours, torch_times, 100.0, floor=0.005)
    assert r["torch_over_ours_by_round"] == [2.727, 1.5]          # 30 / 11, 30 / 20
    assert r["minitransformer"]["ms_median"] == 16.0               # of 10, 11, 12, 20, 20, 20
    assert r["torch_over_ours"] == 1.875
    # 1 GFLOP at 100 GFLOP/s: 10 ms; PyTorch's 30 ms is 3x that and 6x the 5 ms floor
    assert r["ms_at_gemm_peak"] == 10.0 and r["torch_over_peak_time"] == 3.0
    assert r["gemm_floor_ms"] == 5.0 and r["torch_over_floor"] == 6.0
