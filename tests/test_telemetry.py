"""Telemetry values against direct computations: per-tensor norms and update ratios, gradient norms
before clipping, Adam's effective step, residual RMS, attention entropy and max logit; records
are strict JSON; replaying a run reproduces its checkpoint and detects a run it cannot reproduce."""
import json
import math

import numpy as np
import pytest

from minitransformer import GPTConfig, ViTConfig, build_model
from minitransformer.measure import telemetry
from minitransformer.training.runfolder import read_jsonl
from minitransformer.analysis.replay import record_run
from minitransformer.engine.optim import AdamW, clip_grad_norm
from minitransformer.training.config import TrainConfig
from minitransformer.training.loop import run
from minitransformer.training.runfolder import read_jsonl

CFG = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8)


def batch(cfg, rng, B=3):
    return rng.integers(0, cfg.vocab_size, (B, cfg.block_size)), \
        rng.integers(0, cfg.vocab_size, (B, cfg.block_size))


def one_step(clip, lr=1e-2):
    """A tiny float64 GPT, one AdamW step; returns everything step_record saw plus the raw
    (unclipped) gradients and the parameters before."""
    rng = np.random.default_rng(0)
    model = build_model(CFG, seed=0, dtype="float64")
    x, y = batch(CFG, rng)
    _, grads = model.loss_and_grads(x, y)
    raw = {k: g.copy() for k, g in grads.items()}
    before = telemetry.copy_params(model.params)
    opt = AdamW(model.params, lr=lr, weight_decay=0.1)
    grad_norm = clip_grad_norm(grads, clip)
    opt.step(model.params, grads, lr)
    rec = telemetry.step_record(0, lr, grad_norm, clip, before, model, grads, opt, x)
    return rec, model, raw, before, x, grad_norm, opt


def test_tensor_stats_match_direct_computation():
    rec, model, raw, before, _, grad_norm, _ = one_step(clip=1e-3)     # clipping certainly fires
    assert rec["clipped"] is True and rec["grad_clip"] == 1e-3
    assert rec["grad_norm"] == pytest.approx(math.sqrt(sum(np.sum(g * g) for g in raw.values())))
    for name, s in rec["tensors"].items():
        w0, w1 = before[name], model.params[name]
        # gradient norms are reported before clipping, although the optimizer saw clipped ones
        assert s["grad_norm"] == pytest.approx(np.linalg.norm(raw[name]), rel=1e-6)
        assert s["weight_norm"] == pytest.approx(np.linalg.norm(w1), rel=1e-12)
        assert s["update_norm"] == pytest.approx(np.linalg.norm(w1 - w0), rel=1e-9)
        if np.any(w0):
            assert s["update_ratio"] == pytest.approx(
                np.linalg.norm(w1 - w0) / np.linalg.norm(w0), rel=1e-9)
        else:
            assert s["update_ratio"] is None                      # biases start at 0


def test_adam_step_statistics():
    """After Adam's first step m_hat = g and v_hat = g^2, so each element moves lr*|g|/(|g|+eps):
    lr for every element whose gradient is far above eps."""
    lr = 1e-2
    rec, _, raw, _, _, _, opt = one_step(clip=0.0, lr=lr)
    assert rec["clipped"] is False
    for name, s in rec["tensors"].items():
        g = np.abs(raw[name])
        expect = lr * g / (g + opt.eps)
        assert s["adam_step_mean"] == pytest.approx(expect.mean(), rel=1e-6)
        assert s["adam_step_max"] == pytest.approx(expect.max(), rel=1e-6)


def test_activation_stats_match_direct_computation():
    rec, model, *_ = one_step(clip=1.0)
    x = one_step(clip=1.0)[4]
    _, trace = model.forward(x, trace=True)
    T = CFG.block_size
    for i, layer in enumerate(rec["layers"]):
        out = trace[f"h.{i}.out"]
        assert layer["resid_rms"] == pytest.approx(np.sqrt(np.mean(out ** 2)), rel=1e-12)
        s = trace[f"h.{i}.attn.scores"]
        # recompute the softmax from the scores, independently of the engine's kernel
        e = np.exp(s - s.max(axis=-1, keepdims=True))
        p = e / e.sum(axis=-1, keepdims=True)
        ent = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0), axis=-1).mean()
        assert layer["attn_entropy"] == pytest.approx(ent, rel=1e-10)
        assert layer["max_attn_logit"] == pytest.approx(s[np.isfinite(s)].max())
        # causal: row t sees t + 1 keys
        assert layer["attn_entropy_uniform"] == pytest.approx(np.mean(np.log(np.arange(1, T + 1))))
        assert 0 < layer["attn_entropy"] <= layer["attn_entropy_uniform"] + 1e-12
    assert rec["embed_rms"] == pytest.approx(np.sqrt(np.mean(trace["embed.out"] ** 2)))


