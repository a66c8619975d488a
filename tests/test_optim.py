"""Tests of minitransformer.optim: AdamW/SGD against hand references and PyTorch, the Numba kernel
against its NumPy twin, decay mask, gradient clipping and every learning-rate schedule."""
import math

import numpy as np
import pytest

from minitransformer.engine.optim import (AdamW, SGD, SCHEDULES, adamw_update_numba, adamw_update_numpy,
                                   clip_grad_norm, decay_mask, get_lr)


def gpt_like_params(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    shapes = {"wte.weight": (5, 4), "wpe.weight": (3, 4), "h.0.ln_1.weight": (4,),
              "h.0.ln_1.bias": (4,), "h.0.attn.c_attn.weight": (4, 12),
              "h.0.attn.c_attn.bias": (12,), "h.0.alpha": (1,)}
    return {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}


def random_grads(params, rng):
    return {k: rng.standard_normal(p.shape).astype(p.dtype) for k, p in params.items()}


# ------------------------------------------------------------------------------ decay mask

def test_decay_mask_only_matrices():
    params = gpt_like_params()
    params.update({"cls_token": np.zeros(4), "pos_embed": np.zeros((17, 4)),
                   "norm.weight": np.ones(4), "head.bias": np.zeros(10)})
    mask = decay_mask(params)
    assert mask == {"wte.weight": True, "wpe.weight": True, "h.0.ln_1.weight": False,
                    "h.0.ln_1.bias": False, "h.0.attn.c_attn.weight": True,
                    "h.0.attn.c_attn.bias": False, "h.0.alpha": False, "cls_token": False,
                    "pos_embed": True, "norm.weight": False, "head.bias": False}


# ------------------------------------------------------------------------------ AdamW

def test_adamw_two_steps_by_hand():
    # 2-D weight (decayed) and a bias (not decayed); hand-written scalar AdamW as the reference.
    lr, b1, b2, eps, wd = 0.1, 0.9, 0.99, 1e-8, 0.1
    w0, b0 = 0.5, -0.3
    gw, gb = [0.1, -0.2], [0.4, 0.4]
    params = {"w": np.array([[w0]]), "b": np.array([b0])}
    opt = AdamW(params, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)

    # step 1 in closed form: mhat = g, vhat = g^2, so the Adam step is lr * g / (|g| + eps)
    opt.step(params, {"w": np.array([[gw[0]]]), "b": np.array([gb[0]])}, lr)
    expected_w1 = w0 * (1 - lr * wd) - lr * 0.1 / (0.1 + eps)
    assert params["w"][0, 0] == pytest.approx(expected_w1, abs=1e-15)
    assert params["w"][0, 0] == pytest.approx(0.395, abs=1e-7)
    assert params["b"][0] == pytest.approx(b0 - lr * 0.4 / (0.4 + eps), abs=1e-15)

    # step 2 from the written-out recurrences
    def ref(p, grads, decay):
        m = v = 0.0
        for t, g in enumerate(grads, start=1):
            p = p - lr * wd * p if decay else p
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            mhat, vhat = m / (1 - b1 ** t), v / (1 - b2 ** t)
            p = p - lr * mhat / (math.sqrt(vhat) + eps)
        return p

    opt.step(params, {"w": np.array([[gw[1]]]), "b": np.array([gb[1]])}, lr)
    assert params["w"][0, 0] == pytest.approx(ref(w0, gw, True), rel=1e-14)
    assert params["b"][0] == pytest.approx(ref(b0, gb, False), rel=1e-14)
    assert opt.t == 2


def test_adamw_matches_torch_five_steps_float64():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    params = {"w": rng.standard_normal((4, 3)), "b": rng.standard_normal(3),
              "scaled": rng.standard_normal((3, 2))}
    t_params = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    lr0, wd, mult = 0.05, 0.1, 0.25
    opt = AdamW(params, lr=lr0, betas=(0.9, 0.99), eps=1e-8, weight_decay=wd,
                lr_mult={"scaled": mult})
    groups = [{"params": [t_params["w"]], "weight_decay": wd, "lr": lr0, "mult": 1.0},
              {"params": [t_params["b"]], "weight_decay": 0.0, "lr": lr0, "mult": 1.0},
              {"params": [t_params["scaled"]], "weight_decay": wd, "lr": lr0 * mult, "mult": mult}]
    t_opt = torch.optim.AdamW(groups, lr=lr0, betas=(0.9, 0.99), eps=1e-8)
    live = {k: v for k, v in params.items()}   # the arrays must be updated, never replaced
    for step in range(5):
        lr = lr0 * (step + 1) / 5               # a changing (warmup-like) lr
        grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
        opt.step(params, grads, lr)
        for group in t_opt.param_groups:
            group["lr"] = lr * group["mult"]
        for k, tp in t_params.items():
            tp.grad = torch.tensor(grads[k])
        t_opt.step()
        for k in params:
            assert params[k] is live[k]
            np.testing.assert_allclose(params[k], t_params[k].detach().numpy(), rtol=1e-13,
                                       atol=1e-15)
    state = opt.state_dict()
    for k, tp in t_params.items():
        np.testing.assert_allclose(state[f"opt.m.{k}"], t_opt.state[tp]["exp_avg"].numpy(),
                                   rtol=1e-13)
        np.testing.assert_allclose(state[f"opt.v.{k}"], t_opt.state[tp]["exp_avg_sq"].numpy(),
                                   rtol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adamw_numba_kernel_equals_numpy_twin(dtype):
    rng = np.random.default_rng(2)
    n = 1000
    state = [rng.standard_normal(n).astype(dtype), np.zeros(n, dtype), np.zeros(n, dtype)]
    a = [x.copy() for x in state]
    b = [x.copy() for x in state]
    for t in range(1, 8):
        g = rng.standard_normal(n).astype(dtype)
        adamw_update_numba(a[0], g, a[1], a[2], 3e-3, 0.1, 0.9, 0.99, 1e-8, t)
        adamw_update_numpy(b[0], g, b[1], b[2], 3e-3, 0.1, 0.9, 0.99, 1e-8, t)
    for x, y in zip(a, b):
        assert x.dtype == dtype
        # same scalars and the same IEEE operations in the same order: bit-identical
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], state[0])


