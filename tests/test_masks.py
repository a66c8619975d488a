"""Tests of training/masks.py and of masks in training: which tensors are prunable, exact counts
of magnitude and random pruning, rewinding, the mask file's checks, the gradient check of a
masked model, and masked weights staying exactly 0 through many AdamW steps."""
import numpy as np
import pytest

from minitransformer import GPTConfig, ViTConfig, build_model
from minitransformer.engine.gradcheck import (check_model, numerical_grad, random_batch,
                                              well_conditioned)
from minitransformer.measure.spectra import spectra
from minitransformer.errors import ConfigError, DataError, NotFound
from minitransformer.training import masks as M
from minitransformer.training.config import TrainConfig
from minitransformer.training.loop import run
from minitransformer.training.checkpoint import load_checkpoint

GPT_CFG = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8)
VIT_CFG = ViTConfig(image_size=8, patch_size=4, in_channels=1, n_classes=5, n_layer=2, n_head=2,
                    n_embd=8)


def test_prunable_tensors_are_the_weight_matrices_only():
    gpt = build_model(GPT_CFG, seed=0).params
    assert M.prunable_names(gpt) == [f"h.{i}.{n}.weight" for i in range(2) for n in
                                     ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")]
    vit = build_model(VIT_CFG, seed=0).params
    names = M.prunable_names(vit)
    assert names[0] == "patch_embed.weight" and names[-1] == "head.weight" and len(names) == 10
    for params in (gpt, vit):
        for name in set(params) - set(M.prunable_names(params)):
            assert params[name].ndim == 1 or name in ("wte.weight", "wpe.weight", "pos_embed")


def _fake_params(rng):
    """Two prunable tensors and one that is not, with distinct magnitudes."""
    return {"h.0.attn.c_attn.weight": rng.standard_normal((6, 18)),
            "h.0.mlp.c_fc.weight": 3 * rng.standard_normal((6, 24)),
            "h.0.ln_1.weight": rng.standard_normal(6)}


@pytest.mark.parametrize("strategy", ["global", "layerwise"])
def test_pruning_removes_the_requested_count_smallest_first(strategy):
    rng = np.random.default_rng(0)
    params = _fake_params(rng)
    masks = M.full_masks(params)
    assert set(masks) == {"h.0.attn.c_attn.weight", "h.0.mlp.c_fc.weight"}   # never ln_1
    for level in range(1, 6):
        alive = {n: int(m.sum()) for n, m in masks.items()}
        new = M.magnitude_prune(params, masks, 0.2, strategy)
        assert set(new) == set(masks)
        for n in masks:
            assert not np.any(new[n] & ~masks[n])                 # nothing comes back
        removed = {n: alive[n] - int(new[n].sum()) for n in masks}
        if strategy == "layerwise":
            for n in masks:
                assert removed[n] == M.prune_count(0.2, alive[n])
        assert sum(removed.values()) == (M.prune_count(0.2, sum(alive.values()))
                                         if strategy == "global" else sum(removed.values()))
        # smallest first: every removed |w| <= every surviving |w| (globally or per tensor)
        groups = [list(masks)] if strategy == "global" else [[n] for n in masks]
        for g in groups:
            gone = np.concatenate([np.abs(params[n][masks[n] & ~new[n]]) for n in g])
            kept = np.concatenate([np.abs(params[n][new[n]]) for n in g])
            assert gone.max() <= kept.min()
        masks = new
    assert M.sparsity(masks) == pytest.approx(1 - 0.8 ** 5, abs=0.02)
    assert M.prune_count(0.2, 100) == 20 and M.prune_count(0.2, 80) == 16


def test_pruning_ignores_already_pruned_weights_even_when_they_are_small():
    params = {"h.0.mlp.c_fc.weight": np.arange(1.0, 11.0).reshape(2, 5)}
    masks = {"h.0.mlp.c_fc.weight": np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], dtype=bool)}
    new = M.magnitude_prune(params, masks, 0.25, "global")        # 8 alive -> drop 2: 3.0, 4.0
    assert new["h.0.mlp.c_fc.weight"].reshape(-1).tolist() == [False] * 4 + [True] * 6


def test_random_masks_keep_per_tensor_sparsity_and_rewind_is_exact():
    rng = np.random.default_rng(1)
    params = _fake_params(rng)
    masks = M.magnitude_prune(params, M.full_masks(params), 0.5, "global")
    rand = M.random_masks(masks, np.random.default_rng(2))
    for n in masks:
        assert rand[n].sum() == masks[n].sum() and rand[n].shape == masks[n].shape
        assert not np.array_equal(rand[n], masks[n])
    step_k = {n: rng.standard_normal(p.shape) for n, p in params.items()}
    wound = M.rewind(step_k, masks)
    for n in params:
        expect = step_k[n] * masks[n] if n in masks else step_k[n]
        assert np.array_equal(wound[n], expect)
        assert wound[n] is not step_k[n]


