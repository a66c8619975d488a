"""A step's batch cut over threads (training/shards.py): the same loss, gradients and trace as
the unsharded step up to rounding, a fixed order of summation (deterministic), BLAS's thread count
given back, and the shard count recorded by a run and kept by its resume."""
import json

import numpy as np
import pytest

from minitransformer import GPTConfig, ViTConfig, build_model, runtime
from minitransformer.errors import ConfigError
from minitransformer.training.config import TrainConfig
from minitransformer.training.loop import run
from minitransformer.training.shards import Shards, auto_shards, shard_bounds

GPT = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)
VIT = ViTConfig(image_size=8, patch_size=4, n_layer=2, n_head=2, n_embd=16)


def batch(cfg, B, rng, dtype):
    if isinstance(cfg, GPTConfig):
        return (rng.integers(0, cfg.vocab_size, (B, cfg.block_size)),
                rng.integers(0, cfg.vocab_size, (B, cfg.block_size)))
    return rng.random((B, 8, 8, 1)).astype(dtype), rng.integers(0, cfg.n_classes, B)


@pytest.mark.parametrize("cfg", [GPT, VIT], ids=["gpt", "vit"])
@pytest.mark.parametrize("B,n", [(6, 2), (5, 2), (7, 3), (4, 4)])
def test_sharded_gradient_is_the_batch_gradient(cfg, B, n):
    """float64: loss, every gradient and every traced activation agree to rounding, also when
    the shards are unequal (5 rows in 2: weights 3/5 and 2/5)."""
    model = build_model(cfg, seed=0, dtype="float64")
    x, y = batch(cfg, B, np.random.default_rng(1), np.float64)
    t_ref, t_sh = {}, {}
    loss, grads = model.loss_and_grads(x, y, trace=t_ref)
    with Shards(n) as shards:
        loss_s, grads_s = shards.loss_and_grads(model, x, y, t_sh)
    assert loss_s == pytest.approx(loss, rel=1e-13)
    assert list(grads_s) == list(grads)                # the parameters' order
    for name, g in grads.items():
        assert grads_s[name].dtype == g.dtype and grads_s[name].shape == g.shape
        np.testing.assert_allclose(grads_s[name], g, rtol=1e-10, atol=1e-13, err_msg=name)
    assert set(t_sh) == set(t_ref)
    for key, a in t_ref.items():
        np.testing.assert_allclose(t_sh[key], a, rtol=1e-12, atol=1e-14, err_msg=key)


def test_sharded_float32_is_close_and_repeatable():
    model = build_model(GPT, seed=0, dtype="float32")
    x, y = batch(GPT, 8, np.random.default_rng(2), np.float32)
    loss, grads = model.loss_and_grads(x, y)
    with Shards(2) as shards:
        first = shards.loss_and_grads(model, x, y)
        for _ in range(20):                            # threads finish in any order: same bits
            again = shards.loss_and_grads(model, x, y)
            assert again[0] == first[0]
            assert all(np.array_equal(again[1][k], first[1][k]) for k in grads)
    assert first[0] == pytest.approx(loss, rel=1e-6)
    for name, g in grads.items():
        assert first[1][name].dtype == np.float32
        np.testing.assert_allclose(first[1][name], g, rtol=1e-4, atol=1e-6, err_msg=name)


def test_shards_give_blas_its_threads_back():
    before = runtime.blas_threads()
    if before is None:                                 # not an OpenBLAS: nothing is touched
        assert auto_shards(8) == 1
        return
    with Shards(2) as shards:
        assert runtime.blas_threads() == 1             # one BLAS thread per shard
        assert shards.pool is not None
    assert runtime.blas_threads() == before
    shards.close()                                     # twice: harmless
    assert runtime.blas_threads() == before
    with Shards(1) as one:                             # no threads, BLAS untouched
        assert one.pool is None and runtime.blas_threads() == before


def test_shard_bounds():
    assert shard_bounds(12, 2) == [(0, 6), (6, 12)]
    assert shard_bounds(5, 2) == [(0, 2), (2, 5)] or shard_bounds(5, 2) == [(0, 3), (3, 5)]
    bounds = shard_bounds(7, 3)
    assert bounds[0][0] == 0 and bounds[-1][1] == 7
    assert all(b1[1] == b2[0] for b1, b2 in zip(bounds, bounds[1:]))
    assert max(b - a for a, b in bounds) - min(b - a for a, b in bounds) <= 1
    for n, B in ((0, 4), (5, 4), (1.5, 4)):
        with pytest.raises(ConfigError):
            shard_bounds(B, n)
    assert 1 <= auto_shards(1) == 1
    assert 1 <= auto_shards(64) <= runtime.cores()


def test_config_checks_shards():
    for bad in (0, -1, 13):
        with pytest.raises(ConfigError, match="shards"):
            TrainConfig(shards=bad)                    # batch_size 12
    assert TrainConfig(shards=3).shards == 3 and TrainConfig().shards is None


