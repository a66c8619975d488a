"""Tests of minitransformer.kernels: every kernel's Numba version equals its NumPy twin (float32
and float64), both equal an independent straightforward formula, dtypes are preserved, and the
fast-path names point at one of the two versions and can be switched with `kernels.use`.

Must also pass under NUMBA_DISABLE_JIT=1 (the `_numba` functions then run as plain Python), so
the shapes are realistic but small.
"""
import math

import numba
import numpy as np
import pytest
from scipy.special import erf, logsumexp

from minitransformer.engine import kernels

DTYPES = [np.float32, np.float64]
# (rtol, atol) for Numba vs NumPy; float32 versions may round differently (float64 accumulators
# in the Numba loops), float64 must agree to round-off.
TWIN_TOL = {np.float32: (1e-5, 1e-6), np.float64: (1e-12, 1e-12)}
# (rtol, atol) against the independent reference computed in float64.
REF_TOL = {np.float32: (2e-5, 2e-6), np.float64: (1e-11, 1e-12)}

B, NH, T, C, V = 2, 3, 13, 48, 65          # T = 13: not a power of 2
R = B * T


def twins(name):
    return getattr(kernels, f"{name}_numba"), getattr(kernels, f"{name}_numpy")


def close(a, b, dtype, tol=TWIN_TOL):
    rtol, atol = tol[dtype]
    np.testing.assert_allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64),
                               rtol=rtol, atol=atol)


def close_scaled(a, b, scale, dtype, tol=TWIN_TOL):
    """|a - b| <= rtol |b| + atol * scale, elementwise. GELU's derivative near saturation is
    1 + tanh(u) with tanh(u) close to -1: in float32 that difference keeps only a few bits, so the
    absolute error grows with |dy| (1 + x^2), the size of the terms that cancel."""
    rtol, atol = tol[dtype]
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    err = np.abs(a - b)
    bound = rtol * np.abs(b) + atol * scale
    worst = np.argmax(err - bound)
    assert np.all(err <= bound), (err.flat[worst], bound.flat[worst], worst)


def assert_dtype(dtype, *arrays):
    for a in arrays:
        assert isinstance(a, np.ndarray) and a.dtype == dtype, (getattr(a, "dtype", type(a)), dtype)


# ------------------------------------------------------------------------------ references

def ref_layernorm(x, w, b, eps):
    x = x.astype(np.float64)
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)          # biased variance, as PyTorch
    return (x - mean) / np.sqrt(var + eps) * w + b, mean[:, 0], 1.0 / np.sqrt(var[:, 0] + eps)


def ref_gelu_tanh(x):
    x = x.astype(np.float64)
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def ref_gelu_erf(x):
    x = x.astype(np.float64)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def ref_softmax(s, scale, causal):
    """s (R, T) with R = (batch*heads)*T rows: mask keys j > t (t = row % T) when causal."""
    s = s.astype(np.float64) * scale
    Rr, Tt = s.shape
    if causal:
        t = np.arange(Rr) % Tt
        s = np.where(np.arange(Tt)[None, :] > t[:, None], -np.inf, s)
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def ref_softmax_bwd(p, dp, scale):
    """Explicit Jacobian per row: dp/ds = scale (diag(p) - p p^T), symmetric."""
    p, dp = p.astype(np.float64), dp.astype(np.float64)
    J = scale * (np.einsum("rj,jk->rjk", p, np.eye(p.shape[1])) - p[:, :, None] * p[:, None, :])
    return np.einsum("rjk,rk->rj", J, dp)


def ref_xent(logits, y):
    z = logits.astype(np.float64)
    Rr = z.shape[0]
    logp = z - logsumexp(z, axis=1, keepdims=True)
    loss = -logp[np.arange(Rr), y].mean()
    onehot = np.zeros_like(z)
    onehot[np.arange(Rr), y] = 1.0
    return loss, (np.exp(logp) - onehot) / Rr


def fd_elementwise(f, x, h=1e-6):
    """Central differences of an elementwise function (float64)."""
    return (f(x + h) - f(x - h)) / (2 * h)


