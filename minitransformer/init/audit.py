"""The init audit: what each scheme promised for every tensor, and what was drawn.

    rows = audit(cfg, "t_fixup", seed=0)           # prepare_config + plan + draw, then measure
    print(format_audit(rows))

For every tensor (and for Q, K, V apart when their promises differ) a row holds its shape, the
fans of the logical matrix, the rule (distribution and the std formula), the promised std, the
measured std and whether the two agree within sampling error.

"Measured std" is the root-mean-square of the entries about the promised mean (0, or the
constant): for a zero-mean rule that is the quantity the promise is about, and a wrong mean
shows up in it too. Sampling error: for n i.i.d. draws the sample rms has relative standard
deviation sqrt((kurtosis - 1) / (4n)), sqrt(1/(2n)) for a normal (a uniform's is smaller, so the
normal's is a safe bound); a row is flagged when it is off by more than Z_TOL of those. Orthogonal
matrices and norm-constrained fits have an exact rms, and constants must be exact; for those the
tolerance is only float32 rounding. Truncation is part of the promise: a normal cut at +-a has
the std of the truncated distribution (init.Rule.promised_std).

μP's coordinate check, which trains a few steps, lives in analysis/coordcheck.py.
"""
import math
from typing import NamedTuple

import numpy as np

from .. import init as _init
from ..engine.kinds import kind_named, kind_of
from ..engine.names import fans, role
from ..errors import ConfigError

Z_TOL = 4.0          # flag beyond 4 standard errors: ~6e-5 false alarms per tensor
EXACT_TOL = 1e-5     # relative, for rules whose rms is exact (float32 rounding is ~6e-8)


class AuditRow(NamedTuple):
    name: str              # parameter name; "name[q]" etc. for a block of the fused qkv
    shape: tuple           # shape of the tensor or block
    fan_in: int            # of the logical matrix; None for vectors
    fan_out: int
    dist: str              # normal, uniform, trunc_normal, trunc_normal_tf, orthogonal, const, fitted
    formula: str           # the promised std as a formula
    promised: float        # promised std (rms about the promised mean); None = no promise
    mean: float            # promised mean
    measured: float        # rms about the promised mean
    tol: float             # relative tolerance; None when nothing is promised
    ok: bool               # None when nothing is promised

    @property
    def ratio(self):
        if self.promised is None:
            return None
        if self.promised == 0:
            return 1.0 if self.measured == 0 else math.inf
        return self.measured / self.promised


def _tolerance(rule, n):
    if rule.dist in ("orthogonal", "const", "fitted"):
        return EXACT_TOL
    return Z_TOL * math.sqrt(1.0 / (2.0 * n)) + EXACT_TOL


def check(rule, values):
    """(promised std, promised mean, measured rms about that mean, relative tol, ok) of one rule
    against the values drawn for it."""
    promised, mean = rule.promised_std, rule.promised_mean
    x = np.asarray(values, dtype=np.float64).ravel()
    measured = float(np.sqrt(np.mean((x - mean) ** 2))) if x.size else 0.0
    if promised is None:
        return None, mean, float(np.sqrt(np.mean(x * x))), None, None
    tol = _tolerance(rule, x.size)
    if promised == 0:
        ok = measured <= EXACT_TOL * max(abs(mean), 1.0)
    else:
        ok = abs(measured / promised - 1.0) <= tol
    return promised, mean, measured, tol, bool(ok)


def _same_promise(rules):
    first = rules[0]
    return all((r.dist, r.promised_std, r.promised_mean, r.formula) ==
               (first.dist, first.promised_std, first.promised_mean, first.formula) for r in rules)


def audit_params(params, rules):
    """One AuditRow per tensor, and one per Q, K, V block of a fused qkv whose rules differ."""
    rows = []
    for name, p in params.items():
        rule = rules[name]
        fi, fo = fans(name, p.shape)
        if isinstance(rule, _init.QKV) and not _same_promise(list(rule)):
            C = p.shape[1] // 3
            for j, (part, r) in enumerate(zip("qkv", rule)):
                block = p[:, j * C:(j + 1) * C]
                rows.append(AuditRow(f"{name}[{part}]", block.shape, fi, fo, r.dist, r.formula,
                                     *check(r, block)))
            continue
        r = rule.q if isinstance(rule, _init.QKV) else rule
        rows.append(AuditRow(name, p.shape, fi, fo, r.dist, r.formula, *check(r, p)))
    return rows