def test_adamw_float32_state_and_in_place_update():
    params = gpt_like_params(np.float32)
    before = {k: v.copy() for k, v in params.items()}
    ids = {k: id(v) for k, v in params.items()}
    opt = AdamW(params, lr=1e-2)
    opt.step(params, random_grads(params, np.random.default_rng(3)))
    for k, p in params.items():
        assert id(p) == ids[k] and p.dtype == np.float32
        assert opt.m[k].dtype == np.float32 and opt.v[k].dtype == np.float32
        assert not np.array_equal(p, before[k])


def test_adamw_non_contiguous_param_is_updated():
    base = np.random.default_rng(4).standard_normal((6, 4))
    params = {"w": base[:, ::2]}   # a strided view
    ref = {"w": np.ascontiguousarray(base[:, ::2])}
    g = {"w": np.full((6, 2), 0.5)}
    AdamW(params, lr=0.1).step(params, g)
    AdamW(ref, lr=0.1).step(ref, g)
    np.testing.assert_array_equal(base[:, ::2], ref["w"])


def test_adamw_state_dict_resume_is_bit_identical(tmp_path):
    rng = np.random.default_rng(5)
    grads = [random_grads(gpt_like_params(np.float32), rng) for _ in range(5)]
    straight = gpt_like_params(np.float32)
    opt = AdamW(straight, lr=1e-2)
    for g in grads:
        opt.step(straight, g)

    resumed = gpt_like_params(np.float32)
    opt1 = AdamW(resumed, lr=1e-2)
    for g in grads[:2]:
        opt1.step(resumed, g)
    np.savez(tmp_path / "ckpt.npz", **resumed, **opt1.state_dict())
    with np.load(tmp_path / "ckpt.npz", allow_pickle=False) as f:
        d = dict(f)
    params = {k: d[k] for k in resumed}
    opt2 = AdamW(params, lr=1e-2)
    opt2.load_state_dict(d)   # model params in d are ignored
    assert opt2.t == 2
    for g in grads[2:]:
        opt2.step(params, g)
    for k in straight:
        np.testing.assert_array_equal(params[k], straight[k])


def test_adamw_state_dict_errors():
    params = gpt_like_params()
    state = AdamW(params, lr=1e-3).state_dict()
    assert set(state) == {"opt.t"} | {f"opt.{s}.{k}" for s in "mv" for k in params}
    opt = AdamW(params, lr=1e-3)
    bad = dict(state)
    del bad["opt.v.wte.weight"]
    with pytest.raises(ValueError, match="opt.v.wte.weight"):
        opt.load_state_dict(bad)
    bad = dict(state, **{"opt.m.wpe.weight": np.zeros((4, 4))})
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict(bad)
    bad = dict(state, **{"opt.m.h.9.alpha": np.zeros(1)})
    with pytest.raises(ValueError, match="h.9.alpha"):
        opt.load_state_dict(bad)


