"""Replay a run folder to record the telemetry it was trained without.

    summary = record_run("runs/gpt-...", every=10, sharpness_every=100)

Training is deterministic (the batches come from their own stream, evaluation from another), so
re-running the updates from the initial weights (or from the saved state of a --start-from
run, with its masks: a lottery branch) with the training loop's own step
(training/step.py) reproduces the run bit for bit while recording telemetry.jsonl
(measure/telemetry.py's records) and, with sharpness_every, sharpness.jsonl. The parameters at
the checkpoint's step must come out identical to the checkpoint's, which checks that the replay
is the run.
"""
import time
from pathlib import Path

import numpy as np

from .snapshot import load_snapshot
from ..errors import ConfigError, RunFolderError
from ..measure.telemetry import step_record
from ..training.build import (get_batch, make_optimizer, make_streams, sharpness_batch,
                              sharpness_line)
from ..training.masks import apply_masks, mask_optimizer_state, run_masks, sparsity
from ..training.checkpoint import restore_checkpoint
from ..training.runfolder import append_jsonl, claim_folder, read_json, run_files
from ..training.shards import Shards
from ..training.step import train_step


def record_run(run_dir, every=10, sharpness_every=0, activations=True, progress=None):
    """Replay the run in run_dir from its initial weights, writing telemetry.jsonl every `every`
    steps (and sharpness.jsonl every `sharpness_every` steps, 0 = never, on the probe batch and
    by the method `train --sharpness-every` uses, so a run trained with it gets the same lines
    back, bit for bit). The replay repeats train.run's updates exactly (same
    batches, clipping, learning rates) without its evaluations, which draw from their own
    stream; the parameters at the checkpoint's step must come out bit-identical, or a
    ValueError says the replay does not match. Returns a summary with the measured cost."""
    if isinstance(every, bool) or int(every) != every or every < 1:
        raise ConfigError(f"every must be a positive integer, got {every!r}")
    run_dir = Path(run_dir)
    snap = load_snapshot(run_dir)
    cfg = snap.cfg
    files = run_files(run_dir)
    summary = read_json(files.summary, keys=("status",)) if files.summary.is_file() else {}
    end = summary.get("diverged_step", snap.step) if summary.get("status") == "diverged" \
        else snap.step                                 # updates made: steps 0 .. end-1
    if isinstance(end, bool) or not isinstance(end, int) or end < 0:
        raise RunFolderError(f"{files.summary}: diverged_step is {end!r}, expected a step "
                             f"number")
    model = snap.init_model()
    params = model.params
    opt = make_optimizer(cfg, model.cfg, params)
    streams = make_streams(cfg.data_seed)
    start = 0                                          # a run that went on from a saved state
    if cfg.start_from is not None:                     # (a lottery branch) starts where it did
        start = restore_checkpoint(Path(cfg.start_from), params, opt, streams, {})
    masks = run_masks(cfg, run_dir, params, resume=True)
    if masks is not None:
        apply_masks(params, masks)
        mask_optimizer_state(opt, masks)
    data = snap.data()
    probe = sharpness_batch(cfg, data) if sharpness_every else None
    tel_path, sh_path = files.telemetry, files.sharpness
    lock, _ = claim_folder(run_dir, new=False)         # one writer: not while it trains
    shards = Shards(cfg.shards or 1)                   # as it trained (none recorded: one)
    try:
        tel_path.write_text("")
        if sharpness_every:
            sh_path.write_text("")
        t_step, t_tel, checked = [], [], False
        for step in range(start, end):
            t0 = time.perf_counter()
            x, y = get_batch(cfg, data, "train", streams["data"])
            logged = step % every == 0
            trace = {} if logged and activations else None
            res = train_step(model, opt, x, y, cfg.lr_at(step), cfg.grad_clip, trace=trace,
                             keep_before=logged, masks=masks, shards=shards)   # as training does
            t1 = time.perf_counter()
            if logged:
                rec = step_record(step, res.lr, res.grad_norm, cfg.grad_clip, res.before, model,
                                  res.grads, opt, x, activations, trace)
                rec["loss"] = res.loss
                if masks is not None:
                    rec["sparsity"] = sparsity(masks)
                append_jsonl(tel_path, rec)
                t_tel.append(time.perf_counter() - t1)
            t_step.append(t1 - t0)
            if sharpness_every and step % sharpness_every == 0:
                append_jsonl(sh_path, sharpness_line(cfg, model, probe, step, res.lr, opt))
            if step + 1 == snap.step:                      # the checkpoint's parameters
                bad = [n for n, p in params.items() if not np.array_equal(p, snap.model.params[n])]
                if bad:
                    raise ConfigError(f"the replay of {run_dir} does not reproduce its checkpoint "
                                     f"({len(bad)} tensors differ, e.g. {bad[0]}): was it trained "
                                     f"by another version of the training loop?")
                checked = True
            if progress and step % 50 == 0:
                progress(f"replay step {step}/{end}")
    finally:
        shards.close()
        lock.release()
    ms_step = 1e3 * float(np.median(t_step)) if t_step else None
    ms_tel = 1e3 * float(np.median(t_tel)) if t_tel else None
    return {"run": str(run_dir), "steps": len(t_step), "records": len(t_tel), "every": every,
            "checked_against_checkpoint": checked,
            "telemetry": str(tel_path), "sharpness": str(sh_path) if sharpness_every else None,
            "ms_per_step": ms_step, "ms_per_record": ms_tel,
            "overhead": (ms_tel / every / ms_step) if ms_step and ms_tel else None}