def audit(cfg, init, seed=0, opts=None, dtype="float64", explicit=()):
    """Prepare cfg for `init` (prepare_config), draw the model's parameters exactly as
    build_model(cfg, init, seed, dtype) would, and audit them. Returns (cfg, rows, warnings)."""
    opts = opts or _init.InitOptions()
    cfg, warnings = _init.prepare_config(cfg, init, explicit, opts)
    shapes = kind_of(cfg).param_shapes(cfg)
    rng = np.random.default_rng(seed)
    rules = _init.plan(cfg, shapes, init, rng, opts)
    params = _init.draw(rules, shapes, rng)
    params = {k: np.ascontiguousarray(v, dtype=dtype) for k, v in params.items()}
    return cfg, audit_params(params, rules), warnings


def _fmt(x):
    return "-" if x is None else f"{x:.4g}"


def format_audit(rows, title=None):
    """The audit as a text table; flagged rows end in 'MISMATCH'."""
    lines = [title] if title else []
    w = max([len(r.name) for r in rows] + [6])
    f = max([len(f"{r.dist} {r.formula}") for r in rows] + [4])
    f = min(f, 60)
    lines.append(f"{'tensor':<{w}}  {'shape':<12} {'fan_in':>6} {'fan_out':>7}  {'rule':<{f}}  "
                 f"{'promised':>9} {'measured':>9} {'ratio':>6}  check")
    for r in rows:
        rule = f"{r.dist} {r.formula}"
        if len(rule) > f:
            rule = rule[: f - 3] + "..."
        verdict = "-" if r.ok is None else ("ok" if r.ok else "MISMATCH")
        ratio = "-" if r.ratio is None else f"{r.ratio:.3f}"
        lines.append(f"{r.name:<{w}}  {str(r.shape):<12} {_fmt(r.fan_in):>6} {_fmt(r.fan_out):>7}  "
                     f"{rule:<{f}}  {_fmt(r.promised):>9} {r.measured:>9.4g} {ratio:>6}  {verdict}")
    bad = [r for r in rows if r.ok is False]
    checked = sum(r.ok is not None for r in rows)
    lines.append(f"{checked - len(bad)} of {checked} promises hold"
                 + (f"; {len(bad)} MISMATCH" if bad else "")
                 + (f" ({len(rows) - checked} fitted tensor(s) without a std promise)"
                    if checked < len(rows) else ""))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# What `python cli.py inits` prints.

def list_schemes():
    """Every scheme with its one-line formula and reference."""
    w = max(len(n) for n in _init.SCHEMES)
    lines = []
    for name, s in _init.SCHEMES.items():
        lines.append(f"{name:<{w}}  {s.formula}")
        lines.append(f"{'':<{w}}  {s.reference}")
    return "\n".join(lines)


def show(model, init, fields, seed=0, opts=None):
    """The audit of scheme `init` on a `model` ("gpt" or "vit") whose config differs from the
    defaults by `fields` (these count as set by the user: prepare_config keeps them and warns).
    Returns (text, number of broken promises)."""
    cls = kind_named(model).config
    _init.check_scheme(init)
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ConfigError(f"{', '.join(unknown)} do(es) not apply to a {model} model")
    cfg, rows, warnings = audit(cls(**fields), init, seed=seed, opts=opts, explicit=tuple(fields))
    s = _init.SCHEMES[init]
    title = [f"init {init}: {s.formula}", f"  {s.reference}",
             "  model: " + ", ".join(f"{k}={v}" for k, v in cfg.to_dict().items()),
             f"  seed {seed}; promised and measured std are the rms about the promised mean; a row "
             f"is flagged beyond {Z_TOL:g} standard errors"]
    shapes = {r.name.split("[")[0]: r.shape for r in rows}
    mult = _init.lr_multipliers(cfg, init, shapes, opts)
    if mult:
        groups = {}
        for name, m in mult.items():
            groups.setdefault(m, []).append(role(name))
        title.append("  Adam LR multipliers: " + "; ".join(
            f"x{m:g} for {', '.join(sorted(set(roles)))}" for m, roles in sorted(groups.items())))
    text = "\n".join([f"warning: {w}" for w in warnings] + title + ["", format_audit(rows)])
    return text, sum(r.ok is False for r in rows)