def test_adamw_bad_arguments():
    params = gpt_like_params()
    with pytest.raises(ValueError, match="lr_mult"):
        AdamW(params, lr=1e-3, lr_mult={"nope": 2.0})
    with pytest.raises(ValueError, match="beta2"):
        AdamW(params, lr=1e-3, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="lr"):
        AdamW(params, lr=float("nan"))
    opt = AdamW(params, lr=1e-3)
    grads = random_grads(params, np.random.default_rng(0))
    grads["wte.weight"] = grads["wte.weight"].T
    with pytest.raises(ValueError, match="wte.weight"):
        opt.step(params, grads)


# ------------------------------------------------------------------------------ SGD

def test_sgd_momentum_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    params = {"w": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}
    tp = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    opt = SGD(params, lr=0.1, momentum=0.9)
    t_opt = torch.optim.SGD(list(tp.values()), lr=0.1, momentum=0.9)
    for _ in range(4):
        grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
        opt.step(params, grads)
        for k in tp:
            tp[k].grad = torch.tensor(grads[k])
        t_opt.step()
    for k in params:
        np.testing.assert_allclose(params[k], tp[k].detach().numpy(), rtol=1e-14)


def test_sgd_decoupled_decay_by_hand_and_state():
    params = {"w": np.array([[1.0]]), "b": np.array([1.0])}
    opt = SGD(params, lr=0.1, momentum=0.5, weight_decay=0.2)
    g = {"w": np.array([[1.0]]), "b": np.array([1.0])}
    opt.step(params, g)   # w: 1*(1-0.02) - 0.1*1 = 0.88 ; b: 1 - 0.1 = 0.9
    opt.step(params, g)   # buf = 1.5 ; w: 0.88*0.98 - 0.15 ; b: 0.9 - 0.15
    assert params["w"][0, 0] == pytest.approx(0.88 * 0.98 - 0.15, rel=1e-14)
    assert params["b"][0] == pytest.approx(0.75, rel=1e-14)
    state = opt.state_dict()
    assert state["opt.buf.w"][0, 0] == 1.5 and int(state["opt.t"]) == 2
    opt2 = SGD(params, lr=0.1)
    opt2.load_state_dict(state)
    assert opt2.buf["b"][0] == 1.5 and opt2.t == 2


# ------------------------------------------------------------------------------ clipping

def test_clip_grad_norm_values():
    grads = {"a": np.array([3.0]), "b": np.array([[4.0]])}   # global norm 5
    assert clip_grad_norm(grads, 10.0) == pytest.approx(5.0)
    np.testing.assert_array_equal(grads["a"], [3.0])          # below the limit: unchanged
    assert clip_grad_norm(grads, 1.0) == pytest.approx(5.0)   # returns the norm before clipping
    coef = 1.0 / (5.0 + 1e-6)
    np.testing.assert_allclose(grads["a"], [3.0 * coef], rtol=1e-15)
    np.testing.assert_allclose(grads["b"], [[4.0 * coef]], rtol=1e-15)
    assert clip_grad_norm(grads, 1.0) == pytest.approx(1.0, abs=1e-6)


def test_clip_grad_norm_disabled_and_non_finite():
    grads = {"a": np.array([30.0, 40.0], dtype=np.float32)}
    assert clip_grad_norm(grads, 0.0) == pytest.approx(50.0)
    np.testing.assert_array_equal(grads["a"], [30.0, 40.0])
    grads = {"a": np.array([np.inf, 1.0])}
    assert clip_grad_norm(grads, 1.0) == math.inf
    np.testing.assert_array_equal(grads["a"], [np.inf, 1.0])


def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    grads = {"a": rng.standard_normal((4, 5)), "b": rng.standard_normal(5)}
    ts = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads.values()]
    for t, g in zip(ts, grads.values()):
        t.grad = torch.tensor(g.copy())
    t_norm = torch.nn.utils.clip_grad_norm_(ts, 0.5)
    norm = clip_grad_norm(grads, 0.5)
    assert norm == pytest.approx(float(t_norm), rel=1e-14)
    for t, g in zip(ts, grads.values()):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-14)


