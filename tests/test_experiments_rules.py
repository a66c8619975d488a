"""Every study's verdict rule on synthetic result tables: one table that must give SUPPORTED, one
NOT SUPPORTED, one INCONCLUSIVE, so that no rule can be a constant. The tables are built from
the rule's own wording (studies/experiments/<study>.py), not from a run."""
import math

import pytest

from minitransformer.studies.experiments import registry
from minitransformer.studies.experiments.common import (INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED,
                                                        loss_of, mean_pm_std)


def run(seed, loss, **fields):
    """One synthetic row: completed with that final val loss, or diverged when loss is inf."""
    status = "completed" if math.isfinite(loss) else "diverged"
    return dict(fields, seed=seed, status=status,
                final_val_loss=loss if status == "completed" else None, part="main")


SEEDS = (0, 1, 2)


# --- symmetry ------------------------------------------------------------------------------

def symmetry_rows(zero_loss, zero_spread, control_spread=1.5, lrs=(1e-3, 1e-2)):
    rows = []
    for lr in lrs:
        for s in SEEDS:
            rows.append(run(s, zero_loss + 0.01 * s, init="zeros", lr=lr, unit_spread=zero_spread))
            rows.append(run(s, 2.3, init="normal", lr=lr, unit_spread=control_spread))
            rows.append(run(s, 2.2 + 0.01 * s, init="gpt2", lr=lr, unit_spread=1.4))
    return rows


def test_symmetry_rule():
    v = registry.get("symmetry").verdict
    assert v(symmetry_rows(3.3, 0.0)).verdict == SUPPORTED
    assert v(symmetry_rows(3.3, 0.5)).verdict == NOT_SUPPORTED      # units drifted apart
    assert v(symmetry_rows(2.25, 0.0)).verdict == NOT_SUPPORTED     # not stuck
    assert v(symmetry_rows(2.4, 0.0)).verdict == INCONCLUSIVE       # gap 0.2: between bars
    assert v(symmetry_rows(3.3, 0.0, control_spread=0.0)).verdict == INCONCLUSIVE


# --- scale-lr ------------------------------------------------------------------------------

LRS = (1e-4, 1e-3, 1e-2, 1e-1)


def scale_rows(best_index, noise=0.0):
    """Loss per (scale, lr): a valley around best_index[scale] of depth 1 nat per grid step."""
    rows = []
    for scale, b in best_index.items():
        for i, lr in enumerate(LRS):
            for s in SEEDS:
                rows.append(run(s, 2.0 + 0.3 * abs(i - b) + noise * (s - 1), init_scale=scale,
                                lr=lr))
    return rows


def test_scale_lr_rule():
    v = registry.get("scale-lr").verdict
    assert v(scale_rows({0.25: 1, 1.0: 1, 4.0: 2})).verdict == SUPPORTED
    assert v(scale_rows({0.25: 1, 1.0: 1, 4.0: 1})).verdict == NOT_SUPPORTED
    assert v(scale_rows({0.25: 3, 1.0: 3, 4.0: 3})).verdict == INCONCLUSIVE   # on the edge
    assert v(scale_rows({0.25: 1, 4.0: 2}, noise=1.0)).verdict == INCONCLUSIVE  # within noise


# --- warmup --------------------------------------------------------------------------------

def warmup_rows(post_penalty, pre_penalty, lrs=(1e-3, 1e-2, 3e-2)):
    rows = []
    for lr in lrs:
        for s in SEEDS:
            for norm, pen in (("post", post_penalty), ("pre", pre_penalty)):
                rows.append(run(s, 2.0, norm=norm, warmup_iters=100, lr=lr))
                rows.append(run(s, 2.0 + pen / 2, norm=norm, warmup_iters=20, lr=lr))
                rows.append(run(s, 2.0 + pen, norm=norm, warmup_iters=0, lr=lr))
    return rows


