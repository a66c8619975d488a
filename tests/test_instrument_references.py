"""The instruments against references that do not share their code: sharpness on models whose
Hessian is known in closed form and, on a real GPT, against second differences of the loss alone
(no gradient, no Hessian-vector product); the Marchenko-Pastur law against its closed-form
moments and edges; filter normalization against a hand computation on tiny tensors; telemetry
against values known exactly (SGD's update, Adam's bias-corrected step recomputed here)."""
import math

import numpy as np
import pytest

from minitransformer import GPTConfig, build_model
from minitransformer.engine.optim import SGD, AdamW
from minitransformer.measure import landscape as LS
from minitransformer.measure import sharpness as S
from minitransformer.measure import spectra as SP
from minitransformer.measure import telemetry as TM


# ------------------------------------------------------------------------------ sharpness

class Quadratic:
    """L(θ) = ½ θᵀAθ + bᵀθ over two parameter tensors (a (3, 2) matrix and a (4,) vector, in
    that order): its Hessian is A, exactly, everywhere."""

    def __init__(self, A, b, theta):
        self.A, self.b = A, b
        self.params = {"w": theta[:6].reshape(3, 2).copy(), "v": theta[6:].copy()}
        self.cfg = None

    def _theta(self):
        return np.concatenate([self.params["w"].ravel(), self.params["v"]])

    def loss(self, x, y):
        t = self._theta()
        return 0.5 * t @ self.A @ t + self.b @ t

    def loss_and_grads(self, x, y):
        t = self._theta()
        g = self.A @ t + self.b
        return self.loss(x, y), {"w": g[:6].reshape(3, 2), "v": g[6:]}


class LeastSquaresHead:
    """A linear head W (d, k) on fixed features X (n, d) with targets Y (n, k),
    L = ‖XW − Y‖²/(2n): its Hessian is I_k ⊗ XᵀX/n, so the top eigenvalue is that of XᵀX/n."""

    def __init__(self, X, Y, W):
        self.X, self.Y, self.params, self.cfg = X, Y, {"head.weight": W.copy()}, None

    def loss(self, x, y):
        r = self.X @ self.params["head.weight"] - self.Y
        return float(np.sum(r * r)) / (2 * len(self.X))

    def loss_and_grads(self, x, y):
        r = self.X @ self.params["head.weight"] - self.Y
        return self.loss(x, y), {"head.weight": self.X.T @ r / len(self.X)}


