"""Values known in advance, where other tests check only that a key exists or a number is
positive: the benchmark's FLOP count (README's 809,856 parameters and 3.996 GFLOP/iter) and the
matrix products its GEMM floor times, the
coordinate check at init (closed-form mean |activation| and its slope against width), and a
transfer run that starts exactly from the other run's weights."""
import math

import numpy as np
import pytest

from minitransformer import GPTConfig, ViTConfig, build_model
from minitransformer.analysis.bench import (bench_shape, gemm_floor, model_flops, step_gemms,
                                             vit_model_flops)
from minitransformer.analysis.coordcheck import coordcheck, slope
from minitransformer.training.config import TrainConfig
from minitransformer.training.loop import run


def test_bench_flops_of_the_default_gpt_by_hand():
    """nanoGPT's CPU config (V 65, T 64, L 4, C 128, batch 12). Parameters: wte 65·128 = 8,320,
    wpe 64·128 = 8,192, per block 4·128 (2 LN) + (128·384 + 384) + (128·128 + 128)
    + (128·512 + 512) + (512·128 + 128) = 198,272, ln_f 256: 809,856 in all.
    FLOPs = 6·(809,856 − 8,192)·12·64 + 12·4·128·64·12·64 = 3,694,067,712 + 301,989,888."""
    cfg = GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128)
    model = build_model(cfg)
    n = sum(p.size for p in model.params.values())
    assert n == 809_856
    assert model_flops(cfg, n - model.params["wpe.weight"].size, 12) == 3_996_057_600


def test_bench_flops_of_the_default_vit_by_hand():
    """The ViT of `train --model vit` (batch 64, 17 tokens). Parameters: patch_embed 49·64 + 64 =
    3,200, cls 64, pos 17·64 = 1,088, per block 4·64 (2 LN) + (64·192 + 192) + (64·64 + 64)
    + (64·256 + 256) + (256·64 + 64) = 49,984, norm 128, head 64·10 + 10 = 650: 205,066 in all.
    FLOPs = 6·(205,066 − 1,088 − 64 − 650)·64·17 + 6·650·64 + 12·4·64·17²·64
          = 1,326,907,392 + 249,600 + 56,819,712."""
    shape = bench_shape("vit")
    assert shape == dict(n_layer=4, n_head=4, n_embd=64, patch_size=7, batch_size=64)
    batch = shape.pop("batch_size")
    cfg = ViTConfig(**shape)
    n = sum(p.size for p in build_model(cfg, init="vit").params.values())
    assert n == 205_066
    assert vit_model_flops(cfg, n, batch) == 1_383_976_704
    assert bench_shape("gpt") == dict(n_layer=4, n_head=4, n_embd=128, block_size=64,
                                      batch_size=12, vocab_size=65)


def gemm_flops(cfg, batch_size):
    return sum(count * g * 2 * m * k * n for count, g, m, k, n, _ in step_gemms(cfg, batch_size))


def test_the_gemm_floors_products_are_the_model_flops_without_the_vectors():
    """The default GPT's matrix products are nanoGPT's FLOPs but for 6·B·T per bias and
    LayerNorm parameter: per block 4·128 + 384 + 128 + 512 + 128 = 1,664, ln_f 256, so
    6·(4·1,664 + 256)·768 = 31,850,496 fewer: 3,964,207,104."""
    cfg = GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128)
    assert gemm_flops(cfg, 12) == 3_996_057_600 - 31_850_496
    # another shape, against the model's own tensors: 2-D weights are the products' operands
    cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=3, n_head=2, n_embd=16)
    params = build_model(cfg).params
    vectors = sum(p.size for p in params.values() if p.ndim == 1)
    n_no_pos = sum(p.size for p in params.values()) - params["wpe.weight"].size
    assert gemm_flops(cfg, 5) == model_flops(cfg, n_no_pos, 5) - 6 * vectors * 5 * 8
    # one product per layout of each (weight, role): 12 per block kind of product, 3 for the
    # head, 6 for attention
    assert sorted({how for *_, how in step_gemms(cfg, 5)}) == ["nn", "nt", "tn"]
    assert len(step_gemms(cfg, 5)) == 12 + 3 + 6
    assert 0 < gemm_floor(cfg, 5, repeats=2) < 1.0


def test_the_vit_gemm_floors_products_by_hand():
    """The default MNIST ViT, batch 64, 17 tokens (16 patches + cls): 6 FLOPs per weight entry
    and row it acts on, blocks 6·(64·17)·(12·64²)·4 = 1,283,457,024, patch embedding
    6·(64·16)·(49·64) = 19,267,584, head 6·64·(64·10) = 245,760, attention 12·4·64·17²·64 =
    56,819,712 (not causal: the full 17²)."""
    assert gemm_flops(ViTConfig(), 64) == 1_283_457_024 + 19_267_584 + 245_760 + 56_819_712
    # mean pooling: 16 tokens, no cls; against the model's 2-D weights
    cfg = ViTConfig(pool="mean", n_layer=2, n_embd=32, n_head=2)
    params = build_model(cfg, init="vit").params
    rows = {"head.weight": 5}                   # the rest act on the 5·16 tokens
    weights = sum(6 * rows.get(name, 5 * 16) * w.size for name, w in params.items()
                  if w.ndim == 2 and name != "pos_embed")
    assert gemm_flops(cfg, 5) == weights + 12 * 2 * 32 * 16 * 16 * 5