# ------------------------------------------------------------------------------ schedules

def nanogpt_get_lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    """Copied from nanoGPT's train.py (the reference for the cosine schedule)."""
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    assert 0 <= decay_ratio <= 1
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return min_lr + coeff * (learning_rate - min_lr)


def test_cosine_equals_nanogpt_everywhere():
    for it in range(0, 2101, 7):
        assert get_lr(it, "cosine", 1e-3, 1e-4, 100, 2000) == pytest.approx(
            nanogpt_get_lr(it, 1e-3, 1e-4, 100, 2000), rel=1e-12)


LR, MIN, W, D = 1e-3, 1e-4, 100, 2000


@pytest.mark.parametrize("schedule, mid, end", [
    ("cosine", MIN + 0.5 * (LR - MIN), MIN),          # mid = halfway between W and D
    ("linear", LR + 0.5 * (MIN - LR), MIN),
    ("constant", LR, LR),
    ("noam", LR * math.sqrt(W + 1) / math.sqrt(1050 + 1), LR * math.sqrt(W + 1) / math.sqrt(D + 1)),
    ("inverse_sqrt", LR * math.sqrt(W + 1) / math.sqrt(1050 + 1),
     LR * math.sqrt(W + 1) / math.sqrt(D + 1)),
])
def test_schedule_key_points(schedule, mid, end):
    def lr(step):
        return get_lr(step, schedule, LR, MIN, W, D)
    assert lr(0) == pytest.approx(LR / (W + 1), rel=1e-12)          # step 0: lr / (W + 1)
    assert lr(W - 1) == pytest.approx(LR * W / (W + 1), rel=1e-12)  # last warmup step
    assert lr(W) == pytest.approx(LR, rel=1e-12)                    # end of warmup: peak
    assert lr(1050) == pytest.approx(mid, rel=1e-12)
    assert lr(D) == pytest.approx(end, rel=1e-12)
    warm = [lr(s) for s in range(W + 1)]
    assert all(a < b for a, b in zip(warm, warm[1:]))               # strictly increasing warmup
    after = [lr(s) for s in range(W, 3000, 13)]
    assert all(a >= b for a, b in zip(after, after[1:]))            # never increases after


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("warmup", [0, 1, 10, 2000])
def test_step0_never_zero(schedule, warmup):
    lr0 = get_lr(0, schedule, LR, 0.0, warmup, 2000)
    assert lr0 > 0
    assert lr0 == pytest.approx(LR / (warmup + 1), rel=1e-12)


def test_no_warmup_variants():
    assert get_lr(0, "cosine", LR, MIN, 0, D) == LR
    assert get_lr(D // 2, "cosine", LR, MIN, 0, D) == pytest.approx(MIN + 0.5 * (LR - MIN))
    assert get_lr(3, "noam", LR, 0.0, 0, D) == pytest.approx(LR / 2)
    assert get_lr(5000, "constant", LR, MIN, 0, D) == LR


def test_noam_floor_and_decay_end():
    assert get_lr(10**9, "noam", LR, MIN, W, D) == MIN
    assert get_lr(10**9, "cosine", LR, MIN, W, D) == MIN
    assert get_lr(D - 1, "linear", LR, MIN, W, D) > MIN
    # lr_decay_iters == warmup_iters: warmup, then straight to min_lr
    assert get_lr(W, "cosine", LR, MIN, W, W) == MIN


def test_schedule_errors():
    with pytest.raises(ValueError, match="cosine, linear, constant, noam, inverse_sqrt"):
        get_lr(0, "exponential", LR, MIN, W, D)
    for bad_lr in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="lr must be positive"):
            get_lr(0, "cosine", bad_lr, 0.0, W, D)
    for bad_min in (-1e-5, 2 * LR, float("nan")):
        with pytest.raises(ValueError, match="min_lr"):
            get_lr(0, "cosine", LR, bad_min, W, D)
    with pytest.raises(ValueError, match="lr_decay_iters"):
        get_lr(0, "cosine", LR, MIN, 500, 200)
    with pytest.raises(ValueError, match="lr_decay_iters"):
        get_lr(0, "linear", LR, MIN, 0, 0)
    with pytest.raises(ValueError, match="step"):
        get_lr(-1, "constant", LR, MIN, W, D)
    assert get_lr(0, "constant", LR, MIN, 0, 0) == LR   # constant never needs lr_decay_iters