# ------------------------------------------------------------------------------ fast path

def test_kernel_list_is_complete():
    defined = {n[:-len("_numba")] for n in dir(kernels) if n.endswith("_numba")}
    assert defined == set(kernels.KERNELS)
    for name in kernels.KERNELS:
        assert callable(getattr(kernels, f"{name}_numpy"))


@pytest.mark.parametrize("name", kernels.KERNELS)
def test_fast_path_points_at_a_real_implementation(name):
    fast = getattr(kernels, name)
    nb, npy = twins(name)
    assert fast is nb or fast is npy
    assert nb is not npy and callable(nb) and callable(npy)
    assert not isinstance(npy, numba.core.registry.CPUDispatcher)  # the twin is plain NumPy
    if numba.config.DISABLE_JIT:
        assert fast is npy                 # documented: NumPy everywhere without the JIT


@pytest.mark.parametrize("name", kernels.KERNELS)
def test_use_switches_the_fast_path(name):
    nb, npy = twins(name)
    saved = getattr(kernels, name)
    try:
        kernels.use(name, "numba")
        assert getattr(kernels, name) is nb
        kernels.use(name, "numpy")
        assert getattr(kernels, name) is npy
    finally:
        setattr(kernels, name, saved)
    assert getattr(kernels, name) is saved


def test_use_is_seen_by_the_layers():
    """The layers look the kernel up at call time, so a switch takes effect immediately."""
    from minitransformer.engine.layers import layernorm_forward
    calls = []
    saved = kernels.layernorm_fwd
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((4, 6)), rng.standard_normal(6), rng.standard_normal(6)
    try:
        kernels.layernorm_fwd_spy = lambda *a: calls.append(1) or kernels.layernorm_fwd_numpy(*a)
        kernels.use("layernorm_fwd", "spy")
        y, _ = layernorm_forward(x, w, b, 1e-5)
    finally:
        kernels.layernorm_fwd = saved
        del kernels.layernorm_fwd_spy
    assert calls == [1]
    np.testing.assert_allclose(y, ref_layernorm(x, w, b, 1e-5)[0], rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------ layernorm

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [1e-5, 1e-6])
def test_layernorm_fwd(dtype, eps):
    rng = np.random.default_rng(1)
    x = (3.0 * rng.standard_normal((R, C)) + 0.5).astype(dtype)
    w = (1.0 + 0.3 * rng.standard_normal(C)).astype(dtype)
    b = (0.3 * rng.standard_normal(C)).astype(dtype)
    nb, npy = twins("layernorm_fwd")
    y1, m1, r1 = nb(x, w, b, eps)
    y2, m2, r2 = npy(x, w, b, eps)
    assert_dtype(dtype, y1, m1, r1, y2, m2, r2)
    assert y1.shape == y2.shape == (R, C) and m1.shape == r1.shape == m2.shape == r2.shape == (R,)
    for a, b_ in ((y1, y2), (m1, m2), (r1, r2)):
        close(a, b_, dtype)
    y_ref, m_ref, r_ref = ref_layernorm(x, w, b, eps)
    for y, m, r in ((y1, m1, r1), (y2, m2, r2)):
        close(y, y_ref, dtype, REF_TOL)
        close(m, m_ref, dtype, REF_TOL)
        close(r, r_ref, dtype, REF_TOL)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layernorm_bwd(dtype):
    rng = np.random.default_rng(2)
    eps = 1e-5
    x = (2.0 * rng.standard_normal((R, C)) - 0.3).astype(dtype)
    w = (1.0 + 0.3 * rng.standard_normal(C)).astype(dtype)
    b = (0.3 * rng.standard_normal(C)).astype(dtype)
    dy = rng.standard_normal((R, C)).astype(dtype)
    _, mean, rstd = kernels.layernorm_fwd_numpy(x, w, b, eps)
    nb, npy = twins("layernorm_bwd")
    out1 = nb(dy, x, mean, rstd, w)
    out2 = npy(dy, x, mean, rstd, w)
    assert_dtype(dtype, *out1, *out2)
    for a, b_ in zip(out1, out2):
        close(a, b_, dtype)
    # Independent: gradient of sum(ref_layernorm(x, w, b) * dy) by central differences (float64).
    x64, w64, b64, dy64 = (a.astype(np.float64) for a in (x, w, b, dy))
    rows = slice(0, 3)                     # the rows are independent: three are enough for dx
    h = 1e-6

    def f(xx, ww, bb):
        return float(np.sum(ref_layernorm(xx, ww, bb, eps)[0] * dy64[: len(xx)]))

    dx_num = np.zeros((3, C))
    for i in range(3):
        for j in range(C):
            xp, xm = x64[rows].copy(), x64[rows].copy()
            xp[i, j] += h
            xm[i, j] -= h
            dx_num[i, j] = (f(xp, w64, b64) - f(xm, w64, b64)) / (2 * h)
    xhat = (x64 - x64.mean(1, keepdims=True)) / np.sqrt(x64.var(1, keepdims=True) + eps)
    dw_ref, db_ref = (dy64 * xhat).sum(0), dy64.sum(0)
    tol = {np.float32: (1e-4, 1e-5), np.float64: (1e-7, 1e-8)}   # finite differences
    for dx, dw, db in (out1, out2):
        close(dx[rows], dx_num, dtype, tol)
        close(dw, dw_ref, dtype, {np.float32: (1e-4, 1e-5), np.float64: (1e-11, 1e-12)})
        close(db, db_ref, dtype, {np.float32: (1e-5, 1e-5), np.float64: (1e-12, 1e-12)})