def test_warmup_rule():
    v = registry.get("warmup").verdict
    assert v(warmup_rows(0.8, 0.02)).verdict == SUPPORTED
    assert v(warmup_rows(math.inf, 0.02)).verdict == SUPPORTED         # no-warmup post diverged
    assert v(warmup_rows(0.05, 0.02)).verdict == NOT_SUPPORTED
    assert v(warmup_rows(0.5, 0.6)).verdict == NOT_SUPPORTED           # pre-LN needs it as much
    assert v(warmup_rows(0.5, 0.2)).verdict == INCONCLUSIVE


# --- no-norm-depth -------------------------------------------------------------------------

def depth_rows(fix_loss, baseline_loss=4.0):
    rows = []
    for depth in (6, 24):
        for lr in (1e-3, 5e-3):
            for s in SEEDS:
                for init in ("xavier_uniform", "gpt2"):
                    for norm in ("none", "post"):
                        rows.append(dict(run(s, baseline_loss, init=init, norm=norm,
                                             n_layer=depth, lr=lr), part="baselines"))
                for fix in ("t_fixup", "rezero", "deepnet", "admin"):
                    rows.append(dict(run(s, fix_loss[fix] + 0.01 * s, init=fix, n_layer=depth,
                                         lr=lr), part="fixes"))
    return rows


def test_no_norm_depth_rule():
    v = registry.get("no-norm-depth").verdict
    good = dict(t_fixup=2.5, rezero=2.6, deepnet=2.7, admin=2.8)
    assert v(depth_rows(good)).verdict == SUPPORTED
    assert v(depth_rows({k: 4.0 for k in good})).verdict == NOT_SUPPORTED
    assert v(depth_rows(dict(good, admin=4.1))).verdict == INCONCLUSIVE
    assert v(depth_rows(good, baseline_loss=math.inf)).verdict == SUPPORTED   # baselines diverge


# --- early-updates -------------------------------------------------------------------------

def early_rows(small_nowarm, small_warm, large_nowarm):
    rows = []
    for lr in (3e-3, 1e-2):
        for s in SEEDS:
            for std, w, ratio in ((0.02, 0, small_nowarm), (0.02, 50, small_warm),
                                  (0.2, 0, large_nowarm), (0.2, 50, large_nowarm / 10)):
                rows.append(run(s, 2.5, init_std=std, warmup_iters=w, lr=lr,
                                early_ratio=ratio * (1 + 0.01 * s)))
    return rows


def test_early_updates_rule():
    v = registry.get("early-updates").verdict
    assert v(early_rows(0.5, 0.01, 0.05)).verdict == SUPPORTED
    assert v(early_rows(0.5, 0.45, 0.05)).verdict == NOT_SUPPORTED     # warmup does not damp
    assert v(early_rows(0.5, 0.01, 0.45)).verdict == NOT_SUPPORTED     # size does not matter
    assert v(early_rows(0.5, 0.2, 0.05)).verdict == INCONCLUSIVE       # damping 2.5


# --- rmt -----------------------------------------------------------------------------------

def rmt_rows(init_off, trained_outside):
    return [run(s, 2.0, init=init, init_off_mp=init_off, trained_outside=trained_outside)
            for init in ("gpt2", "xavier_uniform") for s in SEEDS]


def test_rmt_rule():
    v = registry.get("rmt").verdict
    assert v(rmt_rows(0.0, 0.7)).verdict == SUPPORTED
    assert v(rmt_rows(0.3, 0.7)).verdict == NOT_SUPPORTED
    assert v(rmt_rows(0.0, 0.1)).verdict == NOT_SUPPORTED
    assert v(rmt_rows(0.0, 0.3)).verdict == INCONCLUSIVE


# --- sharp-flat ----------------------------------------------------------------------------

def sharp_rows(gaps):
    return [run(i % 2, 2.0, init="vit", lr=10 ** (-4 + (i % 4)), sharpness=float(i + 1),
                gap=g) for i, g in enumerate(gaps)]


def test_sharp_flat_rule():
    v = registry.get("sharp-flat").verdict
    assert v(sharp_rows([0.1 * i for i in range(12)])).verdict == SUPPORTED
    assert v(sharp_rows([-0.1 * i for i in range(12)])).verdict == NOT_SUPPORTED
    # rho = 0.8 but over 5 runs only: p = 0.10, not significant
    assert v(sharp_rows([0.1, 0.3, 0.2, 0.5, 0.4])).verdict == INCONCLUSIVE


