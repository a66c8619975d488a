"""μP's coordinate check as an inspection: does an activation's size depend on the width?

    res = coordcheck("gpt", "mup", widths=(32, 64, 128), steps=3)
    res["slopes"]["logits"]     # d log mean|x| / d log width after the last step; 0 = flat

The measurement is coord_check: the same model at several widths, one fixed random batch,
`steps` AdamW steps (weight decay 0, the scheme's LR multipliers, μP's base width = the smallest
width; each step is training/step.py's train_step without clipping, the step training makes),
and mean |x| of embed.out, every block's output and the logits at init and after each step (Yang et al. 2022, Tensor Programs V, section 5). This module adds
the verdict: for each module and step the slope of log mean|x| against log width. A slope near
0 (flat curves) is what a width-independent parametrization gives; the standard
parametrization with Adam gives logits (and, after updates, block outputs) growing about
linearly with width, a slope near 1. The verdict "flat" is about growth, the failure a
coordinate check exists to catch: every slope below FLAT. A module that shrinks with width
(negative slope) is listed apart: under μP with GPT's tied readout the logits at init scale as
C^(-1/2) (the readout multiplier 1/m on an N(0, 0.02²) table, where μP would start it at 0),
which vanishes harmlessly as the updates take over.
"""

import numpy as np

from .. import init as _init
from ..engine.gradcheck import random_batch
from ..engine.kinds import kind_named
from ..engine.optim import AdamW
from ..errors import ConfigError
from ..init import InitOptions, check_scheme
from ..init.build import build_model
from ..training.step import train_step

FLAT = 0.25          # slope below which a curve does not grow (width x4 changes it < 1.4x)


def slope(widths, values):
    """Least-squares slope of log(values) against log(widths)."""
    lw, lv = np.log(np.asarray(widths, float)), np.log(np.asarray(values, float))
    return float(np.polyfit(lw, lv, 1)[0])


def coord_check(cfgs, init, steps=3, lr=1e-2, seed=0, batch=4, opts=None):
    """For each config (the same model at different widths): mean |x| of the embedding output,
    every block's output and the logits, at init (step 0) and after each of `steps` AdamW steps
    (weight decay 0, no clipping, μP's LR multipliers when the scheme has them) on one fixed
    random batch (Yang et al. 2022, Tensor Programs V, section 5 / the mup package).
    Returns {n_embd: {step: {module: mean |x|}}}. Under μP every curve is flat in width; under
    the standard parametrization the logits (and, after updates, the blocks) grow with width."""
    opts = opts or InitOptions()
    out = {}
    for cfg in cfgs:
        cfg, _ = _init.prepare_config(cfg, init, (), opts)
        model = build_model(cfg, init=init, seed=seed, dtype="float64", **vars(opts))
        x, y = random_batch(cfg, batch, np.random.default_rng(seed + 1))   # same at every width
        opt = AdamW(model.params, lr=lr, weight_decay=0.0,
                    lr_mult=_init.lr_multipliers(cfg, init, model.params, opts))
        curves = {}
        for step in range(steps + 1):
            logits, trace = model.forward(x, trace=True)
            curves[step] = {k: float(np.mean(np.abs(v))) for k, v in trace.items()
                            if k == "embed.out" or k.endswith(".out")}
            curves[step]["logits"] = float(np.mean(np.abs(logits)))
            if step < steps:
                result = train_step(model, opt, x, y, lr, grad_clip=0.0)
                if not result.updated:      # refused: a blown-up width has no curve to show
                    raise ConfigError(f"lr {lr:g} diverges at width {cfg.n_embd}, step {step} "
                                      f"({result.reason}); choose a smaller --lr")
        out[cfg.n_embd] = curves
    return out


def model_configs(model, widths, n_layer=2, n_head=4):
    """The configs of one model at each width (everything else at the model's defaults)."""
    cls = kind_named(model).config
    widths = [int(w) for w in widths]
    if len(widths) < 2:
        raise ConfigError("a coordinate check needs at least two widths")
    if widths != sorted(set(widths)):
        raise ConfigError(f"widths must increase strictly, got {','.join(map(str, widths))}")
    for w in widths:
        if w <= 0 or w % n_head:
            raise ConfigError(f"width {w} is not a positive multiple of n_head ({n_head})")
    return [cls(n_layer=n_layer, n_head=n_head, n_embd=w) for w in widths]


def coordcheck(model="gpt", init=None, widths=(32, 64, 128), steps=3, n_layer=2, n_head=4,
               lr=1e-2, batch=4, seed=0):
    """{"widths", "steps", "modules", "values": {module: {str(step): [mean|x| per width]}},
        "slopes": {module: slope after the last step}, "max_slope", "flat" (max_slope < FLAT),
        "shrinking": [modules with slope < -FLAT]}."""
    init = check_scheme(init or kind_named(model).default_init)
    if isinstance(steps, bool) or int(steps) != steps or steps < 0:
        raise ConfigError(f"steps must be an integer >= 0, got {steps!r}")
    cfgs = model_configs(model, widths, n_layer, n_head)
    opts = InitOptions(base_width=cfgs[0].n_embd)
    raw = coord_check(cfgs, init, steps=steps, lr=lr, seed=seed, batch=batch, opts=opts)
    ws = sorted(raw)
    modules = list(raw[ws[0]][0])
    values = {mod: {s: [raw[w][s][mod] for w in ws] for s in range(steps + 1)} for mod in modules}
    slopes = {mod: slope(ws, values[mod][steps]) for mod in modules}
    worst = max(slopes.values())
    return {"model": model, "init": init, "widths": ws, "steps": steps, "lr": lr,
            "batch": batch, "n_layer": n_layer, "n_head": n_head, "modules": modules,
            "values": {m: {str(s): v for s, v in d.items()} for m, d in values.items()},
            "slopes": slopes, "max_slope": worst, "flat": worst < FLAT,
            "shrinking": [m for m, s in slopes.items() if s < -FLAT]}


def format_result(res):
    ws, steps = res["widths"], res["steps"]
    w = max(len(m) for m in res["modules"]) + 2
    lines = [f"coordinate check: {res['model']} init {res['init']}, {res['n_layer']} layers, "
             f"{res['n_head']} heads, AdamW lr {res['lr']:g}, batch {res['batch']}; "
             f"mean |activation| per width"]
    for s in range(steps + 1):
        lines.append("")
        lines.append(f"step {s}" + ("  (init)" if s == 0 else ""))
        lines.append(f"{'module':<{w}}" + "".join(f"{'C=' + str(x):>11}" for x in ws)
                     + ("   slope" if s == steps else ""))
        for m in res["modules"]:
            vals = res["values"][m][str(s)]
            tail = f"  {res['slopes'][m]:+6.2f}" if s == steps else ""
            lines.append(f"{m:<{w}}" + "".join(f"{v:11.4g}" for v in vals) + tail)
    verdict = "flat: nothing grows with width" if res["flat"] else "NOT flat: grows with width"
    lines.append("")
    lines.append(f"slope = d log mean|x| / d log width after step {steps}; largest slope "
                 f"{res['max_slope']:+.2f}: {verdict} (threshold {FLAT})"
                 + (f"; shrinking: {', '.join(res['shrinking'])}" if res["shrinking"] else ""))
    lines.append("Healthy: every slope near 0; +1 means the module grows linearly with width.")
    return "\n".join(lines)