def quadratic(top=7.5, bottom=-2.0):
    """A 10-parameter quadratic with eigenvalues spread between bottom and top, written here."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    lam = np.array([top, 3.0, 2.5, 1.0, 0.5, 0.0, -0.25, -1.0, -1.5, bottom])
    A = (q * lam) @ q.T
    return Quadratic(A, rng.standard_normal(10), rng.standard_normal(10)), lam


@pytest.mark.parametrize("method", ["power", "lanczos"])
def test_sharpness_of_a_quadratic_is_its_top_eigenvalue(method):
    model, lam = quadratic()
    res = S.top_eigenvalue(model, None, None, iters=2000, restarts=2, tol=1e-9, method=method)
    assert res["lambda_max"] == pytest.approx(7.5, rel=1e-6)
    assert res["n_params"] == 10
    # a negative eigenvalue of largest magnitude: the top is still the most positive one
    model, lam = quadratic(top=2.0, bottom=-9.0)
    res = S.top_eigenvalue(model, None, None, iters=5000, restarts=1, tol=1e-9, method=method)
    assert res["lambda_max"] == pytest.approx(3.0, rel=1e-6)   # lam's largest positive is 3.0


def test_hvp_and_full_hessian_reproduce_the_known_matrix():
    model, _ = quadratic()
    theta = S.flatten(model.params)
    v = np.random.default_rng(1).standard_normal(10) * 3.7        # not a unit vector
    np.testing.assert_allclose(S.hvp(model, None, None, theta, v), model.A @ v, rtol=1e-7,
                               atol=1e-8)
    np.testing.assert_allclose(S.full_hessian(model, None, None), model.A, atol=1e-8)


def test_preconditioned_sharpness_of_a_quadratic():
    model, _ = quadratic()
    d = np.linspace(0.2, 2.0, 10)
    want = np.linalg.eigvalsh(np.sqrt(d)[:, None] * model.A * np.sqrt(d)[None, :])[-1]
    res = S.top_eigenvalue(model, None, None, iters=500, restarts=1, tol=1e-10,
                           preconditioner=d, method="lanczos")
    assert res["lambda_max"] == pytest.approx(want, rel=1e-7)


def test_sharpness_of_a_least_squares_head():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((50, 6)) * np.array([3.0, 1.0, 1.0, 0.5, 0.5, 0.1])
    model = LeastSquaresHead(X, rng.standard_normal((50, 3)), rng.standard_normal((6, 3)))
    want = np.linalg.eigvalsh(X.T @ X / 50)[-1]
    res = S.top_eigenvalue(model, None, None, iters=1000, restarts=1, tol=1e-10, method="lanczos")
    assert res["lambda_max"] == pytest.approx(want, rel=1e-7)


def test_adam_preconditioner_by_hand():
    params = {"a": np.zeros(2), "b": np.zeros(1)}
    v = {"a": np.array([0.04, 0.0]), "b": np.array([1.0])}
    # t = 1, beta2 = 0.5: v_hat = v / 0.5; d = mult / (sqrt(v_hat) + eps)
    d = S.adam_preconditioner(params, (None, v, 1), beta2=0.5, eps=0.1, lr_mult={"a": 2.0, "b": 1.0})
    want = [2.0 / (math.sqrt(0.08) + 0.1), 2.0 / 0.1, 1.0 / (math.sqrt(2.0) + 0.1)]
    np.testing.assert_allclose(d, want, rtol=1e-12)


def test_sharpness_of_a_real_gpt_against_second_differences_of_the_loss():
    """On a tiny float64 GPT: along the top eigenvector u of the hvp-built Hessian, the curvature
    of the loss alone, (L(θ+hu) − 2L(θ) + L(θ−hu))/h², equals λ_max; so does top_eigenvalue.
    This uses forward passes only: a wrong scale or sign anywhere in the backward pass or in
    hvp cannot agree with it."""
    cfg = GPTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=1, n_embd=4)
    rng = np.random.default_rng(0)
    model = build_model(cfg, seed=0, dtype="float64")
    for p in model.params.values():
        if p.ndim >= 2:
            p[...] = rng.standard_normal(p.shape) / np.sqrt(p.shape[0])
    x, y = rng.integers(0, 7, (3, 4)), rng.integers(0, 7, (3, 4))
    ev, vec = np.linalg.eigh(S.full_hessian(model, x, y))
    theta = S.flatten(model.params)

    def loss_at(t):
        S.assign(model.params, t)
        return model.loss(x, y)

    h = 1e-3
    for lam, u in ((ev[-1], vec[:, -1]), (ev[0], vec[:, 0])):
        curv = (loss_at(theta + h * u) - 2 * loss_at(theta) + loss_at(theta - h * u)) / h ** 2
        assert curv == pytest.approx(lam, rel=1e-4, abs=1e-6)
    S.assign(model.params, theta)
    res = S.top_eigenvalue(model, x, y, iters=300, restarts=1, tol=1e-8, method="lanczos")
    assert res["lambda_max"] == pytest.approx(ev[-1], rel=1e-6)


# ------------------------------------------------------------------------------ Marchenko-Pastur

def _moments_of_cdf(sigma2, q, k_max=3, grid=200001):
    lo, hi = SP.mp_edges(sigma2, q)
    x = np.linspace(lo, hi, grid)
    F = SP.mp_cdf(x, sigma2, q)
    mid, dF = (x[1:] + x[:-1]) / 2, np.diff(F)
    return [float(np.sum(mid ** k * dF)) for k in range(1, k_max + 1)]


@pytest.mark.parametrize("sigma2,q", [(1.0, 1.0), (2.0, 0.5), (0.3, 0.1)])
def test_mp_law_has_its_closed_form_moments(sigma2, q):
    """E[λ] = σ², E[λ²] = σ⁴(1 + q), E[λ³] = σ⁶(1 + 3q + q²) (Bai & Silverstein 2010, 3.1.1)."""
    want = [sigma2, sigma2 ** 2 * (1 + q), sigma2 ** 3 * (1 + 3 * q + q * q)]
    np.testing.assert_allclose(_moments_of_cdf(sigma2, q), want, rtol=2e-4)
    if q < 1:                                          # the density too (no 1/sqrt(λ) at 0)
        lo, hi = SP.mp_edges(sigma2, q)
        x = np.linspace(lo, hi, 400001)
        d = SP.mp_density(x, sigma2, q)
        got = [float(np.sum(((x ** k * d)[1:] + (x ** k * d)[:-1]) / 2 * np.diff(x)))
               for k in (1, 2, 3)]
        np.testing.assert_allclose(got, want, rtol=1e-4)


def test_mp_edges_and_tracy_widom_scale_by_hand():
    assert SP.mp_edges(2.0, 0.25) == pytest.approx((0.5, 4.5))      # 2(1 ∓ 0.5)²
    assert SP.mp_edges(1.0, 1.0) == pytest.approx((0.0, 4.0))
    # m = 401, n = 100: (√400 + √100)(1/√400 + 1/√100)^(1/3) = 30 · 0.15^(1/3)
    assert SP.tw_scale(401, 100) == pytest.approx(15.93987, rel=1e-6)


def test_a_gaussian_matrix_has_the_mp_moments():
    """The empirical moments of W'W/m of one 1200 x 400 Gaussian matrix, whose fluctuations are
    O(1/m): within 1% of the law's."""
    rng = np.random.default_rng(3)
    w = 0.05 * rng.standard_normal((1200, 400))
    row, eigs = SP.matrix_spectrum(w)
    s2, q = row["sigma2"], 1 / 3
    assert row["q"] == pytest.approx(q) and row["m"] == 1200 and row["n"] == 400
    assert np.mean(eigs) == pytest.approx(s2, rel=1e-2)
    assert np.mean(eigs ** 2) == pytest.approx(s2 ** 2 * (1 + q), rel=1e-2)
    assert np.mean(eigs ** 3) == pytest.approx(s2 ** 3 * (1 + 3 * q + q * q), rel=2e-2)
    assert row["lambda_plus"] == pytest.approx(s2 * (1 + math.sqrt(q)) ** 2, rel=1e-12)