def test_mask_file_round_trip_and_bad_files(tmp_path):
    params = build_model(GPT_CFG, seed=0).params
    masks = M.magnitude_prune(params, M.full_masks(params), 0.3, "layerwise")
    M.save_masks(tmp_path / "mask.npz", masks)
    back = M.load_masks(tmp_path / "mask.npz", params)
    assert all(np.array_equal(back[n], masks[n]) for n in masks)
    with pytest.raises(NotFound):
        M.load_masks(tmp_path / "nope.npz", params)
    bad = {"h.9.attn.c_attn.weight": masks["h.0.attn.c_attn.weight"]}
    np.savez(tmp_path / "names.npz", **bad)
    with pytest.raises(ConfigError, match="h.9.attn.c_attn.weight.*not a parameter"):
        M.load_masks(tmp_path / "names.npz", params)
    np.savez(tmp_path / "shape.npz", **{"h.0.attn.c_attn.weight": np.ones((3, 3), bool)})
    with pytest.raises(ConfigError, match=r"shape \(3, 3\)"):
        M.load_masks(tmp_path / "shape.npz", params)
    np.savez(tmp_path / "ln.npz", **{"h.0.ln_1.weight": np.ones(8, bool)})
    with pytest.raises(ConfigError, match="may not be masked"):
        M.load_masks(tmp_path / "ln.npz", params)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="mask file"):
        M.load_masks(tmp_path / "junk.npz", params)


@pytest.mark.parametrize("cfg", [GPT_CFG, VIT_CFG], ids=["gpt", "vit"])
def test_gradient_check_of_a_masked_model(cfg):
    rng = np.random.default_rng(0)
    model = build_model(cfg, seed=0, dtype="float64")
    well_conditioned(model.params, rng)
    masks = M.random_masks(M.magnitude_prune(model.params, M.full_masks(model.params), 0.5),
                           rng)
    masked = M.MaskedModel(model, masks)
    x, y = random_batch(cfg, 3, rng)
    rows = check_model(masked, x, y, n_samples=40)
    assert all(r.ok for r in rows), [r for r in rows if not r.ok]
    _, grads = masked.loss_and_grads(x, y)
    for name, m in masks.items():
        assert np.all(grads[name][~m] == 0) and np.any(grads[name][m] != 0)
    name = next(iter(masks))                   # L(w * m) does not change with a masked entry
    flat = np.flatnonzero(~masks[name])[:3]
    num = numerical_grad(lambda: masked.loss(x, y), masked.params[name], idx=flat)
    assert np.all(num == 0)


def test_masked_weights_stay_exactly_zero_through_training(tmp_path):
    """60 AdamW steps with weight decay 0.1 and a clip (0.05) that is active on every step:
    the masked weights stay exactly 0, the others move, the mask is copied into the run."""
    cfg = dict(model="vit", data="digits", n_layer=1, n_head=2, n_embd=16, patch_size=4,
               batch_size=16, max_iters=60, warmup_iters=0, lr=1e-2, weight_decay=0.1,
               grad_clip=0.05, eval_interval=0, eval_iters=1, log_interval=10,
               checkpoint_interval=0)
    dense = build_model(ViTConfig(image_size=8, patch_size=4, in_channels=1, n_classes=10,
                                  n_layer=1, n_head=2, n_embd=16), init="vit", seed=1337)
    masks = M.random_masks(M.magnitude_prune(dense.params, M.full_masks(dense.params), 0.6),
                           np.random.default_rng(0))
    M.save_masks(tmp_path / "m.npz", masks)
    summary = run(TrainConfig.for_model(mask=str(tmp_path / "m.npz"), **cfg), tmp_path / "r",
                  progress=False)
    assert summary["sparsity"] == pytest.approx(M.sparsity(masks))
    ckpt = load_checkpoint(tmp_path / "r" / "checkpoint.npz")
    for name, m in masks.items():
        assert np.all(ckpt[name][~m] == 0), name                  # exactly zero
        assert np.all(ckpt[f"opt.m.{name}"][~m] == 0) and np.all(ckpt[f"opt.v.{name}"][~m] == 0)
        moved = ckpt[name][m] != dense.params[name][m]
        assert moved.mean() > 0.9, name
    copied = M.load_masks(tmp_path / "r" / "mask.npz", dense.params)
    assert all(np.array_equal(copied[n], masks[n]) for n in masks)
    tele = (tmp_path / "r" / "telemetry.jsonl").read_text().splitlines()
    assert '"sparsity"' in tele[0]
    rows = {r["name"]: r for r in spectra({n: ckpt[n] for n in masks})}    # inspect spectra
    assert rows["head.weight"]["sparsity"] == pytest.approx(1 - masks["head.weight"].mean())
