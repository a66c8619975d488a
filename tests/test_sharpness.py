"""Sharpness: power iteration (and Lanczos) on finite-difference Hessian-vector products agrees with
the top eigenvalue of the full Hessian built by finite differences of gradients; the
preconditioned variant agrees with the eigenvalues of D^1/2 H D^1/2; parameters are restored."""
import numpy as np
import pytest

from minitransformer import GPTConfig, ViTConfig, build_model
from minitransformer.measure import sharpness as S

TINY = GPTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=1, n_embd=4)


def tiny_problem(cfg=TINY, seed=0):
    """A float64 model with N(0, 1/fan_in) matrices (so the Hessian has a clear top) and a batch."""
    rng = np.random.default_rng(seed)
    model = build_model(cfg, seed=seed, dtype="float64")
    for p in model.params.values():
        if p.ndim >= 2:
            p[...] = rng.standard_normal(p.shape) / np.sqrt(p.shape[0])
    if isinstance(cfg, GPTConfig):
        x = rng.integers(0, cfg.vocab_size, (3, cfg.block_size))
        y = rng.integers(0, cfg.vocab_size, (3, cfg.block_size))
    else:
        x = rng.random((3, cfg.image_size, cfg.image_size, cfg.in_channels))
        y = rng.integers(0, cfg.n_classes, 3)
    return model, x, y


@pytest.fixture(scope="module")
def exact():
    model, x, y = tiny_problem()
    H = S.full_hessian(model, x, y)
    return model, x, y, H, np.linalg.eigvalsh(H)


def test_full_hessian_is_the_gradient_jacobian(exact):
    """Sanity of the reference: H v from the matrix equals the finite-difference product."""
    model, x, y, H, _ = exact
    theta = S.flatten(model.params)
    v = np.random.default_rng(3).standard_normal(theta.size)
    np.testing.assert_allclose(H @ v, S.hvp(model, x, y, theta, v), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["power", "lanczos"])
def test_top_eigenvalue_matches_the_full_hessian(exact, method):
    model, x, y, H, ev = exact
    before = {k: v.copy() for k, v in model.params.items()}
    res = S.top_eigenvalue(model, x, y, iters=3000, restarts=2, tol=1e-6, method=method)
    assert res["lambda_max"] == pytest.approx(ev[-1], rel=1e-5)
    assert all(res["converged"]) and res["spread"] < 1e-4 * abs(ev[-1])
    assert res["n_params"] == H.shape[0] and res["method"] == method
    for k, v in before.items():                        # parameters restored bit for bit
        np.testing.assert_array_equal(model.params[k], v)


def test_negative_dominant_spectrum_still_gives_the_top():
    """When the most negative eigenvalue is the largest in magnitude, plain power iteration
    would return it; the shifted second run must find the most positive one."""
    model, x, y = tiny_problem(seed=0)
    theta = S.flatten(model.params)
    n = theta.size
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.linspace(-1.0, 0.5, n)
    lam[0] = -10.0                                     # dominant, negative
    A = (q * lam) @ q.T
    # replace the Hessian-vector product by the matrix A: the same code path
    orig = S.hvp
    try:
        S.hvp = lambda model, x, y, theta, v, eps=1e-4: A @ v
        res = S.top_eigenvalue(model, x, y, iters=5000, restarts=1, tol=1e-7)
    finally:
        S.hvp = orig
    assert res["lambda_max"] == pytest.approx(0.5, rel=1e-4)


def test_preconditioned_eigenvalue(exact):
    model, x, y, H, _ = exact
    d = np.random.default_rng(1).uniform(0.1, 3.0, H.shape[0])
    s = np.sqrt(d)
    want = np.linalg.eigvalsh((s[:, None] * H) * s[None, :])[-1]
    res = S.top_eigenvalue(model, x, y, iters=300, restarts=1, tol=1e-7, preconditioner=d,
                           method="lanczos")
    assert res["lambda_max"] == pytest.approx(want, rel=1e-5)


def test_vit_top_eigenvalue():
    cfg = ViTConfig(image_size=4, patch_size=2, in_channels=1, n_classes=3, n_layer=1, n_head=1,
                    n_embd=4)
    model, x, y = tiny_problem(cfg)
    ev = np.linalg.eigvalsh(S.full_hessian(model, x, y))
    res = S.top_eigenvalue(model, x, y, iters=300, restarts=1, tol=1e-7, method="lanczos")
    assert res["lambda_max"] == pytest.approx(ev[-1], rel=1e-5)


def test_float32_is_refused_and_bad_arguments():
    model = build_model(TINY, dtype="float32")
    x = np.zeros((1, 4), dtype=np.int64)
    with pytest.raises(ValueError, match="float64"):
        S.top_eigenvalue(model, x, x)
    m64, x, y = tiny_problem()
    with pytest.raises(ValueError, match="method"):
        S.top_eigenvalue(m64, x, y, method="qr")
    with pytest.raises(ValueError, match=">= 1"):
        S.top_eigenvalue(m64, x, y, iters=0)


def test_sharpness_record_leaves_the_model_alone():
    from minitransformer.engine.optim import AdamW
    model, x, y = tiny_problem()
    model32 = type(model)(model.cfg, {k: v.astype(np.float32) for k, v in model.params.items()})
    opt = AdamW(model32.params, lr=1e-2)
    _, g = model32.loss_and_grads(x, y)
    opt.step(model32.params, g)
    before = {k: v.copy() for k, v in model32.params.items()}
    rec = S.sharpness_record(model32, x, y, step=1, lr=1e-2, opt=opt, iters=200, method="lanczos")
    assert rec["two_over_lr"] == 200.0 and rec["batch_size"] == 3 and rec["lambda_max"] > 0
    assert rec["adam_threshold"] == pytest.approx(38 / 1e-2)     # (2 + 2 b1) / ((1 - b1) lr)
    assert rec["adam_lambda_max"] > 0
    for k, v in before.items():
        np.testing.assert_array_equal(model32.params[k], v)