# ------------------------------------------------------------------------------ filter normalization

class FixedDraws:
    """A stand-in generator whose standard_normal returns the arrays given, in order."""

    def __init__(self, *arrays):
        self.arrays = list(arrays)

    def standard_normal(self, shape):
        a = np.array(self.arrays.pop(0), dtype=np.float64)
        assert a.shape == tuple(shape)
        return a


def test_filter_normalization_by_hand():
    params = {"wte.weight": np.array([[3.0, 4.0], [0.0, 2.0]]),       # rows are filters
              "h.0.mlp.c_fc.weight": np.array([[3.0, 0.0], [4.0, 1.0]]),   # columns are filters
              "h.0.mlp.c_fc.bias": np.array([1.0, 2.0])}
    rng = FixedDraws([[1.0, 0.0], [1.0, 1.0]], [[1.0, 2.0], [0.0, 2.0]])
    d = LS.filter_normalized_direction(params, rng)
    # wte rows: norms (5, 2); random rows (1, 0) and (1, 1) of norms 1, √2
    np.testing.assert_allclose(d["wte.weight"], [[5.0, 0.0], [math.sqrt(2), math.sqrt(2)]])
    # c_fc columns: norms (5, 1); random columns (1, 0) and (2, 2) of norms 1, 2√2
    np.testing.assert_allclose(d["h.0.mlp.c_fc.weight"], [[5.0, 1 / math.sqrt(2)],
                                                          [0.0, 1 / math.sqrt(2)]])
    np.testing.assert_array_equal(d["h.0.mlp.c_fc.bias"], [0.0, 0.0])


# ------------------------------------------------------------------------------ telemetry

CFG = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8)


def _model_and_batch():
    rng = np.random.default_rng(0)
    model = build_model(CFG, seed=0, dtype="float64")
    return model, rng.integers(0, 11, (3, 8)), rng.integers(0, 11, (3, 8))


def test_sgd_update_norm_is_lr_times_the_gradient_norm():
    """Plain SGD moves every tensor by exactly lr·g: update_norm = lr‖g‖, and with clipping
    (factor c) lr·c‖g‖ while grad_norm still reports ‖g‖."""
    from minitransformer.engine.optim import clip_grad_norm
    model, x, y = _model_and_batch()
    _, grads = model.loss_and_grads(x, y)
    raw = {k: g.copy() for k, g in grads.items()}
    total = clip_grad_norm(grads, 0.05)
    c = 0.05 / (total + 1e-6)
    assert c < 1
    before = TM.copy_params(model.params)
    SGD(model.params, lr=0.3, momentum=0.0).step(model.params, grads)
    rec = TM.step_record(0, 0.3, total, 0.05, before, model, grads, None, x, activations=False)
    assert rec["clipped"] is True and rec["grad_norm"] == pytest.approx(total)
    for name, s in rec["tensors"].items():
        g = np.linalg.norm(raw[name])
        assert s["grad_norm"] == pytest.approx(g, rel=1e-9)
        assert s["update_norm"] == pytest.approx(0.3 * c * g, rel=1e-9)


def test_adam_step_after_three_steps_with_lr_multipliers():
    """adam_step_* against AdamW's formula written out here: m, v from the raw gradients,
    bias correction with t = 3, lr_eff = lr · mult (muP-style multipliers)."""
    model, x, y = _model_and_batch()
    lr, b1, b2, eps = 1e-2, 0.9, 0.99, 1e-8
    mult = {k: (0.25 if k.endswith("c_fc.weight") else 1.0) for k in model.params}
    opt = AdamW(model.params, lr=lr, betas=(b1, b2), eps=eps, weight_decay=0.0, lr_mult=mult)
    m = {k: np.zeros_like(p) for k, p in model.params.items()}
    v = {k: np.zeros_like(p) for k, p in model.params.items()}
    for t in range(1, 4):
        _, grads = model.loss_and_grads(x, y)
        for k, g in grads.items():
            m[k] = b1 * m[k] + (1 - b1) * g
            v[k] = b2 * v[k] + (1 - b2) * g * g
        before = TM.copy_params(model.params)
        opt.step(model.params, grads, lr)
    rec = TM.step_record(2, lr, 1.0, 0.0, before, model, grads, opt, x, activations=False)
    for k, s in rec["tensors"].items():
        u = lr * mult[k] * np.abs(m[k] / (1 - b1 ** 3)) / (np.sqrt(v[k] / (1 - b2 ** 3)) + eps)
        assert s["adam_step_mean"] == pytest.approx(u.mean(), rel=1e-9), k
        assert s["adam_step_max"] == pytest.approx(u.max(), rel=1e-9), k
        # with no weight decay Adam's whole update is that step, element by element
        assert s["update_norm"] == pytest.approx(np.linalg.norm(u), rel=1e-9), k
