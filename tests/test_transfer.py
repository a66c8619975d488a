"""Pretrained weights as initialization (transfer.apply_init_from) and fine-tuning from the CLI."""
import json

import numpy as np
import pytest

from minitransformer import GPTConfig, ViTConfig, build_model
from minitransformer.training.transfer import apply_init_from
from minitransformer.training.config import TrainConfig
from minitransformer.training.loop import run

CFG = GPTConfig(vocab_size=5, block_size=8, n_layer=2, n_head=2, n_embd=16)


def save_run(folder, model, vocab=None, extra=None):
    """A run folder as train.py writes it: config.json + checkpoint.npz (params, opt.*, step)."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = dict(model.params)
    arrays.update({f"opt.m.{k}": np.zeros_like(v) for k, v in model.params.items()})
    arrays["step"] = np.array(7)
    arrays.update(extra or {})
    np.savez(folder / "checkpoint.npz", **arrays)
    (folder / "config.json").write_text(json.dumps({"model": model.cfg.to_dict(), "vocab": vocab}))
    return folder


def test_loads_every_tensor_in_place_and_casts(tmp_path):
    src = build_model(CFG, seed=1, dtype="float64")
    save_run(tmp_path / "a", src)
    dst = build_model(CFG, seed=2, dtype="float32")
    live = {k: id(v) for k, v in dst.params.items()}
    assert apply_init_from(dst, tmp_path / "a", init="gpt2", seed=2) == []
    for name, p in dst.params.items():
        assert id(p) == live[name] and p.dtype == np.float32    # the live arrays, overwritten
        np.testing.assert_array_equal(p, src.params[name].astype(np.float32))
    # an .npz file works too, and the optimizer state / step inside it are ignored
    dst = build_model(CFG, seed=3)
    assert apply_init_from(dst, tmp_path / "a" / "checkpoint.npz", init="gpt2", seed=3) == []
    np.testing.assert_array_equal(dst.params["h.1.mlp.c_fc.weight"],
                                  src.params["h.1.mlp.c_fc.weight"].astype(np.float32))


def test_shape_mismatch_names_the_tensors_or_keeps_them_fresh(tmp_path):
    src = build_model(CFG, seed=1)
    save_run(tmp_path / "a", src)
    longer = GPTConfig(vocab_size=5, block_size=16, n_layer=2, n_head=2, n_embd=16)
    dst = build_model(longer, seed=2)
    before = {k: v.copy() for k, v in dst.params.items()}
    with pytest.raises(ValueError, match=r"wpe\.weight: checkpoint \(8, 16\) vs model \(16, 16\)"):
        apply_init_from(dst, tmp_path / "a", init="gpt2", seed=2)
    for k in before:                                           # nothing half-loaded
        np.testing.assert_array_equal(dst.params[k], before[k])
    notes = apply_init_from(dst, tmp_path / "a", init="gpt2", seed=2, allow_partial=True)
    assert len(notes) == 1 and notes[0].startswith("wpe.weight") and "fresh init" in notes[0]
    np.testing.assert_array_equal(dst.params["wpe.weight"], before["wpe.weight"])
    np.testing.assert_array_equal(dst.params["h.0.attn.c_attn.weight"], src.params["h.0.attn.c_attn.weight"])


def test_missing_and_extra_tensors(tmp_path):
    src = build_model(CFG, seed=1)                             # pre-LN: has ln_* and ln_f
    save_run(tmp_path / "a", src)
    dst = build_model(GPTConfig(vocab_size=5, block_size=8, n_layer=2, n_head=2, n_embd=16,
                                norm="none"), seed=2)
    with pytest.raises(ValueError, match="ln_1.weight: not in this model"):
        apply_init_from(dst, tmp_path / "a", init="gpt2", seed=2)
    notes = apply_init_from(dst, tmp_path / "a", init="gpt2", seed=2, allow_partial=True)
    assert any("not in this model, ignored" in n and "ln_f.weight" in n for n in notes)
    deeper = build_model(GPTConfig(vocab_size=5, block_size=8, n_layer=3, n_head=2, n_embd=16), seed=2)
    with pytest.raises(ValueError, match="h.2.attn.c_attn.weight: missing from the checkpoint"):
        apply_init_from(deeper, tmp_path / "a", init="gpt2", seed=2)


def test_reinit_head(tmp_path):
    vcfg = ViTConfig(image_size=8, patch_size=4, n_classes=3, n_layer=1, n_head=2, n_embd=8)
    src = build_model(vcfg, seed=1)
    save_run(tmp_path / "v", src)
    dst = build_model(vcfg, init="vit_jax", seed=2)            # vit_jax: a zero head
    notes = apply_init_from(dst, tmp_path / "v", init="vit_jax", seed=2, reinit_head=True)
    assert [n.split(":")[0] for n in notes] == ["head.weight", "head.bias"]
    assert not dst.params["head.weight"].any()
    np.testing.assert_array_equal(dst.params["blocks.0.mlp.fc1.weight"], src.params["blocks.0.mlp.fc1.weight"])
    # GPT: the head is the tied wte, so reinit_head re-draws wte
    src = build_model(CFG, seed=1)
    save_run(tmp_path / "g", src)
    dst = build_model(CFG, seed=2)
    fresh = dst.params["wte.weight"].copy()
    notes = apply_init_from(dst, tmp_path / "g", init="gpt2", seed=2, reinit_head=True)
    assert notes[0].startswith("wte.weight")
    np.testing.assert_array_equal(dst.params["wte.weight"], fresh)


def test_new_vocabulary_maps_shared_characters(tmp_path):
    src = build_model(CFG, seed=1)                             # vocabulary "abcde"
    save_run(tmp_path / "a", src, vocab="abcde")
    dst = build_model(GPTConfig(vocab_size=6, block_size=8, n_layer=2, n_head=2, n_embd=16), seed=2)
    fresh = dst.params["wte.weight"].copy()
    notes = apply_init_from(dst, tmp_path / "a", init="gpt2", seed=2, vocab="xecaZb")
    assert len(notes) == 1 and "2 of 6 characters are new" in notes[0] and "'Z'" in notes[0]
    wte, old = dst.params["wte.weight"], src.params["wte.weight"]
    for i, ch in enumerate("xecaZb"):
        expected = old["abcde".index(ch)] if ch in "abcde" else fresh[i]
        np.testing.assert_array_equal(wte[i], expected)
    np.testing.assert_array_equal(dst.params["wpe.weight"], src.params["wpe.weight"])
    # the same vocabulary is a plain copy
    dst = build_model(CFG, seed=2)
    assert apply_init_from(dst, tmp_path / "a", init="gpt2", seed=2, vocab="abcde") == []


def test_bad_sources(tmp_path):
    model = build_model(CFG)
    with pytest.raises(FileNotFoundError):
        apply_init_from(model, tmp_path / "nope", init="gpt2", seed=0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no checkpoint.npz"):
        apply_init_from(model, tmp_path / "empty", init="gpt2", seed=0)
    np.savez(tmp_path / "pickled.npz", **{"wte.weight": np.array([object()], dtype=object)})
    with pytest.raises(ValueError, match="pickle"):
        apply_init_from(model, tmp_path / "pickled.npz", init="gpt2", seed=0)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError):
        apply_init_from(model, tmp_path / "junk.npz", init="gpt2", seed=0)


TINY = dict(model="gpt", n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=2, max_iters=2,
            warmup_iters=0, eval_interval=0, eval_iters=1, checkpoint_interval=0, log_interval=1)


def test_fine_tune_a_run_on_a_new_text(tmp_path):
    (tmp_path / "a.txt").write_text("abcabcabba cab acbacb " * 20)
    (tmp_path / "b.txt").write_text("bcdbcd dbcbcdd bcdcb " * 20)
    run(TrainConfig.for_model(data=str(tmp_path / "a.txt"), **TINY), tmp_path / "A", progress=False)
    s = run(TrainConfig.for_model(data=str(tmp_path / "b.txt"), init_from=str(tmp_path / "A"), **TINY),
            tmp_path / "B", progress=False)
    assert s["status"] == "completed"


def test_init_from_non_finite_weights_is_one_line(tmp_path):
    """--init-from a checkpoint with NaN weights is refused, naming the tensor (issue 9, class 7)."""
    import numpy as np
    import pytest as _pytest
    from minitransformer.errors import CheckpointError
    from minitransformer.training.transfer import load_source
    arrays = {"wte.weight": np.ones((3, 4), np.float32), "wpe.weight": np.ones((2, 4), np.float32)}
    arrays["wpe.weight"][1, 2] = np.nan
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with _pytest.raises(CheckpointError, match=r"wpe\.weight \(1 NaN, 0 inf\)"):
        load_source(path)
