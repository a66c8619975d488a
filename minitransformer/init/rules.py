"""Rules: how one tensor is initialized, the standard deviation that promises, and the draw.

A scheme (schemes_*.py) says, for every parameter, which Rule it is drawn from; `sample` draws a
tensor from its Rule. Because the promise (`promised_std`) and the draw come from the same Rule
they cannot drift apart, and audit.py can put each promised std next to the measured one. The
fused attention weight gets a `QKV(q, k, v)` of three rules when Q, K and V differ (each a
logical C x C matrix). Draws are made in float64 from the explicit generator.
"""
import math
from typing import NamedTuple

import numpy as np


class Rule(NamedTuple):
    """How one tensor (or one of Q, K, V) is initialized. The promise is std * scale: the
    root-mean-square of the entries about their mean (0, or `value` for "const")."""
    dist: str              # "normal" | "trunc_normal" | "trunc_normal_tf" | "uniform" | "orthogonal" | "const" | "fitted"
    std: float             # promised std before `scale`; None = no promise ("fitted")
    formula: str = ""      # the std as a formula, printed by the audit, e.g. "0.02/sqrt(2L)"
    value: float = 0.0     # const: the value; uniform: the bound; orthogonal: the gain; trunc_normal: the absolute cut
    scale: float = 1.0     # multiplies the drawn values (T-Fixup's and DeepNet's factors, --init-scale)
    array: object = None   # values fitted (or drawn early) by the scheme itself, used as they are

    @property
    def promised_std(self):
        if self.std is None:
            return None
        if self.dist == "trunc_normal" and self.std > 0:   # N(0, std^2) cut at +-value
            return self.std * _trunc_std_factor(self.value / self.std) * self.scale
        return self.std * self.scale

    @property
    def promised_mean(self):
        return self.value * self.scale if self.dist == "const" else 0.0

    def times(self, s, why):
        """This rule with its values multiplied by s; `why` (e.g. "0.67 L^-1/4") joins the formula."""
        return self._replace(scale=self.scale * s, formula=f"{self.formula} * {why}")


def _trunc_std_factor(a):
    """std of a standard normal truncated to [-a, a] (1.0 to 16 digits for a >= 9)."""
    phi = math.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)
    return math.sqrt(1.0 - 2.0 * a * phi / math.erf(a / math.sqrt(2.0)))


class QKV(NamedTuple):
    """Separate rules for the Q, K and V column blocks of the fused (C, 3C) attention weight."""
    q: Rule
    k: Rule
    v: Rule


def normal(std, formula):
    return Rule("normal", float(std), formula)


def trunc_normal_rule(std, formula, cut=2.0):
    """timm's trunc_normal_(std, a=-cut, b=cut): the cut is absolute (at std 0.02, 100 std)."""
    return Rule("trunc_normal", float(std), formula, cut)


def uniform(bound, formula):
    return Rule("uniform", bound / math.sqrt(3.0), formula, float(bound))   # std of U(-b, b) = b/sqrt(3)


def orthogonal_rule(gain, rows, cols):
    """A (semi-)orthogonal rows x cols matrix times gain: every entry's mean square is
    gain^2 / max(rows, cols), exactly."""
    return Rule("orthogonal", gain / math.sqrt(max(rows, cols)), "gain/sqrt(max(fan_in, fan_out))",
                float(gain))


def const(value):
    return Rule("const", 0.0, f"= {value:g}", float(value))


def fitted(array, formula, std=None):
    """Values the scheme computed itself (an SVD factor, an optimized map); std is the promise
    when the fit has one (e.g. a fixed column norm), else None."""
    return Rule("fitted", std, formula, array=np.asarray(array, dtype=np.float64))


def pre_drawn(rule, array):
    """A rule whose sample the scheme already drew (because it needed the values, e.g.
    pos_embed for the structured fit); the promise is still the rule's."""
    return rule._replace(array=np.asarray(array, dtype=np.float64))


# --------------------------------------------------------------------------------------------
# Sampling.

def trunc_normal(rng, shape, std, a=-2.0, b=2.0):
    """timm's trunc_normal_: N(0, std^2) resampled outside the absolute bounds [a, b]."""
    x = rng.normal(0.0, std, shape)
    bad = (x < a) | (x > b)
    while bad.any():
        x[bad] = rng.normal(0.0, std, int(bad.sum()))
        bad = (x < a) | (x > b)
    return x


TRUNC2_STD = 0.87962566103423978   # std of a standard normal truncated to [-2, 2] (_trunc_std_factor(2))


def trunc_normal_tf(rng, shape, std):
    """TensorFlow / JAX truncated normal (timm's lecun_normal_): a standard normal truncated to
    [-2, 2], divided by its own std 0.8796 and multiplied by std, so the std is exactly std."""
    return trunc_normal(rng, shape, 1.0) * (std / TRUNC2_STD)


def orthogonal(rng, rows, cols, gain=1.0):
    """Saxe et al. 2014 (as torch.nn.init.orthogonal_): QR of a Gaussian; multiplying Q's columns
    by the signs of diag(R) makes the result uniformly distributed over orthogonal matrices."""
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)                             # q: (max, min), orthonormal columns
    q *= np.sign(np.diag(r))
    return gain * (q if rows >= cols else q.T)         # (rows, cols)


def sample(rule, shape, rng):
    """Draw one tensor of `shape` from `rule` (float64)."""
    if isinstance(rule, QKV):                          # three C x C blocks side by side
        C = shape[1] // 3
        return np.concatenate([sample(r, (shape[0], C), rng) for r in rule], axis=1)
    if rule.array is not None:
        x = np.array(rule.array, dtype=np.float64)
        if x.shape != tuple(shape):
            raise ValueError(f"a fitted array has shape {x.shape}, the tensor {tuple(shape)}")
    elif rule.dist == "normal":
        x = rng.normal(0.0, rule.std, shape)
    elif rule.dist == "trunc_normal":
        x = trunc_normal(rng, shape, rule.std, -rule.value, rule.value)
    elif rule.dist == "trunc_normal_tf":
        x = trunc_normal_tf(rng, shape, rule.std)
    elif rule.dist == "uniform":
        x = rng.uniform(-rule.value, rule.value, shape)
    elif rule.dist == "orthogonal":
        x = orthogonal(rng, shape[0], shape[1], rule.value)
    elif rule.dist == "const":
        x = np.full(shape, rule.value)
    else:
        raise ValueError(f"rule {rule.dist!r} has no array to use")
    return x * rule.scale if rule.scale != 1.0 else x


def xavier_uniform_rule(fan_in, fan_out):
    """U(+-sqrt(6/(fan_in+fan_out))): std sqrt(2/(fan_in+fan_out)). A gain is a .times(gain, ...)."""
    return uniform(math.sqrt(6.0 / (fan_in + fan_out)), "sqrt(2/(fan_in+fan_out))")


def xavier_normal_rule(fan_in, fan_out):
    return normal(math.sqrt(2.0 / (fan_in + fan_out)), "sqrt(2/(fan_in+fan_out))")