# ------------------------------------------------------------------------------ GELU

GELUS = [("gelu_tanh", ref_gelu_tanh), ("gelu_erf", ref_gelu_erf)]

# The GELU kernels are fwd(x) -> (y, aux) and bwd(x, aux, dy) -> dx, where aux is the costly
# part kept for the backward (tanh(u) for "tanh", Phi(x) for "erf"); aux is checked against its
# formula too.


def ref_gelu_aux(name, x):
    x = x.astype(np.float64)
    if name == "gelu_tanh":
        return np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3))
    return 0.5 * (1.0 + erf(x / math.sqrt(2.0)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,ref", GELUS)
@pytest.mark.parametrize("shape", [(R, 4 * C), (B, T, 4 * C)])
def test_gelu_fwd(name, ref, dtype, shape):
    rng = np.random.default_rng(3)
    x = (2.0 * rng.standard_normal(shape)).astype(dtype)
    x.reshape(-1)[:6] = [0.0, -6.0, 6.0, -3.0, 3.0, 1e-3]     # zero, saturated tails
    x_before = x.copy()
    nb, npy = twins(f"{name}_fwd")
    (y1, a1), (y2, a2) = nb(x), npy(x)
    np.testing.assert_array_equal(x, x_before)
    assert_dtype(dtype, y1, y2)
    assert y1.shape == y2.shape == shape
    scale = 1.0 + np.abs(x.astype(np.float64))
    close_scaled(y1, y2, scale, dtype)
    close_scaled(y1, ref(x), scale, dtype, REF_TOL)
    close_scaled(y2, ref(x), scale, dtype, REF_TOL)
    assert_dtype(dtype, a1, a2)
    assert a1.shape == a2.shape == shape
    close(a1, a2, dtype)
    close(a1, ref_gelu_aux(name, x), dtype, REF_TOL)
    close(a2, ref_gelu_aux(name, x), dtype, REF_TOL)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,ref", GELUS)
@pytest.mark.parametrize("shape", [(R, 4 * C), (B, T, 4 * C)])
def test_gelu_bwd(name, ref, dtype, shape):
    rng = np.random.default_rng(4)
    x = (2.0 * rng.standard_normal(shape)).astype(dtype)
    x.reshape(-1)[:5] = [0.0, -6.0, 6.0, -3.0, 3.0]
    dy = rng.standard_normal(shape).astype(dtype)
    fwd_nb, fwd_np = twins(f"{name}_fwd")
    _, a1 = fwd_nb(x)
    _, a2 = fwd_np(x)
    x_before, dy_before = x.copy(), dy.copy()
    nb, npy = twins(f"{name}_bwd")
    # each backward with its own forward's aux, and crossed (the fast path may mix the two)
    dxs = [nb(x, a1, dy), npy(x, a2, dy), nb(x, a2, dy), npy(x, a1, dy)]
    np.testing.assert_array_equal(x, x_before)               # inputs untouched
    np.testing.assert_array_equal(dy, dy_before)
    assert_dtype(dtype, *dxs)
    assert all(dx.shape == shape for dx in dxs)
    scale = np.abs(dy.astype(np.float64)) * (1.0 + x.astype(np.float64) ** 2)
    for dx in dxs[1:]:
        close_scaled(dxs[0], dx, scale, dtype)
    # Independent: elementwise central differences of the reference formula, times dy.
    dref = fd_elementwise(ref, x.astype(np.float64)) * dy.astype(np.float64)
    tol = {np.float32: (2e-5, 2e-6), np.float64: (1e-8, 1e-9)}
    for dx in dxs:
        close_scaled(dx, dref, scale, dtype, tol)


def test_gelu_known_values():
    # GELU(x) -> x for large x, -> 0 for very negative x, GELU(0) = 0, erf-GELU(1) = Phi(1).
    for name in ("gelu_tanh", "gelu_erf"):
        for fn in twins(f"{name}_fwd"):
            y, _ = fn(np.array([0.0, 10.0, -10.0, 1.0]))
            assert y[0] == 0.0 and abs(y[1] - 10.0) < 1e-12 and abs(y[2]) < 1e-12
            if name == "gelu_erf":
                assert abs(y[3] - 0.8413447460685429) < 1e-14
            else:
                assert abs(y[3] - 0.8413447460685429) < 1e-3      # the tanh approximation


# ------------------------------------------------------------------------------ softmax

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("Tt", [13, 16, 1])
def test_softmax_fwd(dtype, causal, Tt):
    rng = np.random.default_rng(5)
    HS = 16
    scale = 1.0 / math.sqrt(HS)
    s = (4.0 * rng.standard_normal((B * NH * Tt, Tt))).astype(dtype)
    nb, npy = twins("softmax_fwd")
    s1, s2 = s.copy(), s.copy()
    p1, p2 = nb(s1, scale, causal), npy(s2, scale, causal)
    assert_dtype(dtype, p1, p2)
    assert np.shares_memory(p1, s1) and np.shares_memory(p2, s2)   # in place, as documented
    close(p1, p2, dtype)
    ref = ref_softmax(s, scale, causal)
    close(p1, ref, dtype, REF_TOL)
    close(p2, ref, dtype, REF_TOL)
    for p in (p1, p2):
        assert np.all(np.isfinite(p)) and np.all(p >= 0)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=0, atol=20 * np.finfo(dtype).eps)
        if causal:
            p3 = p.reshape(-1, Tt, Tt)
            assert np.all(p3[:, np.triu_indices(Tt, 1)[0], np.triu_indices(Tt, 1)[1]] == 0.0)
            assert np.all(p3[:, 0, 0] == 1.0)                # the first query sees only itself


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_fwd_large_scores_stay_finite(dtype):
    s = np.array([[1000.0, 0.0, -1000.0], [-1000.0, -1000.0, -1000.0], [80.0, 80.0, -80.0]],
                 dtype=dtype)
    for fn in twins("softmax_fwd"):
        p = fn(s.copy(), 1.0, False)
        assert np.all(np.isfinite(p))
        np.testing.assert_allclose(p, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0]],
                                   atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("causal", [True, False])