# --- helpers -------------------------------------------------------------------------------

def test_diverged_runs_count_as_inf_and_are_labelled():
    rows = [run(0, 2.0), run(1, 2.2), run(2, math.inf)]
    assert [loss_of(r) for r in rows] == [2.0, 2.2, math.inf]
    assert mean_pm_std([loss_of(r) for r in rows]) == "2.100 ± 0.141 (1/3 diverged)"


@pytest.mark.parametrize("name", list(registry.STUDIES))
def test_every_study_defines_its_parts(name):
    s = registry.get(name)
    for attr in ("NAME", "CLAIM", "PAPER", "DESIGN", "RULE", "SIZES", "plan", "table", "verdict",
                 "figures"):
        assert hasattr(s, attr), attr
    assert s.NAME == name and set(s.SIZES) == {"smoke", "full"}


# --- seeds ---------------------------------------------------------------------------------

def seeds_rows(init_spread, data_spread, n=8):
    rows = []
    for k in range(n):
        z = (k - (n - 1) / 2) / n                         # centred offsets, same shape per arm
        rows.append(dict(run(0, 0.5 + init_spread * z, init_seed=k), part="init"))
        rows.append(dict(run(0, 0.5 + data_spread * z, data_seed=k), part="data"))
        rows.append(dict(run(k, 0.5 + (init_spread + data_spread) * z), part="both"))
    return rows


def test_seeds_rule():
    v = registry.get("seeds").verdict
    assert v(seeds_rows(0.02, 0.015)).verdict == SUPPORTED
    assert v(seeds_rows(0.05, 0.005)).verdict == NOT_SUPPORTED     # ratio 10, p tiny
    assert v(seeds_rows(0.05, 0.02, n=3)).verdict == INCONCLUSIVE  # ratio 2.5 on 3 runs each


# --- vit-small-data ------------------------------------------------------------------------

def small_data_rows(gain_small, loss_large):
    rows = []
    for limit in (300, 8000):
        for lr in (1e-3, 3e-3):
            for s in SEEDS:
                base = 0.80 if limit == 300 else 0.96
                rows.append(dict(run(s, 0.5, train_limit=limit, init="vit", lr=lr),
                                 val_acc=base + 0.001 * s))
                for m in ("mimetic", "structured"):
                    acc = base + (gain_small if limit == 300 else -loss_large) + 0.001 * s
                    rows.append(dict(run(s, 0.5, train_limit=limit, init=m, lr=lr), val_acc=acc))
    return rows


def test_vit_small_data_rule():
    v = registry.get("vit-small-data").verdict
    assert v(small_data_rows(0.05, 0.0)).verdict == SUPPORTED
    assert v(small_data_rows(0.0, 0.0)).verdict == NOT_SUPPORTED
    assert v(small_data_rows(0.05, 0.03)).verdict == NOT_SUPPORTED   # costs 3 points at 8,000
    assert v(small_data_rows(0.01, 0.0)).verdict == INCONCLUSIVE


# --- pretrained-init -----------------------------------------------------------------------

def pretrained_rows(gain):
    rows = [dict(run(s, 0.3, val_acc=0.97), part="pretrain") for s in SEEDS]
    for lr in (1e-3, 3e-3):
        for s in SEEDS:
            rows.append(dict(run(s, 0.8, lr=lr, val_acc=0.70 + 0.002 * s), part="scratch"))
            rows.append(dict(run(s, 0.5, lr=lr, val_acc=0.70 + gain + 0.002 * s),
                             part=f"pretrained-s{s}"))
    return rows


def test_pretrained_init_rule():
    v = registry.get("pretrained-init").verdict
    assert v(pretrained_rows(0.10)).verdict == SUPPORTED
    assert v(pretrained_rows(-0.05)).verdict == NOT_SUPPORTED
    assert v(pretrained_rows(0.01)).verdict == INCONCLUSIVE