MEAN_ABS = math.sqrt(2 / math.pi)        # E|z| of a standard normal


def predicted_logits(C, V, scale):
    """mean |logit| of a fresh GPT with N(0, 0.02²) tables and a tied head: ln_f's output has
    norm √C, so a logit against another token's row is N(0, 0.02²C); against the input token's
    own row (1 of V) it is about √C·‖wte_x‖²/‖wte_x + wpe_t‖ = 0.02·C/√2."""
    return scale * ((V - 1) / V * 0.02 * math.sqrt(C) * MEAN_ABS + 0.02 * C / math.sqrt(2) / V)


@pytest.mark.parametrize("init", ["gpt2", "mup"])
def test_coordcheck_at_init_has_the_closed_form_values(init):
    widths = (32, 64, 128)
    res = coordcheck("gpt", init, widths, steps=0)
    V = GPTConfig().vocab_size
    # embed.out = wte[x] + wpe[t]: N(0, 2·0.02²) at every width
    np.testing.assert_allclose(res["values"]["embed.out"]["0"], 0.02 * math.sqrt(2) * MEAN_ABS,
                               rtol=0.03)
    assert abs(res["slopes"]["embed.out"]) < 0.03
    # logits: ~√C under gpt2; μP multiplies them by base/C = 32/C
    scale = [1.0 if init == "gpt2" else 32 / C for C in widths]
    want = [predicted_logits(C, V, s) for C, s in zip(widths, scale)]
    np.testing.assert_allclose(res["values"]["logits"]["0"], want, rtol=0.05)
    assert res["slopes"]["logits"] == pytest.approx(slope(widths, want), abs=0.05)
    assert res["slopes"]["logits"] == pytest.approx(0.55 if init == "gpt2" else -0.45, abs=0.05)


TINY = dict(model="gpt", n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=2,
            eval_interval=0, eval_iters=2, checkpoint_interval=0, log_interval=1)


def test_transfer_run_starts_from_the_other_runs_weights(tmp_path):
    """B starts from A's weights (init_from) and makes one update at lr 3e-3/(W+1) with
    W = 10⁶ warmup steps, a change of ~1e-9 per weight: its final validation loss is A's, on
    the same validation batches (the evaluation stream depends only on the seed). The same run
    without init_from is a fresh model, near ln V."""
    (tmp_path / "a.txt").write_text("abcd" * 200)               # 4 characters
    data = str(tmp_path / "a.txt")
    a = run(TrainConfig.for_model(data=data, max_iters=30, warmup_iters=0, lr=3e-2, **TINY),
            tmp_path / "A", progress=False)
    still = dict(data=data, max_iters=1, warmup_iters=10 ** 6, lr=3e-3, **TINY)
    b = run(TrainConfig.for_model(init_from=str(tmp_path / "A"), **still), tmp_path / "B",
            progress=False)
    fresh = run(TrainConfig.for_model(**still), tmp_path / "C", progress=False)
    assert a["final_val_loss"] < 0.5 * math.log(4)               # A learned something
    assert b["final_val_loss"] == pytest.approx(a["final_val_loss"], abs=1e-5)
    assert fresh["final_val_loss"] == pytest.approx(math.log(4), abs=0.1)


def test_attention_scale_by_hand():
    """Scores are multiplied by 1/√HS (HS = 64/4 = 16: 0.25) unless a scheme sets attn_scale
    (muP: 1/HS = 0.0625). Without this, a 1/HS bug is caught only by the PyTorch reference:
    every gradient check is consistent with any scale."""
    assert GPTConfig(n_embd=64, n_head=4).scale == 0.25
    assert GPTConfig(n_embd=64, n_head=4, attn_scale=0.0625).scale == 0.0625
    from minitransformer import ViTConfig
    assert ViTConfig(n_embd=48, n_head=3).scale == 0.25


def test_adamw_decays_each_tensor_with_its_own_lr():
    """With a zero gradient AdamW's step is 0/(0 + eps) = 0 and only the decoupled decay acts:
    p <- p (1 − lr_eff·wd), lr_eff = lr × the tensor's multiplier (muP's hidden matrices), so
    1 − 0.01·0.25·0.1 = 0.99975 and 1 − 0.01·0.1 = 0.999 here. Vectors are never decayed."""
    from minitransformer.engine.optim import AdamW
    params = {"hidden": np.full((2, 2), 2.0), "wte": np.full((3, 2), 2.0), "bias": np.full(2, 2.0)}
    opt = AdamW(params, lr=0.01, weight_decay=0.1, lr_mult={"hidden": 0.25})
    opt.step(params, {k: np.zeros_like(v) for k, v in params.items()})
    np.testing.assert_allclose(params["hidden"], 2.0 * 0.99975, rtol=1e-15)
    np.testing.assert_allclose(params["wte"], 2.0 * 0.999, rtol=1e-15)
    np.testing.assert_array_equal(params["bias"], 2.0)
