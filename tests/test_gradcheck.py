"""The gradient checker itself: it must pass exact zeros and fail wrong gradients."""
import numpy as np

from minitransformer import GPTConfig, build_model
from minitransformer.engine.gradcheck import (CheckRow, ZERO_TOL, check_model, numerical_grad,
                                       random_batch, rel_error, scale_of, well_conditioned)


def tiny_gpt():
    cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8)
    model = build_model(cfg, seed=0, dtype="float64")
    rng = np.random.default_rng(0)
    well_conditioned(model.params, rng)
    return model, *random_batch(cfg, 3, rng)


def test_key_bias_gradient_is_exactly_zero_and_passes():
    """Adding b to every key shifts each query's scores by q.b, which softmax ignores: the key
    bias has zero gradient. Checking only those elements is 0/0 in relative terms; the checker
    must call it agreement, not failure."""
    model, x, y = tiny_gpt()
    _, grads = model.loss_and_grads(x, y)
    C = 8
    assert np.abs(grads["h.0.attn.c_attn.bias"][C:2 * C]).max() < 1e-14    # zero up to rounding
    assert np.abs(grads["h.0.attn.c_attn.bias"][:C]).max() > 1e-4          # the query bias is not
    num = numerical_grad(lambda: model.loss(x, y), model.params["h.0.attn.c_attn.bias"],
                         idx=np.arange(C, 2 * C))
    assert np.abs(num).max() < ZERO_TOL / 10
    g = grads["h.0.attn.c_attn.bias"][C:2 * C]
    row = CheckRow("k bias", (3 * C,), C, rel_error(g, num), 1e-6, scale_of(g, num))
    assert row.zero and row.ok


def test_a_wrong_gradient_fails():
    model, x, y = tiny_gpt()
    rows = {r.name: r for r in check_model(model, x, y, n_samples=6)}
    assert all(r.ok for r in rows.values())
    real = model.loss_and_grads

    def off_by_a_bit(x, y):
        loss, grads = real(x, y)
        grads["h.0.mlp.c_fc.weight"] = grads["h.0.mlp.c_fc.weight"] * 1.001
        return loss, grads
    model.loss_and_grads = off_by_a_bit
    bad = {r.name: r for r in check_model(model, x, y, n_samples=6)}
    assert not bad["h.0.mlp.c_fc.weight"].ok and not bad["h.0.mlp.c_fc.weight"].zero
    assert sum(not r.ok for r in bad.values()) == 1


def test_zero_analytic_against_nonzero_numeric_fails():
    row = CheckRow("w", (4,), 4, rel_error(np.zeros(4), np.full(4, 1e-4)), 1e-6,
                   scale_of(np.zeros(4), np.full(4, 1e-4)))
    assert not row.ok