def tiny(**kw):
    return TrainConfig(**dict(dict(n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=4,
                                   max_iters=12, eval_interval=0, eval_iters=1, log_interval=4,
                                   checkpoint_interval=6, warmup_iters=2, lr_decay_iters=20),
                              **kw))


def test_a_run_records_its_shards_and_an_old_run_resumes_unsharded(tmp_path):
    """New runs store the resolved count. A run folder from before shards existed (no "shards"
    in config.json) ran unsharded, so its resume takes one shard, whatever the machine has: it
    ends bit-identical to an uninterrupted one-shard run."""
    run(tiny(), tmp_path / "auto", progress=False)
    saved = json.loads((tmp_path / "auto" / "config.json").read_text())["train"]
    assert saved["shards"] == auto_shards(4)

    ref = tmp_path / "ref"
    run(tiny(shards=1), ref, progress=False)
    old = tmp_path / "old"
    run(tiny(shards=1, max_iters=6, checkpoint_interval=3), old, progress=False)
    config = json.loads((old / "config.json").read_text())
    del config["train"]["shards"]                      # as an older version wrote it
    config["train"]["max_iters"], config["train"]["checkpoint_interval"] = 12, 6
    (old / "config.json").write_text(json.dumps(config))
    (old / "summary.json").unlink()                    # unfinished: resume goes on to step 12
    run(TrainConfig.from_dict(config["train"]), old, resume=True, progress=False)
    a, b = np.load(ref / "checkpoint.npz"), np.load(old / "checkpoint.npz")
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:                                  # bit for bit, but the wall clock
        if k != "train.elapsed_s":
            assert np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f"), k


def test_sharded_and_unsharded_runs_train_alike(tmp_path):
    """Two shards change only rounding: the loss curve stays within float32 noise."""
    one = run(tiny(shards=1, max_iters=20), tmp_path / "one", progress=False)
    two = run(tiny(shards=2, max_iters=20), tmp_path / "two", progress=False)
    assert two["final_val_loss"] == pytest.approx(one["final_val_loss"], abs=2e-3)


def test_sweep_runs_take_one_shard_unless_the_spec_says(tmp_path):
    """Sweep workers have one core each, and a run's bits must not depend on the backend."""
    from minitransformer.studies.spec import SweepSpec, check_spec
    _, points = check_spec(SweepSpec(base={"max_iters": 2}, grid={"lr": [1e-3, 2e-3]}),
                           check_data=False)
    assert [cfg.shards for *_, cfg in points] == [1, 1]
    _, points = check_spec(SweepSpec(base={"max_iters": 2, "shards": 2}, grid={"lr": [1e-3]}),
                           check_data=False)
    assert [cfg.shards for *_, cfg in points] == [2]


def test_cli_refuses_a_bad_shard_count_in_one_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    p = subprocess.run([sys.executable, str(root / "cli.py"), "train", "--shards", "13",
                        "--out", str(tmp_path / "r")], capture_output=True, text=True, cwd=root)
    assert p.returncode == 2 and p.stderr == "error: shards (13) cannot exceed batch_size (12)\n"
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("model", ["gpt", "vit"])
def test_evaluation_on_the_shards_threads_gives_the_same_numbers(model):
    from minitransformer.training.build import make_model, make_streams, model_config, resolve_data
    from minitransformer.training.evaluate import evaluate
    cfg = TrainConfig.for_model(model=model, n_layer=1, n_head=2, n_embd=16, eval_iters=5,
                                batch_size=4,
                                **({"data": "digits", "patch_size": 4} if model == "vit" else {}))
    data = resolve_data(cfg)
    model_ = make_model(cfg, model_config(cfg, data)[0])
    alone = evaluate(cfg, model_, data, make_streams(0)["eval"])
    with Shards(2) as shards:
        pooled = evaluate(cfg, model_, data, make_streams(0)["eval"], pool=shards.pool)
    assert pooled == alone


def test_cpu_quota_of_a_container(tmp_path):
    f = tmp_path / "cpu.max"
    for text, want in (("200000 100000\n", 2), ("150000 100000", 2), ("50000 100000", 1),
                       ("max 100000", None), ("garbage", None)):
        f.write_text(text)
        assert runtime.cpu_quota(str(f)) == want, text
    assert runtime.cpu_quota(str(tmp_path / "absent")) is None
    assert runtime.cores() >= 1


@pytest.mark.parametrize("cfg", [GPT, VIT], ids=["gpt", "vit"])
def test_dloss_scales_every_gradient_and_not_the_loss(cfg):
    model = build_model(cfg, seed=0, dtype="float64")
    x, y = batch(cfg, 3, np.random.default_rng(5), np.float64)
    loss, grads = model.loss_and_grads(x, y)
    loss_s, grads_s = model.loss_and_grads(x, y, dloss=0.375)
    assert loss_s == loss
    for name, g in grads.items():
        np.testing.assert_allclose(grads_s[name], 0.375 * g, rtol=1e-13, atol=1e-16, err_msg=name)
