"""Training telemetry: what each update did to every tensor, and what the activations look like.

train.run calls it every log_interval steps (--telemetry, on by default), around the update:

    trace = {}                                                # the step's own forward fills it
    loss, grads = model.loss_and_grads(x, y, trace=trace)
    grad_norm = clip_grad_norm(grads, cfg.grad_clip)          # global norm BEFORE clipping
    before = telemetry.copy_params(model.params)              # only on logged steps
    opt.step(model.params, grads, lr)
    rec = telemetry.step_record(step, lr, grad_norm, cfg.grad_clip, before, model, grads, opt, x,
                                trace=trace)
    runfolder.append_jsonl(files.telemetry, rec)              # the writing: training/runfolder.py

One record (one line of telemetry.jsonl; every number a plain float, null where undefined):

    {"step": 120, "lr": 0.00098, "grad_norm": 0.83, "clipped": false, "grad_clip": 1.0,
     "embed_rms": 0.031,
     "tensors": {"h.0.attn.c_attn.weight": {"grad_norm": ..., "weight_norm": ...,
                                             "update_norm": ..., "update_ratio": ...,
                                             "adam_step_mean": ..., "adam_step_max": ...}, ...},
     "layers": [{"resid_rms": ..., "attn_entropy": ..., "attn_entropy_uniform": ...,
                 "max_attn_logit": ...}, ...]}                       # one entry per block

Per tensor (Kosson et al. 2024 for the update ratio):
    grad_norm      ‖g‖ of this tensor's gradient BEFORE global clipping. The loop clips in place
                   before the step, so it is recovered from the clipped gradient as ‖g_clipped‖/coef
                   with coef = grad_clip/(grad_norm + 1e-6), clip_grad_norm's own factor.
    weight_norm    ‖W‖ after the update (Frobenius).
    update_norm    ‖ΔW‖ = ‖W_after − W_before‖: everything the step did, weight decay included.
    update_ratio   ‖ΔW‖/‖W_before‖ (null when W_before = 0, e.g. ReZero gates and muP's W_q at
                   step 0). Healthy: about 1e-3 per step for weight matrices; early steps far above
                   that are what warmup prevents.
    adam_step_*    AdamW's normalized step u = lr_eff·m̂/(√v̂ + ε) (m̂, v̂ bias-corrected with the
                   step count t after this update, lr_eff = lr × the tensor's LR multiplier):
                   mean |u| and max |u|. Adam's step is about lr_eff per element whatever the
                   gradient's size, which is why tiny initial weights see huge relative updates.
                   Absent for SGD.
Per block i, from the forward of this step (the parameters before the update) on its batch x;
without a trace, from one extra traced forward of the current parameters:
    resid_rms       √mean(h_i²) of the residual stream after block i (h.{i}.out / blocks.{i}.out)
    attn_entropy    −Σ_j p_ij ln p_ij, in nats, averaged over batch, heads and query rows
    attn_entropy_uniform   the same for uniform attention (ln of the number of visible keys,
                    averaged over rows): the ceiling; entropy collapse is attn_entropy → 0
    max_attn_logit  the largest (scaled) attention score of the block; logit growth precedes
                    entropy collapse
embed_rms is the RMS of the embedding output (embed.out).

Cost: with the step's own trace a record needs no extra forward; train.run measures it and
writes telemetry_ms_per_record and telemetry_overhead (record time / step time, summed over the
run) into summary.json. README's "Inspection" section states the numbers.

For a run trained without telemetry, analysis/replay.py's record_run(run_dir) replays it and
writes these records.
"""
import math

import numpy as np
from numba import njit

from ..engine.kinds import kind_of
from ..engine.names import block_prefix
from ..engine.optim import adam_update


def copy_params(params):
    """A copy of every parameter: the 'before' of an update (about 3 MB for the nanoGPT config)."""
    return {name: p.copy() for name, p in params.items()}


def _norm(a):
    a = a.reshape(-1)
    return math.sqrt(float(np.dot(a, a)))


def _clip_coef(grad_norm, grad_clip):
    """clip_grad_norm's factor (1 when it did not clip)."""
    if not grad_clip or grad_clip <= 0 or not math.isfinite(grad_norm):
        return 1.0
    coef = grad_clip / (grad_norm + 1e-6)
    return coef if coef < 1.0 else 1.0


def adam_steps(opt, name, lr):
    """|u| = lr_eff·|m̂|/(√v̂ + ε) of the last AdamW update of tensor `name` (flat float array),
    or None when opt is not an AdamW that has stepped."""
    if not hasattr(opt, "m") or not hasattr(opt, "v") or opt.t < 1:
        return None
    lr_eff = lr * opt.lr_mult[name]
    return np.abs(adam_update(opt.m[name], opt.v[name], float(opt.t), lr_eff, opt.beta1,
                              opt.beta2, opt.eps))