def test_uniform_attention_has_the_uniform_entropy():
    """With W_q = 0 every score is equal: entropy is exactly the uniform ceiling."""
    for cfg in (CFG, ViTConfig(image_size=8, patch_size=4, n_layer=1, n_head=2, n_embd=8)):
        model = build_model(cfg, seed=0, dtype="float64")
        for name, p in model.params.items():
            if name.endswith(("c_attn.weight", "qkv.weight")):
                p[:, :cfg.n_embd] = 0                          # W_q = 0
            if name.endswith(("c_attn.bias", "qkv.bias")):
                p[:cfg.n_embd] = 0
        rng = np.random.default_rng(1)
        x = batch(cfg, rng)[0] if cfg is CFG else rng.random((2, 8, 8, 1))
        _, layers = telemetry.activation_stats(model, x)
        for layer in layers:
            assert layer["attn_entropy"] == pytest.approx(layer["attn_entropy_uniform"], abs=1e-12)
        if cfg is not CFG:                                     # bidirectional: ln(N) everywhere
            assert layers[0]["attn_entropy_uniform"] == pytest.approx(math.log(cfg.n_tokens))


def test_record_is_strict_json():
    rec = one_step(clip=1.0)[0]
    text = json.dumps(rec, allow_nan=False)
    assert json.loads(text) == rec
    rec = telemetry.json_safe({"a": float("nan"), "b": [float("inf"), 1.0]})
    assert rec == {"a": None, "b": [None, 1.0]}


def test_without_activations_and_with_sgd():
    from minitransformer.engine.optim import SGD
    rng = np.random.default_rng(0)
    model = build_model(CFG, seed=0, dtype="float64")
    x, y = batch(CFG, rng)
    _, grads = model.loss_and_grads(x, y)
    before = telemetry.copy_params(model.params)
    opt = SGD(model.params, lr=0.1)
    opt.step(model.params, grads)
    rec = telemetry.step_record(0, 0.1, 1.0, 0.0, before, model, grads, opt, x, activations=False)
    assert "layers" not in rec and "adam_step_mean" not in rec["tensors"]["wte.weight"]


TINY = dict(n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=4, max_iters=12,
            warmup_iters=3, eval_interval=6, eval_iters=2, checkpoint_interval=0, log_interval=4)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tel") / "run"
    run(TrainConfig.for_model(**TINY), out, progress=False)
    return out


def test_record_run_reproduces_the_checkpoint(tiny_run):
    res = record_run(tiny_run, every=4, sharpness_every=6)
    assert res["checked_against_checkpoint"] is True
    assert res["steps"] == 12 and res["records"] == 3
    recs = read_jsonl(tiny_run / "telemetry.jsonl")
    assert [r["step"] for r in recs] == [0, 4, 8]
    metrics = {r["step"]: r for r in read_jsonl(tiny_run / "metrics.jsonl")}
    for r in recs:                                  # the replay saw the run's own losses and lrs
        assert r["loss"] == pytest.approx(metrics[r["step"]]["loss"], rel=1e-6)
        assert r["lr"] == metrics[r["step"]]["lr"]
    sharp = read_jsonl(tiny_run / "sharpness.jsonl")
    assert [r["step"] for r in sharp] == [0, 6]
    assert all(r["lambda_max"] > 0 and r["two_over_lr"] == 2 / r["lr"] for r in sharp)


def test_record_run_detects_a_different_run(tiny_run, tmp_path):
    import shutil
    bad = tmp_path / "bad"
    shutil.copytree(tiny_run, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["train"]["lr"] = 2e-3                        # not what produced the checkpoint
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="does not reproduce"):
        record_run(bad, every=4)


def test_attention_entropy_from_scores_matches_p_log_p_in_float32():
    """The one-log-per-row identity (telemetry._mean_row_entropy) against −Σ p ln p in float64,
    on float32 probabilities from the engine's own softmax, causal and not."""
    from minitransformer.engine import kernels
    rng = np.random.default_rng(3)
    B, NH, T = 2, 3, 17
    for causal in (True, False):
        raw = (3.0 * rng.standard_normal((B * NH * T, T))).astype(np.float32)
        scores = (raw * np.float32(0.5)).reshape(B * NH, T, T)
        if causal:
            scores = scores + kernels._causal_bias(T, np.float32)
        probs = kernels.softmax_fwd(raw.copy(), 0.5, causal)
        p = probs.astype(np.float64)
        want = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1).mean()
        got = telemetry.attention_entropy(probs.reshape(B, NH, T, T), scores.reshape(B, NH, T, T))
        assert got == pytest.approx(want, rel=1e-5)


def test_replay_writes_back_the_runs_own_telemetry_and_sharpness_bit_for_bit(tmp_path):
    """A run trained with telemetry and --sharpness-every, replayed with the same intervals,
    gets telemetry.jsonl and sharpness.jsonl back byte for byte (the replay once probed
    sharpness on another batch and overwrote the run's lines with different numbers)."""
    out = tmp_path / "run"
    run(TrainConfig.for_model(**dict(TINY, sharpness_every=6)), out, progress=False)
    tel, sharp = (out / "telemetry.jsonl").read_bytes(), (out / "sharpness.jsonl").read_bytes()
    assert len(sharp.splitlines()) == 2 and len(tel.splitlines()) == 3
    record_run(out, every=TINY["log_interval"], sharpness_every=6)
    assert (out / "telemetry.jsonl").read_bytes() == tel
    assert (out / "sharpness.jsonl").read_bytes() == sharp
