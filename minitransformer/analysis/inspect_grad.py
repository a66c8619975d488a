"""One gradient element, from every side: `python cli.py inspect grad RUN --param NAME --index i,j`.

    res = inspect_grad(snap, "h.1.attn.c_attn.weight", (3, 17), seed=0)

For the element w = params[NAME][i, j] on one seeded training batch:
    value        w (as stored: float32 for a float32 run)
    grad         ∂L/∂w from the hand-written backward, in float64 (and grad_run_dtype: the same
                 in the run's own dtype, what training saw)
    numerical    (L(w + ε) − L(w − ε)) / 2ε in float64, ε = 1e-4 (gradcheck.numerical_grad)
    rel_error    |grad − numerical| / (|grad| + |numerical|)
    rounding     the difference quotient's rounding floor, ~1e-16·L/ε, relative to |grad|: a
                 tiny gradient (GPT-2's Q and K at init are ~1e-6) cannot be checked more
                 closely than that, whatever the backward does
    adam         from the checkpoint: m, v, t, m̂ = m/(1 − β1^t), v̂ = v/(1 − β2^t), and the last
                 Adam step lr_eff·m̂/(√v̂ + ε) with lr_eff = lr(t − 1) × the tensor's LR multiplier
                 (the update also shrank w by lr_eff·wd·w when weight decay applies)
For a fresh model (--init) there is no optimizer state and "adam" is null.
"""
import numpy as np

from ..engine.gradcheck import numerical_grad
from ..engine.optim import ADAM_EPS, adam_bias_corrected, adam_update
from ..errors import ConfigError

EPS = 1e-4          # float64: truncation O(ε²) ~ 1e-8 of the curvature, rounding ~1e-12 of L


def parse_index(text):
    """"3,17" -> (3, 17); one clear ValueError otherwise."""
    try:
        return tuple(int(t) for t in str(text).replace(" ", "").split(","))
    except ValueError:
        raise ConfigError(f"--index must be integers separated by commas (e.g. 3,17), "
                         f"got {text!r}") from None


def check_element(params, name, index):
    """The flat position of params[name][index]; ValueError for an unknown name or a bad index."""
    if name not in params:
        close = [n for n in params if name.split(".")[-1] in n][:4]
        hint = f" (e.g. {', '.join(close)})" if close else f" ({len(params)} parameters)"
        raise ConfigError(f"unknown parameter {name!r}; names are as in docs/design.md#parameter-names"
                         + hint)
    shape = params[name].shape
    if len(index) != len(shape):
        raise ConfigError(f"{name} has shape {shape}: --index needs {len(shape)} integer(s), "
                         f"got {len(index)}")
    for k, (i, n) in enumerate(zip(index, shape)):
        if not 0 <= i < n:
            raise ConfigError(f"index {','.join(map(str, index))} is out of range for {name} "
                             f"with shape {shape} (axis {k} has {n} entries)")
    return int(np.ravel_multi_index(index, shape))


def inspect_grad(snap, name, index, seed=0, batch_size=None, eps=EPS):
    """The element's value, analytic and numerical gradient and Adam state (module docstring)."""
    index = tuple(index)
    flat = check_element(snap.model.params, name, index)
    x, y = snap.batch(seed=seed, batch_size=batch_size)
    model = snap.model
    m64 = snap.model_as("float64")
    loss64, grads64 = m64.loss_and_grads(x, y)
    g = float(grads64[name].reshape(-1)[flat])
    if not (eps > 0 and np.isfinite(eps)):
        raise ConfigError(f"eps must be positive, got {eps!r}")
    num = float(numerical_grad(lambda: m64.loss(x, y), m64.params[name], eps, [flat])[0])
    finite = bool(np.isfinite(g) and np.isfinite(num))
    denom = abs(g) + abs(num)
    floor = 1e-16 * abs(float(loss64)) / eps
    out = dict(snap.describe(), param=name, index=list(index), shape=list(model.params[name].shape),
               batch_size=int(len(x)), batch_seed=seed, loss=float(loss64),
               value=float(model.params[name].reshape(-1)[flat]), grad=g, numerical=num,
               eps=eps, finite=finite,
               rel_error=None if not finite else abs(g - num) / denom if denom > 0 else 0.0,
               rounding=floor / abs(g) if finite and g != 0 else None)
    dtype = model.params[name].dtype
    if dtype != np.float64:
        _, grads = model.loss_and_grads(x, y)
        out["grad_run_dtype"] = float(grads[name].reshape(-1)[flat])
        out["run_dtype"] = str(dtype)
    out["adam"] = _adam(snap, name, flat)
    return out


def _adam(snap, name, flat):
    state = snap.adam_state()
    if state is None or name not in state[0]:
        return None
    m, v, t = state
    cfg = snap.cfg
    mi, vi = float(m[name].reshape(-1)[flat]), float(v[name].reshape(-1)[flat])
    res = {"m": mi, "v": vi, "t": t}
    if t >= 1:
        mhat, vhat = adam_bias_corrected(mi, vi, t, cfg.beta1, cfg.beta2)
        lr_eff = float(cfg.lr_at(t - 1)) * snap.lr_mult()[name]
        res.update(m_hat=mhat, v_hat=vhat, lr=lr_eff, eps=ADAM_EPS,
                   last_step=-float(adam_update(mi, vi, t, lr_eff, cfg.beta1, cfg.beta2)),
                   weight_decay=cfg.weight_decay if snap.model.params[name].ndim >= 2 else 0.0)
    return res


def format_result(r):
    idx = ",".join(map(str, r["index"]))
    lines = [f"{r['param']}[{idx}]  (shape {tuple(r['shape'])}) of {r['source']}, step {r['step']}",
             f"batch: {r['batch_size']} examples drawn with seed {r['batch_seed']}; loss "
             f"{r['loss']:.6f}",
             f"  value                {r['value']: .8e}",
             f"  gradient (analytic)  {r['grad']: .8e}   float64",
             f"  gradient (numerical) {r['numerical']: .8e}   central difference, eps {r['eps']:g}",
             (f"  relative error       {r['rel_error']:.2e}"
              + (f"   (rounding floor {r['rounding']:.0e} for a gradient this small)"
                 if r["rounding"] is not None and r["rounding"] > 1e-8 else ""))
             if r["finite"] else "  relative error       NOT FINITE: a gradient is inf or NaN, "
                                 "nothing to compare"]
    if "grad_run_dtype" in r:
        lines.append(f"  gradient ({r['run_dtype']})    {r['grad_run_dtype']: .8e}   as training "
                     f"computes it")
    a = r["adam"]
    if a is None:
        lines.append("  Adam state           none (fresh model or not AdamW)")
    else:
        lines.append(f"  Adam m, v            {a['m']: .6e}, {a['v']:.6e}   (t = {a['t']})")
        if "m_hat" in a:
            lines.append(f"  Adam m_hat, v_hat    {a['m_hat']: .6e}, {a['v_hat']:.6e}")
            lines.append(f"  last Adam step       {a['last_step']: .6e}   = -lr*m_hat/(sqrt(v_hat)"
                         f"+eps), lr {a['lr']:.3e}; |step|/|value| "
                         f"{abs(a['last_step']) / max(abs(r['value']), 1e-30):.2e}")
    lines.append("Healthy: relative error below ~1e-6 or at the rounding floor; |Adam step| about "
                 "lr per element.")
    return "\n".join(lines)