def test_softmax_bwd(dtype, causal):
    rng = np.random.default_rng(6)
    scale = 0.25
    s = (4.0 * rng.standard_normal((B * NH * T, T))).astype(dtype)
    p = kernels.softmax_fwd_numpy(s.copy(), scale, causal)
    dp = rng.standard_normal(p.shape).astype(dtype)
    nb, npy = twins("softmax_bwd")
    p1, p2 = p.copy(), p.copy()
    d1, d2 = dp.copy(), dp.copy()
    ds1, ds2 = nb(p1, d1, scale), npy(p2, d2, scale)
    assert_dtype(dtype, ds1, ds2)
    np.testing.assert_array_equal(p1, p)                    # probabilities untouched
    np.testing.assert_array_equal(p2, p)
    close(ds1, ds2, dtype)
    ref = ref_softmax_bwd(p, dp, scale)
    close(ds1, ref, dtype, REF_TOL)
    close(ds2, ref, dtype, REF_TOL)
    if causal:                                              # masked keys get no gradient
        iu = np.triu_indices(T, 1)
        assert np.all(ds1.reshape(-1, T, T)[:, iu[0], iu[1]] == 0)
        assert np.all(ds2.reshape(-1, T, T)[:, iu[0], iu[1]] == 0)
    # each row's gradient sums to zero (softmax is shift invariant)
    np.testing.assert_allclose(ds1.sum(axis=1), 0.0, atol=50 * np.finfo(dtype).eps)


