"""`python cli.py inspect ...`: every command prints ONE JSON document with --json, reads a run
folder, a checkpoint path or a fresh init, and reports bad input as one line with exit 2. The
per-element gradient agrees with its finite difference and with the checkpoint's Adam state."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minitransformer.training.config import TrainConfig
from minitransformer.training.loop import run
from minitransformer.training.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(n_layer=2, n_head=2, n_embd=16, block_size=16, batch_size=4, max_iters=15,
            warmup_iters=3, eval_interval=0, eval_iters=2, checkpoint_interval=0)
FRESH = ["--init", "gpt2", "--n-layer", "1", "--n-embd", "16", "--n-head", "2"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("insp") / "run"
    run(TrainConfig.for_model(**TINY), out, progress=False)
    return out


def one_json(run_cli, *args):
    code, out, err = run_cli(*args, "--json")
    assert code == 0, err
    assert out.count("\n") == 1                           # one document, one line
    return json.loads(out)


def test_spectra(run_dir, run_cli):
    res = one_json(run_cli, "inspect", "spectra", run_dir)
    names = [m["name"] for m in res["matrices"]]
    assert "h.1.attn.c_attn.weight[v]" in names and res["step"] == 15
    m = res["matrices"][names.index("h.0.mlp.c_fc.weight")]
    assert len(m["singular_values"]) == 16 and m["shape"] == [16, 64]
    res = one_json(run_cli, "inspect", "spectra", run_dir / "checkpoint.npz",
                   "--param", "h.0.attn.c_attn.weight")
    assert [m["name"][-3:] for m in res["matrices"]] == ["[q]", "[k]", "[v]"]
    fresh = one_json(run_cli, "inspect", "spectra", *FRESH)
    assert fresh["step"] == 0 and fresh["init"] == "gpt2"
    assert all(m["frac_outside"] == 0 for m in fresh["matrices"])
    code, out, _ = run_cli("inspect", "spectra", run_dir)
    assert code == 0 and "outside" in out and "Healthy" in out


def test_sharpness(run_dir, run_cli):
    res = one_json(run_cli, "inspect", "sharpness", run_dir, "--batch-size", "2", "--restarts", "2",
                   "--method", "lanczos", "--adam")
    assert res["batch_size"] == 2 and len(res["restarts"]) == 2
    assert res["lambda_max"] > 0 and res["two_over_lr"] == pytest.approx(2 / res["lr"])
    cfg = TrainConfig.for_model(**TINY)
    assert res["lr"] == cfg.lr_at(15)
    assert res["adam"]["threshold"] == pytest.approx((2 + 2 * 0.9) / (0.1 * res["lr"]))
    code, out, _ = run_cli("inspect", "sharpness", run_dir, "--batch-size", "2",
                       "--restarts", "1", "--iters", "3")
    assert code == 0 and "2/lr" in out


def test_landscape(run_dir, run_cli, tmp_path):
    res = one_json(run_cli, "inspect", "landscape", run_dir, "--points", "3", "--batches", "1",
                   "--mode", "interp,1d", "--plot", tmp_path / "l.png")
    assert set(res) >= {"interp", "1d"} and len(res["1d"]["loss"]) == 3
    assert (tmp_path / "l.png").is_file()


def test_coordcheck(run_cli):
    res = one_json(run_cli, "inspect", "coordcheck", "--init", "gpt2", "--model", "gpt",
                   "--widths", "16,32", "--steps", "1", "--n-layer", "1")
    assert res["widths"] == [16, 32] and "logits" in res["slopes"]


def test_grad(run_dir, run_cli):
    res = one_json(run_cli, "inspect", "grad", run_dir, "--param", "h.1.attn.c_attn.weight",
                   "--index", "3,17", "--seed", "5")
    # this gradient is ~2e-6 (GPT-2's small Q weights): the check is as close as rounding allows
    assert res["rel_error"] < max(1e-6, 10 * res["rounding"])
    assert res["grad_run_dtype"] == pytest.approx(res["grad"], rel=1e-3, abs=1e-7)
    ckpt = load_checkpoint(run_dir / "checkpoint.npz")
    assert res["value"] == float(ckpt["h.1.attn.c_attn.weight"][3, 17])
    a = res["adam"]
    assert a["m"] == float(ckpt["opt.m.h.1.attn.c_attn.weight"][3, 17]) and a["t"] == 15
    assert a["v"] == float(ckpt["opt.v.h.1.attn.c_attn.weight"][3, 17])
    assert a["last_step"] == pytest.approx(
        -a["lr"] * a["m_hat"] / (np.sqrt(a["v_hat"]) + 1e-8))
    # the seed picks the batch: another seed, another gradient (same value)
    other = one_json(run_cli, "inspect", "grad", run_dir, "--param", "h.1.attn.c_attn.weight",
                     "--index", "3,17", "--seed", "6")
    assert other["value"] == res["value"] and other["grad"] != res["grad"]
    bias = one_json(run_cli, "inspect", "grad", *FRESH, "--param", "h.0.ln_1.bias", "--index", "2")
    assert bias["adam"] is None and bias["step"] == 0 and bias["rel_error"] < 1e-6
    code, out, _ = run_cli("inspect", "grad", run_dir, "--param", "wte.weight", "--index", "0,0")
    assert code == 0 and "gradient (numerical)" in out


@pytest.mark.parametrize("args, words", [
    (["grad", "{run}", "--param", "h.9.attn.c_attn.weight", "--index", "0,0"], "unknown parameter"),
    (["grad", "{run}", "--param", "wte.weight", "--index", "0,999"], "out of range"),
    (["grad", "{run}", "--param", "wte.weight", "--index", "1"], "needs 2"),
    (["grad", "{run}", "--param", "wte.weight", "--index", "x"], "integers"),
    (["spectra", "{run}", "--init", "gpt2"], "not both"),
    (["spectra"], "give a run folder"),
    (["spectra", "{missing}"], "no such run folder"),
    (["spectra", "{file}"], "not a run folder"),
    (["spectra", "--init", "nope"], "unknown init"),
    (["spectra", "{run}", "--param", "nope"], "no weight matrix"),
    (["sharpness", "{run}", "--iters", "0"], ">= 1"),
    (["landscape", "{run}", "--mode", "3d"], "unknown landscape mode"),
    (["coordcheck", "--widths", "32,a"], "--widths"),
    (["coordcheck", "--widths", "30,60"], "multiple of n_head"),
])
def test_errors_are_one_line(run_dir, tmp_path, run_cli, args, words):
    stray = tmp_path / "stray.npz"
    stray.write_bytes(b"PK\x03\x04")
    args = [a.format(run=run_dir, missing=tmp_path / "nope", file=stray) for a in args]
    code, out, err = run_cli("inspect", *args)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], err


def test_the_real_script(run_dir):
    """`python cli.py inspect ...` in a subprocess: the same JSON on stdout."""
    p = subprocess.run([sys.executable, "cli.py", "inspect", "grad", str(run_dir), "--param",
                        "wpe.weight", "--index", "2,3", "--json"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["param"] == "wpe.weight"
