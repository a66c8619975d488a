"""Loss landscape: filter-normalized directions have each filter's norm equal to the weights'
filter norm (columns of (in, out) weights, rows of embedding tables, zero for vectors);
interpolation and slices hit the right points and restore the parameters; the run-level
report rebuilds the initial weights from config.json."""
import numpy as np
import pytest

from minitransformer import GPTConfig, ViTConfig, build_model
from minitransformer.engine.names import TABLES, role
from minitransformer.measure import landscape as LS
from minitransformer.analysis.snapshot import load_snapshot
from minitransformer.training.config import TrainConfig
from minitransformer.training.loop import run

CFG = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8)


def problem(seed=0):
    rng = np.random.default_rng(seed)
    model = build_model(CFG, seed=seed, dtype="float64")
    batches = [(rng.integers(0, 11, (2, 8)), rng.integers(0, 11, (2, 8))) for _ in range(2)]
    return model, batches


def test_filter_normalized_direction():
    model, _ = problem()
    model.params["h.0.mlp.c_fc.weight"][:, 3] = 0          # a dead unit gets a zero filter
    d = LS.filter_normalized_direction(model.params, np.random.default_rng(0))
    for name, p in model.params.items():
        if p.ndim < 2:
            assert not np.any(d[name]), name                 # biases, LayerNorm: no move
        elif role(name) in TABLES:                           # rows are the filters
            np.testing.assert_allclose(np.linalg.norm(d[name], axis=1), np.linalg.norm(p, axis=1))
        else:                                                # output columns are the filters
            np.testing.assert_allclose(np.linalg.norm(d[name], axis=0), np.linalg.norm(p, axis=0))
    assert not np.any(d["h.0.mlp.c_fc.weight"][:, 3])
    vit = build_model(ViTConfig(image_size=8, patch_size=4, n_layer=1, n_head=2, n_embd=8))
    dv = LS.filter_normalized_direction(vit.params, np.random.default_rng(0))
    np.testing.assert_allclose(np.linalg.norm(dv["pos_embed"], axis=1),
                               np.linalg.norm(vit.params["pos_embed"], axis=1), rtol=1e-6)
    assert not np.any(dv["cls_token"])


def test_interpolation_and_slices_hit_the_right_points():
    model, batches = problem()
    theta1 = {k: v.copy() for k, v in model.params.items()}
    other, _ = problem(seed=5)
    theta0 = {k: v.copy() for k, v in other.params.items()}
    base = LS.mean_loss(model, batches)
    loss0 = LS.mean_loss(other, batches)
    out = LS.interpolation(model, theta0, theta1, [0.0, 0.5, 1.0], batches)
    assert out[0] == pytest.approx(loss0, rel=1e-12) and out[2] == pytest.approx(base, rel=1e-12)
    mid = build_model(CFG, dtype="float64")
    for k in mid.params:
        mid.params[k][...] = 0.5 * (theta0[k] + theta1[k])
    assert out[1] == pytest.approx(LS.mean_loss(mid, batches), rel=1e-12)
    d1 = LS.filter_normalized_direction(model.params, np.random.default_rng(1))
    d2 = LS.filter_normalized_direction(model.params, np.random.default_rng(2))
    s1 = LS.slice_1d(model, d1, [-1.0, 0.0, 1.0], batches)
    assert s1[1] == pytest.approx(base, rel=1e-12)
    shifted = build_model(CFG, dtype="float64")
    for k in shifted.params:
        shifted.params[k][...] = theta1[k] + 1.0 * d1[k] - 0.5 * d2[k]
    grid = LS.slice_2d(model, d1, d2, [0.0, 1.0], [-0.5, 0.0], batches)   # rows beta, cols alpha
    assert grid[0][1] == pytest.approx(LS.mean_loss(shifted, batches), rel=1e-12)
    assert grid[1][0] == pytest.approx(base, rel=1e-12)
    for k, v in theta1.items():                               # restored bit for bit
        np.testing.assert_array_equal(model.params[k], v)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("land") / "run"
    run(TrainConfig.for_model(n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=8,
                              max_iters=30, warmup_iters=3, lr=3e-3, eval_interval=0,
                              eval_iters=2, checkpoint_interval=0), out, progress=False)
    return out


def test_inspect_landscape_on_a_run(tiny_run):
    snap = load_snapshot(tiny_run)
    before = {k: v.copy() for k, v in snap.model.params.items()}
    res = LS.inspect_landscape(snap, modes=("interp", "1d", "2d"), points=5, n_batches=2)
    it = res["interp"]
    assert it["alpha"][0] == pytest.approx(-0.5) and it["alpha"][-1] == pytest.approx(1.5)
    assert 0.0 in it["alpha"] and 1.0 in it["alpha"]
    # alpha = 0 is the rebuilt initial model: loss near ln(V) for a fresh GPT
    assert it["loss_init"] == pytest.approx(np.log(len(snap.vocab)), abs=0.1)
    assert it["loss_final"] == pytest.approx(res["loss"], rel=1e-6) and it["loss_final"] < it["loss_init"]
    assert len(res["1d"]["loss"]) == 5 and res["1d"]["loss"][2] == pytest.approx(res["loss"], rel=1e-6)
    assert np.array(res["2d"]["loss"]).shape == (5, 5)
    assert res["2d"]["loss"][2][2] == pytest.approx(res["loss"], rel=1e-6)
    for k, v in before.items():
        np.testing.assert_array_equal(snap.model.params[k], v)


def test_bad_landscape_options(tiny_run):
    snap = load_snapshot(tiny_run)
    with pytest.raises(ValueError, match="unknown landscape mode"):
        LS.inspect_landscape(snap, modes=("3d",))
    with pytest.raises(ValueError, match="points"):
        LS.inspect_landscape(snap, points=1)
    from minitransformer.analysis.snapshot import fresh_snapshot
    fresh = fresh_snapshot("gpt", "gpt2", n_layer=1, n_embd=16, n_head=2, block_size=16)
    with pytest.raises(ValueError, match="step 0"):
        LS.inspect_landscape(fresh, modes=("interp",))