def test_softmax_bwd_matches_finite_differences():
    """ds of the forward kernel by central differences, float64, causal with T = 5."""
    rng = np.random.default_rng(7)
    Tt, scale, h = 5, 0.7, 1e-6
    s = rng.standard_normal((2 * Tt, Tt))
    dp = rng.standard_normal(s.shape)
    p = kernels.softmax_fwd_numpy(s.copy(), scale, True)
    num = np.zeros_like(s)
    for i in range(s.shape[0]):
        for j in range(Tt):
            sp, sm = s.copy(), s.copy()
            sp[i, j] += h
            sm[i, j] -= h
            num[i, j] = np.sum((ref_softmax(sp, scale, True) - ref_softmax(sm, scale, True)) * dp) / (2 * h)
    for fn in twins("softmax_bwd"):
        np.testing.assert_allclose(fn(p.copy(), dp.copy(), scale), num, rtol=1e-7, atol=1e-9)


# ------------------------------------------------------------------------------ cross-entropy

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("extreme", [False, True])
def test_xent(dtype, extreme):
    rng = np.random.default_rng(8)
    logits = (3.0 * rng.standard_normal((R, V))).astype(dtype)
    y = rng.integers(0, V, R)
    if extreme:
        logits[:, :] = rng.choice([-80.0, 80.0], size=(R, V)).astype(dtype)
        logits[0, :] = -80.0                                  # a row all at -80
        logits[1, :] = 80.0                                   # a row all at +80
        logits[2, y[2]] = -80.0                               # target far below the max
        logits[2, (y[2] + 1) % V] = 80.0
    nb, npy = twins("xent")
    l1, g1 = nb(logits.copy(), y)
    l2, g2 = npy(logits.copy(), y)
    assert_dtype(dtype, g1, g2)
    assert g1.shape == g2.shape == (R, V)
    assert np.isfinite(l1) and np.isfinite(l2)
    assert np.all(np.isfinite(g1)) and np.all(np.isfinite(g2))
    assert float(l1) == pytest.approx(float(l2), rel=TWIN_TOL[dtype][0], abs=TWIN_TOL[dtype][1])
    close(g1, g2, dtype)
    l_ref, g_ref = ref_xent(logits, y)
    rtol = REF_TOL[dtype][0]
    assert float(l1) == pytest.approx(l_ref, rel=rtol)
    assert float(l2) == pytest.approx(l_ref, rel=rtol)
    close(g1, g_ref, dtype, REF_TOL)
    close(g2, g_ref, dtype, REF_TOL)
    # every row of the gradient sums to zero
    np.testing.assert_allclose(g1.sum(axis=1), 0.0, atol=20 * np.finfo(dtype).eps)
    if extreme:
        assert float(l1) > 50                                 # row 2 alone contributes 160 / R