def tensor_stats(params_before, params_after, grads, opt=None, lr=None, clip_coef=1.0):
    """{name: {grad_norm, weight_norm, update_norm, update_ratio[, adam_step_mean, adam_step_max]}}.
    grads are the gradients the optimizer used; clip_coef the factor clipping multiplied them by
    (grad_norm is reported before clipping: ‖g‖/clip_coef)."""
    out = {}
    for name, w in params_after.items():
        w0 = params_before[name]
        w_norm0 = _norm(w0)
        d_norm = _norm(w.astype(np.float64) - w0)
        s = {"grad_norm": _norm(grads[name]) / clip_coef,
             "weight_norm": _norm(w),
             "update_norm": d_norm,
             "update_ratio": d_norm / w_norm0 if w_norm0 > 0 else None}
        if opt is not None and lr is not None:
            u = adam_steps(opt, name, lr)
            if u is not None:
                s["adam_step_mean"] = float(u.mean())
                s["adam_step_max"] = float(u.max())
        out[name] = s
    return out


def attention_entropy(probs, scores):
    """Mean over (B, NH, rows) of −Σ_j p ln p, in nats (0·ln 0 = 0). probs (B, NH, T, T), scores
    the scaled pre-softmax scores they came from (-inf where masked)."""
    T = probs.shape[-1]
    return _mean_row_entropy(np.ascontiguousarray(probs).reshape(-1, T),
                             np.ascontiguousarray(scores).reshape(-1, T))


@njit(cache=True)
def _mean_row_entropy(p, s):
    """Per row, ln p_j = s_j − lse with lse = s_k − ln p_k for the row's largest score k, so
    −Σ p ln p = s_k − ln p_k − Σ_j p_j s_j: one log per row instead of one per key (at the GPU
    shape 3 million logs per block made telemetry cost a third of a step). Keys with p_j = 0
    (masked, or underflowed) add nothing, as 0·ln 0 = 0. float64 accumulation."""
    R, T = p.shape
    total = 0.0
    for r in range(R):
        k = 0
        for j in range(1, T):
            if s[r, j] > s[r, k]:
                k = j
        dot = 0.0
        for j in range(T):
            if p[r, j] > 0:
                dot += float(p[r, j]) * float(s[r, j])
        total += float(s[r, k]) - math.log(float(p[r, k])) - dot
    return total / R


def uniform_entropy(scores):
    """The entropy of uniform attention over the keys each row may see: mean of ln(#finite)."""
    visible = np.isfinite(scores[0, 0]).sum(axis=-1)   # (T,) keys per query row
    return float(np.mean(np.log(visible)))


def activation_stats(model, x, trace=None):
    """Per block: resid_rms, attn_entropy, attn_entropy_uniform, max_attn_logit (see the module
    docstring), from one traced forward of model on x (or from `trace`, the intermediates the
    training step's own forward collected: then no extra forward); and embed_rms.
    Returns (embed_rms, list)."""
    if trace is None:
        _, trace = model.forward(x, trace=True)
    names = kind_of(model).names
    layers = []
    for i in range(model.cfg.n_layer):
        pre = block_prefix(names, i)
        out = trace[pre + "out"]
        scores = trace[pre + "attn.scores"]
        layers.append({
            "resid_rms": math.sqrt(float(np.mean(np.square(out, dtype=np.float64)))),
            "attn_entropy": attention_entropy(trace[pre + "attn.probs"], scores),
            "attn_entropy_uniform": uniform_entropy(scores),
            "max_attn_logit": float(scores.max()),     # masked entries are -inf, never the max
        })
    embed_rms = math.sqrt(float(np.mean(np.square(trace["embed.out"], dtype=np.float64))))
    return embed_rms, layers


def step_record(step, lr, grad_norm, grad_clip, params_before, model, grads, opt, x,
                activations=True, trace=None):
    """The telemetry.jsonl record of one update (see the module docstring). Call it right after
    opt.step(model.params, grads, lr); grad_norm is what clip_grad_norm returned, grad_clip the
    max norm it was given (0 = off), x the batch of this step."""
    coef = _clip_coef(grad_norm, grad_clip)
    rec = {"step": int(step), "lr": float(lr), "grad_norm": _finite(grad_norm),
           "clipped": bool(coef < 1.0), "grad_clip": float(grad_clip or 0.0)}
    if activations:
        rec["embed_rms"], rec["layers"] = activation_stats(model, x, trace)
    rec["tensors"] = tensor_stats(params_before, model.params, grads, opt, lr, coef)
    return json_safe(rec)


def _finite(v):
    v = float(v)
    return v if math.isfinite(v) else None


def json_safe(obj):
    """Non-finite floats -> None, so the record is strict JSON (as metrics.jsonl)."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    return obj
