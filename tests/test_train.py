"""Tests of minitransformer.train: learning, the run folder, checkpoints, bit-identical resume
(after an interruption and after SIGKILL), divergence, schedules reaching the optimizer, the ViT.
Every run is tiny (1 layer, 32 channels, block 16), so the file takes a few seconds."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from minitransformer.errors import RunFolderError
from minitransformer.engine.config import ConfigError
from minitransformer.engine.optim import AdamW
from minitransformer.errors import CheckpointError
from minitransformer.training import build, step as train_step_module
from minitransformer.training.config import TrainConfig, VIT_DEFAULTS
from minitransformer.training.shards import auto_shards
from minitransformer.training.loop import resume, run
from minitransformer.training.checkpoint import load_checkpoint, load_run, save_checkpoint
from minitransformer.training.runfolder import read_jsonl
from minitransformer.training.step import diverged

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(n_layer=1, n_head=2, n_embd=32, block_size=16, batch_size=8, max_iters=40,
            warmup_iters=5, lr=3e-3, eval_interval=10, eval_iters=3, log_interval=3,
            checkpoint_interval=15)


def tiny(**kw):
    return TrainConfig.for_model(**dict(TINY, **kw))


def read_metrics(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def same_checkpoints(a, b):
    """Every array equal, bit for bit, except the wall-clock time."""
    ca = load_checkpoint(Path(a) / "checkpoint.npz")
    cb = load_checkpoint(Path(b) / "checkpoint.npz")
    assert set(ca) == set(cb)
    for k in ca:
        if k != "train.elapsed_s":
            assert ca[k].dtype == cb[k].dtype and np.array_equal(ca[k], cb[k]), k


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """One uninterrupted tiny run, shared by the tests that compare against it."""
    out = tmp_path_factory.mktemp("runs") / "full"
    return out, run(tiny(), out, progress=False)


# ------------------------------------------------------------------------------ learning

def test_training_reduces_loss(full_run):
    out, summary = full_run
    metrics = read_metrics(out)
    assert summary["status"] == "completed" and summary["step"] == 40
    assert metrics[0]["val_loss"] == pytest.approx(np.log(65), abs=0.1)     # uniform at init
    assert summary["final_val_loss"] < metrics[0]["val_loss"] - 0.5
    assert summary["best_val_loss"] == min(m["val_loss"] for m in metrics if "val_loss" in m)
    assert len(summary["sample"]) == 200


# ------------------------------------------------------------------------------ run folder

def test_run_folder_files_and_keys(full_run):
    out, summary = full_run
    assert sorted(p.name for p in out.iterdir()) == [".lock", "checkpoint.npz", "config.json",
                                                      "metrics.jsonl", "summary.json",
                                                      "telemetry.jsonl"]
    config = json.loads((out / "config.json").read_text())
    data = str((ROOT / "data" / "tinyshakespeare.txt").resolve())         # stored resolved
    shards = auto_shards(tiny().batch_size)                                # stored resolved too
    assert config["train"] == dict(tiny().to_dict(), data=data, shards=shards)
    assert TrainConfig.from_dict(config["train"]).to_dict() == config["train"]   # repeatable
    assert config["data_hash"]["files"] == [data] and len(config["data_hash"]["sha256"]) == 64
    assert config["model"]["n_embd"] == 32 and config["model"]["vocab_size"] == 65
    assert len(config["vocab"]) == 65 and config["vocab"][0] == "\n"

    metrics = read_metrics(out)
    steps = [m["step"] for m in metrics]
    assert steps == sorted(set(steps)) and steps[-1] == 40
    for m in metrics[:-1]:
        assert {"step", "loss", "lr"} <= set(m)
        assert ("val_loss" in m) == ("train_loss" in m) == (m["step"] % 10 == 0)
    assert set(metrics[-1]) == {"step", "train_loss", "val_loss", "val_bpc"}    # final evaluation
    assert metrics[-2]["step"] == 39                                       # last step is logged

    assert json.loads((out / "summary.json").read_text()) == summary
    for key in ("status", "step", "final_val_loss", "best_val_loss", "wall_time_s"):
        assert key in summary


def test_checkpoint_plain_arrays_only(full_run):
    out, _ = full_run
    path = out / "checkpoint.npz"
    with np.load(path, allow_pickle=False) as npz:            # loads without pickle
        arrays = {k: npz[k] for k in npz.files}
    assert all(a.dtype.kind != "O" for a in arrays.values())
    _, model, info = load_run(out)
    params = set(model.params)
    assert params <= set(arrays)
    assert {k for k in arrays if k.startswith("opt.")} == (
        {"opt.t"} | {f"opt.m.{n}" for n in params} | {f"opt.v.{n}" for n in params})
    assert {k for k in arrays if k.startswith("rng.")} == {"rng.data", "rng.eval", "rng.sample"}
    assert int(arrays["step"]) == 40 and int(arrays["opt.t"]) == 40 and info["step"] == 40
    state = json.loads(str(arrays["rng.data"]))
    assert state["bit_generator"] == "PCG64"
    for name in params:
        assert np.array_equal(model.params[name], arrays[name])


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    params = {"w": np.ones((2, 2), np.float32)}
    opt = AdamW(params, lr=1e-3)
    streams = build.make_streams(0)
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, params, opt, 1, streams, {"elapsed_s": 0.0})
    before = path.read_bytes()

    def crash(f, **arrays):
        f.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError):
        save_checkpoint(path, params, opt, 2, streams, {"elapsed_s": 0.0})
    assert path.read_bytes() == before                         # the old checkpoint survives
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]   # no temp file left
    (tmp_path / "plain").write_bytes(b"")                      # same mode as any new file
    assert path.stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777


def test_bad_checkpoints_are_clear_errors(tmp_path):
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not an .npz"):
        load_checkpoint(path)
    path.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)
    np.savez(path, x=np.array([{"a": 1}], dtype=object))      # an object array = a pickle inside
    with pytest.raises(CheckpointError, match="pickled"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.npz")


# ------------------------------------------------------------------------------ resume

def test_resume_is_bit_identical(full_run, tmp_path, monkeypatch):
    """Interrupt a run at step 22 (after the checkpoint at 15), resume: same params, same
    metrics, same summary numbers as the uninterrupted run."""
    ref, ref_summary = full_run
    out = tmp_path / "interrupted"
    calls, real_clip = [0], train_step_module.clip_grad_norm

    def interrupt_at_22(grads, max_norm):
        calls[0] += 1
        if calls[0] == 23:
            raise KeyboardInterrupt
        return real_clip(grads, max_norm)
    monkeypatch.setattr(train_step_module, "clip_grad_norm", interrupt_at_22)
    with pytest.raises(KeyboardInterrupt):
        run(tiny(), out, progress=False)
    monkeypatch.setattr(train_step_module, "clip_grad_norm", real_clip)
    assert int(load_checkpoint(out / "checkpoint.npz")["step"]) == 15
    assert read_metrics(out)[-1]["step"] == 21                # lines past the checkpoint exist

    summary = resume(out, progress=False)
    same_checkpoints(ref, out)
    assert (out / "metrics.jsonl").read_bytes() == (ref / "metrics.jsonl").read_bytes()
    assert (out / "telemetry.jsonl").read_bytes() == (ref / "telemetry.jsonl").read_bytes()
    for key in ("final_val_loss", "best_val_loss", "sample", "step", "status"):
        assert summary[key] == ref_summary[key]


def test_resume_after_sigkill(tmp_path):
    """A process killed with SIGKILL between checkpoints, then --resume: bit-identical to a run
    that was never killed (metrics lines written after the checkpoint are dropped); its stale
    temporary files are removed and its lock does not block the resume."""
    args = ["--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--block-size", "16",
            "--batch-size", "8", "--max-iters", "400", "--warmup-iters", "5",
            "--eval-interval", "50", "--eval-iters", "2", "--log-interval", "1",
            "--checkpoint-interval", "20", "--quiet"]
    killed, ref = tmp_path / "killed", tmp_path / "ref"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "train", *args,
                             "--out", str(killed)], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    metrics = killed / "metrics.jsonl"
    try:
        while time.monotonic() < deadline and proc.poll() is None:     # until past step 25
            if (killed / "checkpoint.npz").exists() and metrics.exists():
                lines = metrics.read_text().splitlines()
                if lines and lines[-1].endswith("}") and json.loads(lines[-1])["step"] >= 25:
                    break
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    assert not (killed / "summary.json").exists()
    ckpt_step = int(load_checkpoint(killed / "checkpoint.npz")["step"])
    assert 20 <= ckpt_step < 400
    assert read_metrics(killed)[-1]["step"] >= ckpt_step          # lines past the checkpoint

    # what kill -9 in the middle of atomic writes leaves (made certain here): cleaned up at the
    # next open of the folder; a file that is not a temporary of ours stays
    for name in ("checkpoint.npz.k3j2h1q0.tmp", "metrics.jsonl.a8d7f6_e.tmp",
                 "mask.npz.x1y2z3w4.tmp"):
        (killed / name).write_bytes(b"PK\x03\x04" + b"\0" * 5000)
    (killed / "notes.tmp").write_text("mine")
    from minitransformer.cli import main
    main(["train", "--resume", str(killed), "--quiet"])        # the kernel released the lock
    assert sorted(p.name for p in killed.glob("*.tmp")) == ["notes.tmp"]
    main(["train", *args, "--out", str(ref)])
    same_checkpoints(ref, killed)
    assert metrics.read_bytes() == (ref / "metrics.jsonl").read_bytes()
    assert (killed / "telemetry.jsonl").read_bytes() == (ref / "telemetry.jsonl").read_bytes()
    # summary.json: every number equal, except the clock's and the folder's name
    clock = {"wall_time_s", "ms_per_iter", "ms_per_iter_median", "telemetry_ms_per_record",
             "telemetry_overhead", "out_dir"}
    a, b = (json.loads((d / "summary.json").read_text()) for d in (killed, ref))
    assert a["status"] == "completed" and set(a) == set(b)
    assert {k: v for k, v in a.items() if k not in clock} == \
        {k: v for k, v in b.items() if k not in clock}


def test_resume_without_checkpoint_starts_over(full_run, tmp_path):
    ref, _ = full_run
    out = tmp_path / "fresh"
    out.mkdir()
    (out / "config.json").write_text((ref / "config.json").read_text())
    (out / "metrics.jsonl").write_text('{"step": 0, "loss": 4.0, "lr": 0.0005}\n{"step": 3, "lo')
    resume(out, progress=False)
    same_checkpoints(ref, out)
    assert (out / "metrics.jsonl").read_bytes() == (ref / "metrics.jsonl").read_bytes()


def test_eval_has_its_own_random_stream(full_run, tmp_path):
    """Evaluating more or less often does not change what the model trains on."""
    ref, _ = full_run
    run(tiny(eval_interval=0, eval_iters=1), tmp_path / "noeval", progress=False)
    a = load_checkpoint(ref / "checkpoint.npz")
    b = load_checkpoint(tmp_path / "noeval" / "checkpoint.npz")
    for name in a:
        if not name.startswith(("rng.eval", "train.")):
            assert np.array_equal(a[name], b[name]), name


def test_out_dir_holding_a_run_is_refused(full_run):
    out, _ = full_run
    with pytest.raises(RunFolderError, match="already holds a run"):
        run(tiny(), out, progress=False)


# ------------------------------------------------------------------------------ init hooks

def test_init_from_starts_from_another_run(full_run, tmp_path):
    ref, _ = full_run
    out = tmp_path / "transfer"
    summary = run(tiny(init_from=str(ref), max_iters=1, eval_interval=0), out, progress=False)
    metrics = read_metrics(out)
    assert metrics[0]["loss"] < np.log(65) - 0.5                 # starts trained, not at ln V
    assert summary["status"] == "completed"
    with pytest.raises(ValueError, match="n_embd|wte.weight"):   # shapes differ: clear error
        run(tiny(init_from=str(ref), n_embd=64), tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()                       # nothing written


def test_init_scheme_shapes_the_model_unless_set(tmp_path, capsys):
    run(tiny(init="t_fixup", max_iters=2, eval_interval=0), tmp_path / "a", progress=False)
    assert json.loads((tmp_path / "a" / "config.json").read_text())["model"]["norm"] == "none"
    run(tiny(init="t_fixup", norm="pre", max_iters=2, eval_interval=0), tmp_path / "b",
        progress=False)
    assert json.loads((tmp_path / "b" / "config.json").read_text())["model"]["norm"] == "pre"
    assert "warning: init t_fixup expects norm='none'" in capsys.readouterr().err


# ------------------------------------------------------------------------------ divergence

def test_divergence_stops_the_run(tmp_path):
    summary = run(tiny(lr=50.0, warmup_iters=0), tmp_path / "div", progress=False)
    assert summary["status"] == "diverged"
    assert summary["diverged_step"] == summary["step"] >= 1
    assert np.isfinite(summary["last_finite_loss"])
    saved = json.loads((tmp_path / "div" / "summary.json").read_text())
    assert saved["status"] == "diverged" and saved["step"] == summary["step"]
    assert read_metrics(tmp_path / "div")[-1]["step"] == summary["step"]


def test_divergence_rule():
    assert diverged(float("nan"), 4.0) and diverged(float("inf"), 4.0)
    assert diverged(12.5, 4.0) and not diverged(11.9, 4.0)   # 3 x initial
    assert diverged(7.4, 2.3) and not diverged(7.2, 2.3)     # initial + 5


# ------------------------------------------------------------------------------ schedules

@pytest.mark.parametrize("schedule", ["cosine", "linear", "constant", "noam"])
def test_schedule_reaches_the_optimizer(schedule, tmp_path, monkeypatch):
    used = []

    class RecordingAdamW(AdamW):
        def step(self, params, grads, lr=None):
            used.append(lr)
            return super().step(params, grads, lr)
    monkeypatch.setattr(build, "AdamW", RecordingAdamW)
    cfg = tiny(schedule=schedule, max_iters=30, lr_decay_iters=25, eval_interval=0,
               eval_iters=1, log_interval=1)
    run(cfg, tmp_path / schedule, progress=False)
    assert used == [cfg.lr_at(k) for k in range(30)]
    assert [m["lr"] for m in read_metrics(tmp_path / schedule)[:-1]] == used
    assert used[0] == cfg.lr / (cfg.warmup_iters + 1)          # step 0 is never 0


def test_lr_decay_iters_defaults_to_max_iters():
    cfg = tiny(max_iters=300)
    assert cfg.lr_decay_iters is None and cfg.decay_iters == 300
    assert cfg.lr_at(299) > cfg.min_lr and cfg.lr_at(300) == cfg.min_lr
    short = TrainConfig(max_iters=50)                          # all warmup: no error
    assert short.decay_iters == 100 and short.lr_at(49) == pytest.approx(short.lr * 50 / 101)


# ------------------------------------------------------------------------------ config

@pytest.mark.parametrize("field, value, match", [
    ("lr", 0.0, "lr must be positive"), ("lr", -1e-3, "lr must be positive"),
    ("lr", float("nan"), "lr must be positive"), ("lr", float("inf"), "lr must be positive"),
    ("batch_size", 0, "batch_size must be a positive integer"),
    ("init", "nope", "unknown init 'nope'"), ("n_embd", 30, "divisible by n_head"),
    ("model", "rnn", "model must be one of"), ("schedule", "step", "schedule must be one of"),
    ("min_lr", 1.0, "min_lr must be between 0 and lr"), ("beta2", 1.0, "beta2 must be in"),
    ("max_iters", 0, "max_iters must be a positive integer"), ("dtype", "float16", "dtype"),
    ("lr_decay_iters", 50, "warmup_iters \\(100\\) is longer"), ("grad_clip", -1.0, "grad_clip"),
    ("eval_interval", -1, "eval_interval must be an integer >= 0"), ("norm", "batch", "norm"),
])
def test_config_rejects_bad_values(field, value, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**{field: value})


def test_config_defaults_are_nanogpt_cpu_shakespeare():
    c = TrainConfig()
    assert (c.model, c.n_layer, c.n_head, c.n_embd, c.block_size, c.batch_size) == \
        ("gpt", 4, 4, 128, 64, 12)
    assert (c.max_iters, c.lr, c.min_lr, c.warmup_iters, c.decay_iters, c.schedule) == \
        (2000, 1e-3, 1e-4, 100, 2000, "cosine")
    assert (c.beta1, c.beta2, c.weight_decay, c.grad_clip, c.eval_interval, c.eval_iters) == \
        (0.9, 0.99, 0.1, 1.0, 250, 20)
    assert c.init_name == "gpt2" and TrainConfig(model="vit", data="mnist").init_name == "vit"


def test_vit_defaults_apply_unless_set():
    c = TrainConfig.for_model(model="vit", lr=5e-4)
    for name, value in VIT_DEFAULTS.items():
        assert getattr(c, name) == (5e-4 if name == "lr" else value)
    assert c.explicit == ("lr", "model")
    assert TrainConfig.for_model() == TrainConfig()


# ------------------------------------------------------------------------------ ViT

def test_vit_learns_digits(tmp_path):
    cfg = TrainConfig.for_model(model="vit", data="digits", patch_size=4, n_layer=2, n_head=2,
                                n_embd=32, batch_size=64, max_iters=200, warmup_iters=10,
                                lr=3e-3, eval_interval=100, eval_iters=2)
    summary = run(cfg, tmp_path / "vit", progress=False)
    assert summary["status"] == "completed"
    assert summary["val_acc"] > 0.8
    metrics = read_metrics(tmp_path / "vit")
    assert all("val_acc" in m for m in metrics if "val_loss" in m)


def test_telemetry_is_written_live_and_matches_a_direct_computation(full_run):
    """telemetry.jsonl has one record per log_interval step, from the step's own forward (the
    parameters before the update): replaying step 0 by hand gives the same numbers."""
    from minitransformer.measure import telemetry
    from minitransformer.engine.optim import clip_grad_norm
    out, summary = full_run
    recs = read_jsonl(out / "telemetry.jsonl")
    assert [r["step"] for r in recs] == list(range(0, 40, 3))
    assert 0 < summary["telemetry_overhead"] < 1 and summary["telemetry_ms_per_record"] > 0
    cfg = tiny()
    data = build.resolve_data(cfg)
    mcfg, _ = build.model_config(cfg, data)
    model = build.make_model(cfg, mcfg)
    opt = build.make_optimizer(cfg, mcfg, model.params)
    x, y = build.get_batch(cfg, data, "train", build.make_streams(cfg.seed)["data"])
    _, trace = model.forward(x, trace=True)
    embed_rms, layers = telemetry.activation_stats(model, x)
    _, grads = model.loss_and_grads(x, y)
    norm = clip_grad_norm(grads, cfg.grad_clip)
    before = telemetry.copy_params(model.params)
    opt.step(model.params, grads, cfg.lr_at(0))
    rec = recs[0]
    assert rec["grad_norm"] == pytest.approx(norm, rel=1e-5)
    assert rec["embed_rms"] == pytest.approx(embed_rms, rel=1e-5)
    assert rec["layers"][0]["resid_rms"] == pytest.approx(layers[0]["resid_rms"], rel=1e-5)
    assert rec["layers"][0]["max_attn_logit"] == pytest.approx(
        float(trace["h.0.attn.scores"].max()), rel=1e-5)
    w = "h.0.mlp.c_fc.weight"
    dw = np.linalg.norm(model.params[w] - before[w]) / np.linalg.norm(before[w])
    assert rec["tensors"][w]["update_ratio"] == pytest.approx(dw, rel=1e-4)


def test_sharpness_every_writes_its_own_file_without_moving_the_run(tmp_path, full_run):
    """--sharpness-every probes on a fixed batch of its own: the run's parameters and metrics
    are bit-identical to the run without it."""
    ref, _ = full_run
    out = tmp_path / "sharp"
    run(tiny(sharpness_every=20), out, progress=False)
    recs = [json.loads(line) for line in (out / "sharpness.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [0, 20]
    assert all(r["lambda_max"] > 0 and r["two_over_lr"] == pytest.approx(2 / r["lr"]) for r in recs)
    same_checkpoints(ref, out)
    assert (out / "metrics.jsonl").read_bytes() == (ref / "metrics.jsonl").read_bytes()


# ------------------------------------------------------------------------------ seeds

def test_init_seed_and_data_seed_default_to_seed_and_act_separately():
    """init_seed decides the initial weights only, data_seed the batches only; both default to
    seed and are recorded as used (so config.json and resume see the real values)."""
    c = tiny(seed=5)
    assert (c.init_seed, c.data_seed) == (5, 5)
    assert TrainConfig.from_dict({k: v for k, v in c.to_dict().items()
                                  if k not in ("init_seed", "data_seed")}) == c   # older runs
    a, b = tiny(init_seed=1, data_seed=2), tiny(init_seed=1, data_seed=3)
    data = build.resolve_data(a)
    mcfg, _ = build.model_config(a, data)
    wa, wb = build.make_model(a, mcfg).params, build.make_model(b, mcfg).params
    assert all(np.array_equal(wa[n], wb[n]) for n in wa)                  # same weights
    assert not np.array_equal(build.make_model(tiny(init_seed=2), mcfg).params["wte.weight"],
                              wa["wte.weight"])
    xa, _ = build.get_batch(a, data, "train", build.make_streams(a.data_seed)["data"])
    xb, _ = build.get_batch(b, data, "train", build.make_streams(b.data_seed)["data"])
    assert not np.array_equal(xa, xb)                                     # other batches


def test_seeds_are_recorded_and_resumed(tmp_path):
    from minitransformer.cli import main
    out = tmp_path / "seeds"
    args = ["--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--block-size", "16",
            "--batch-size", "8", "--max-iters", "4", "--eval-interval", "0", "--eval-iters", "1",
            "--checkpoint-interval", "2", "--seed", "7", "--init-seed", "3", "--quiet"]
    main(["train", *args, "--out", str(out)])
    t = json.loads((out / "config.json").read_text())["train"]
    assert (t["seed"], t["init_seed"], t["data_seed"]) == (7, 3, 7)
    from minitransformer.training.runfolder import read_run_config, read_jsonl
    _, cfg, _ = read_run_config(out)                                       # what resume reads
    assert (cfg.init_seed, cfg.data_seed) == (3, 7)
