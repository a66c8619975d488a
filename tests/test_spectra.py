"""Spectra vs Marchenko-Pastur: random matrices (and freshly initialized models) agree with the law,
a planted low-rank spike is found as an outlier, the MP density and CDF are right, the Hill/MLE
tail fit recovers a known exponent and warns when the tail is short, and Q/K/V are split."""
import math

import numpy as np
import pytest

from minitransformer import GPTConfig, ViTConfig, build_model
from minitransformer.measure import spectra as S


@pytest.mark.parametrize("shape", [(512, 256), (256, 512), (300, 300)])
@pytest.mark.parametrize("dist", ["normal", "uniform"])
def test_random_matrix_agrees_with_mp(shape, dist):
    rng = np.random.default_rng(0)
    w = 0.02 * (rng.standard_normal(shape) if dist == "normal" else rng.uniform(-1, 1, shape))
    row, eigs = S.matrix_spectrum(w)
    assert row["frac_outside"] == 0.0 and row["n_outside"] == 0
    assert row["ks"] < 0.03                          # the eigenvalues follow the MP distribution
    assert 0.95 < row["outlier_ratio"] < 1.05        # the largest sits at the edge lambda_+
    m, n = max(shape), min(shape)
    assert row["sigma2"] == pytest.approx(np.var(w))
    assert row["sv_max"] == pytest.approx(row["sv_pred_max"], rel=0.03)
    assert len(row["singular_values"]) == n == len(eigs)
    # eigenvalues of W^T W / m are the squared singular values over m
    sv = np.linalg.svd(w, compute_uv=False)
    np.testing.assert_allclose(np.sort(sv ** 2 / m), eigs, rtol=1e-8, atol=1e-14)


def test_a_matrix_that_is_not_mp_fails_the_test():
    """The KS distance can fail: the eigenvalues of a matrix with unequal column scales do not
    follow MP (and some leave the bulk)."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((400, 200)) * np.linspace(0.2, 2.0, 200)
    row, _ = S.matrix_spectrum(w)
    assert row["ks"] > 0.1 and row["frac_outside"] > 0.05


def test_planted_spike_is_an_outlier():
    """W = noise + theta * u v^T: above the BBP threshold (theta^2 > sqrt(q) sigma^2 m in these
    units) exactly one eigenvalue leaves the bulk, at the predicted position."""
    rng = np.random.default_rng(1)
    m, n, sigma = 400, 200, 0.02
    noise = sigma * rng.standard_normal((m, n))
    u = rng.standard_normal(m); u /= np.linalg.norm(u)
    v = rng.standard_normal(n); v /= np.linalg.norm(v)
    base, _ = S.matrix_spectrum(noise)
    assert base["n_outside"] == 0
    for strength in (3.0, 6.0):                      # spike signal-to-noise, in units of sigma*sqrt(m)
        theta = strength * sigma * math.sqrt(m)
        row, eigs = S.matrix_spectrum(noise + theta * np.outer(u, v))
        assert row["n_outside"] == 1 and row["frac_outside"] == pytest.approx(1 / n)
        assert row["outlier_ratio"] > 1.5
        # BBP position of the outlier of (X + theta u v^T)^T(...)/m, with q = n/m and s = strength^2
        q, s = n / m, strength ** 2
        predicted = sigma ** 2 * (1 + s) * (1 + q / s)
        assert eigs[-1] == pytest.approx(predicted, rel=0.05)


def test_mp_density_and_cdf():
    for q in (1.0, 0.5, 0.1):
        lo, hi = S.mp_edges(2.0, q)
        x = np.linspace(lo, hi, 400001)[1:-1]
        d = S.mp_density(x, 2.0, q)
        mass = np.sum((d[1:] + d[:-1]) / 2 * np.diff(x))
        assert mass == pytest.approx(1.0, abs=3e-3 if q == 1.0 else 1e-5)   # 1/sqrt singularity at 0
        mean = np.sum(((x * d)[1:] + (x * d)[:-1]) / 2 * np.diff(x))
        assert mean == pytest.approx(2.0, rel=1e-4)                         # E[lambda] = sigma^2
        c = S.mp_cdf(np.array([lo - 1, lo, hi, hi + 1]), 2.0, q)
        np.testing.assert_allclose(c, [0, 0, 1, 1], atol=1e-12)
        mid = 0.5 * (lo + hi)
        sel = x <= mid
        part = np.sum((d[sel][1:] + d[sel][:-1]) / 2 * np.diff(x[sel]))
        assert S.mp_cdf(mid, 2.0, q) == pytest.approx(part, abs=3e-3 if q == 1.0 else 1e-4)
    assert S.mp_density(np.array([-1.0, 100.0]), 1.0, 0.5).tolist() == [0.0, 0.0]


def test_power_law_fit_recovers_alpha():
    rng = np.random.default_rng(0)
    for alpha in (2.5, 4.0):
        x = (1 - rng.random(3000)) ** (-1 / (alpha - 1))      # Pareto with density ~ x^-alpha
        a, xmin, k, ks = S.power_law_fit(x)
        assert a == pytest.approx(alpha, rel=0.1) and k >= 100 and ks < 0.05
    assert S.power_law_fit(np.arange(1.0, 6.0)) is None        # too few eigenvalues


def test_short_tails_carry_a_warning():
    rng = np.random.default_rng(0)
    row, _ = S.matrix_spectrum(rng.standard_normal((64, 32)))
    assert "warning" in row and row["alpha_k"] < S.MIN_TAIL
    row, _ = S.matrix_spectrum(rng.standard_normal((8, 4)))
    assert row["alpha"] is None and "no power-law fit" in row["warning"]


def test_qkv_split_and_zero_matrices():
    cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8)
    model = build_model(cfg, seed=0, dtype="float64")
    mats = dict(S.weight_matrices(model.params))
    w = model.params["h.0.attn.c_attn.weight"]
    for j, part in enumerate("qkv"):
        np.testing.assert_array_equal(mats[f"h.0.attn.c_attn.weight[{part}]"], w[:, 8 * j:8 * (j + 1)])
    assert "h.0.attn.c_attn.weight" not in mats and "h.0.ln_1.weight" not in mats
    assert "wte.weight" in mats and "h.0.mlp.c_fc.weight" in mats
    model.params["h.0.attn.c_proj.weight"][...] = 0
    rows = {r["name"]: r for r in S.spectra(model.params)}
    assert "note" in rows["h.0.attn.c_proj.weight"]
    assert "all entries equal" in S.format_rows(list(rows.values()))
    vit = build_model(ViTConfig(image_size=8, patch_size=4, n_layer=1, n_head=2, n_embd=8), seed=0)
    names = [n for n, _ in S.weight_matrices(vit.params)]
    assert "blocks.0.attn.qkv.weight[k]" in names and "patch_embed.weight" in names


def test_fresh_init_agrees_with_mp():
    """The weights of a gpt2-initialized model (i.i.d. normal) sit inside their MP bulk."""
    cfg = GPTConfig(vocab_size=65, block_size=64, n_layer=2, n_head=4, n_embd=128)
    model = build_model(cfg, init="gpt2", seed=0, dtype="float32")
    for row in S.spectra(model.params):
        assert row["frac_outside"] == 0.0, row["name"]
        assert row["ks"] < 0.06, row["name"]