def test_xent_uniform_logits_give_log_v():
    logits = np.zeros((7, V))
    y = np.arange(7)
    for fn in twins("xent"):
        loss, g = fn(logits.copy(), y)
        assert loss == pytest.approx(math.log(V), rel=1e-14)
        np.testing.assert_allclose(g[0, 1], 1.0 / (V * 7), rtol=1e-13)
        np.testing.assert_allclose(g[0, 0], (1.0 / V - 1.0) / 7, rtol=1e-13)


# ------------------------------------------------------------------------------ embedding

@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_bwd(dtype):
    rng = np.random.default_rng(9)
    idx = rng.integers(0, 10, R)                              # many repeats, vocab V with gaps
    idx[:4] = 3
    dout = rng.standard_normal((R, C)).astype(dtype)
    nb, npy = twins("embedding_bwd")
    d1, d2 = nb(idx, dout, V), npy(idx, dout, V)
    assert_dtype(dtype, d1, d2)
    assert d1.shape == d2.shape == (V, C)
    close(d1, d2, dtype)
    ref = np.zeros((V, C))
    for r in range(R):
        ref[idx[r]] += dout[r].astype(np.float64)
    close(d1, ref, dtype, REF_TOL)
    close(d2, ref, dtype, REF_TOL)
    unused = np.setdiff1d(np.arange(V), idx)
    assert len(unused) > 0 and np.all(d1[unused] == 0) and np.all(d2[unused] == 0)


# ------------------------------------------------------------------------------ vectorized exp

def test_exp32_is_within_a_few_ulp_of_exp_over_its_whole_range():
    from minitransformer.engine.vmath import exp32
    x = np.linspace(-87.0, 88.0, 20001).astype(np.float32)
    got = exp32(x).astype(np.float64)
    want = np.exp(x.astype(np.float64))
    rel = np.abs(got - want) / want
    assert rel.max() < 1e-7, rel.max()                 # float32 ulp is 6e-8: under 2 ulp
    assert exp32(np.float32([0.0]))[0] == 1.0          # exact at 0 (softmax: the row's max)


def test_exp32_keeps_nan_and_saturates_instead_of_overflowing():
    from minitransformer.engine.vmath import exp32
    out = exp32(np.float32([np.nan, -np.inf, np.inf, -1000.0, 1000.0]).reshape(5, 1))
    assert out.shape == (5, 1) and out.dtype == np.float32
    assert np.isnan(out[0, 0])
    assert 0.0 < out[1, 0] < 2e-38 and out[3, 0] == out[1, 0]     # clamped at exp(-87)
    assert np.isfinite(out[2, 0]) and out[2, 0] > 1e38            # clamped at exp(88)


def test_erf32_is_within_abramowitz_stegun_bound():
    from minitransformer.engine.vmath import erf32
    x = np.linspace(-6.0, 6.0, 20001).astype(np.float32)
    err = np.abs(erf32(x).astype(np.float64) - erf(x.astype(np.float64)))
    assert err.max() < 2e-7, err.max()                 # the book's 1.5e-7, exp32's and float32's rounding
    out = erf32(np.float32([np.nan, np.inf, -np.inf, 0.0]))
    assert np.isnan(out[0]) and out[1] == 1.0 and out[2] == -1.0 and abs(out[3]) < 1e-7


# ------------------------------------------------------------------------------ linear helpers

@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_add_and_col_sum(dtype):
    rng = np.random.default_rng(11)
    d = rng.standard_normal((R, C)).astype(dtype)
    b = rng.standard_normal(C).astype(dtype)
    for fn in twins("bias_add"):
        out = d.copy()
        assert fn(out, b) is out                       # in place
        assert_dtype(dtype, out)
        close(out, d.astype(np.float64) + b.astype(np.float64), dtype, REF_TOL)
    sums = [fn(d) for fn in twins("col_sum")]
    assert_dtype(dtype, *sums)
    close(sums[0], sums[1], dtype)
    np.testing.assert_allclose(sums[0], d.astype(np.float64).sum(axis=0),
                               rtol=REF_TOL[dtype][0], atol=R * REF_TOL[dtype][1])
