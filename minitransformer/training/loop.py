"""The training loop: setup, steps, evaluations, checkpoints, the end of a run, resume.

    from minitransformer.training.config import TrainConfig
    from minitransformer.training.loop import run
    summary = run(TrainConfig(max_iters=200), "runs/demo")   # nanoGPT's CPU Shakespeare otherwise

One iteration, for step k = 0, 1, ..., max_iters - 1 (k = updates made so far, nanoGPT's iter_num):
    1. if k % eval_interval == 0: evaluate the current parameters (train and val loss)
    2. draw batch k from the data stream and make one training step (training/step.py): loss and
       gradients, clip the global gradient norm, update with lr = get_lr(k, ...) (step 0 gets
       lr / (warmup_iters + 1), never 0: engine/optim.py)
    3. log step k (its loss and lr) to metrics.jsonl; every checkpoint_interval updates, checkpoint
After the loop: checkpoint, final evaluation (logged as step = max_iters), and a text sample (GPT)
or the validation accuracy (ViT). The run's random streams are described in training/build.py,
its files in training/runfolder.py.

Resume: a checkpoint at step s is written after update s, before the evaluation of step s, and
after metrics.jsonl holds the lines of steps < s. Resuming loads it, drops the lines of steps >= s
(a killed process may have written some), and carries on; since every random draw comes from a
restored generator, the rest is the same computation, bit for bit. A new run writes a checkpoint
at step 0, so even a run that diverges before its first interval has weights to inspect, and the
final checkpoint is written before the final evaluation.

The parts of `run`, in order: setup (everything checked and built, nothing written: data,
memory estimate, data hash), claim (the folder's lock: one writer at a time), open_folder
(config.json and the step-0 checkpoint, or the logs cut back to the checkpoint), the steps
(one_step, with evaluate_now and checkpoint; a signal stops them at a step boundary), finish
(final evaluation, sample, summary.json). A Run object carries the state from part to part.

Promises (README, Reliability): a new run that fails before it is usable leaves no folder
behind; a finished run (summary.json written) is never changed by --resume, unless extend=True
trains it on to a larger max_iters; a resume refuses data whose hash differs from the one
recorded, unless allow_data_change=True.
"""
from dataclasses import asdict, replace
from pathlib import Path
import math
import shlex
import time

import numpy as np

from .. import __version__
from ..engine.generate import generate
from ..errors import CheckpointError, NotFound, RunFolderError
from ..measure import telemetry
from .build import (resolve_data, data_path, model_config, make_model, make_optimizer,
                    make_streams, sharpness_batch, sharpness_line, get_batch)
from .checkpoint import save_checkpoint, restore_checkpoint
from .config import config_from_dict
from .evaluate import evaluate, format_eval
from .masks import (apply_masks, mask_optimizer_state, run_masks, save_masks, sparsity)
from .preflight import data_fingerprint, check_data, check_memory
from .progress import Progress, hms
from .signals import Interrupted, interrupt_in
from .lock import check_not_in_use
from .runfolder import (append_jsonl, truncate_logs, default_out_dir, check_out_dir, run_files,
                        read_json, read_run_config, write_json, write_run_config, claim_folder,
                        remove_half_made, recorded_bpe,
                        save_tokenizer)
from .shards import Shards, auto_shards
from .step import train_step
from .state import Carry, Run
from .transfer import apply_init_from
from .tokenizer import prompt_ids

DEFAULT_COMMAND = "python cli.py train"     # how resume commands start when run() is called from
                                            # Python; the CLI passes how it was itself invoked


# ---------------------------------------------------------------------------------------------
# The parts of a run

def setup(cfg, out_dir, resume, progress, command, allow_data_change=False):
    """A Run with data, model, optimizer and streams, restored from the checkpoint on resume.
    Everything that can be wrong with the input is found here, before any file is written."""
    show = Progress(progress, cfg.max_iters)
    files = run_files(out_dir if out_dir is not None else default_out_dir(cfg))
    if resume:
        if not files.config.is_file():
            raise NotFound(f"run folder not found or has no config.json: {files.dir}")
        check_not_in_use(files.dir)                    # before minutes of loading, not after
    else:
        check_out_dir(files.dir)
    if resume:
        data = resolve_data(cfg, recorded=recorded_bpe(files.dir))
    else:
        data = resolve_data(cfg, source=recorded_bpe(cfg.init_from) if cfg.init_from else None)
    if cfg.kind.on_text and not resume:              # stored resolved: resume from anywhere
        cfg = replace(cfg, data=str(data_path(cfg.data).resolve()))
    if not resume and cfg.shards is None:             # recorded: resume makes the same steps
        cfg = replace(cfg, shards=auto_shards(cfg.batch_size))
    elif cfg.shards is None:                           # a run from before shards: it had one
        cfg = replace(cfg, shards=1)
    fingerprint = data_fingerprint(cfg, getattr(data, "tokenizer", None))
    vocab = data.vocab if cfg.kind.on_text else None
    saved, notes = None, []
    if resume:
        saved = read_json(files.config)
        mcfg, warnings = config_from_dict(cfg.model, saved["model"]), []
        if saved.get("vocab") != vocab:
            raise RunFolderError(f"the data of {files.dir} has changed since the run started "
                                 f"(its vocabulary differs from config.json)")
        changed = check_data(saved, fingerprint, allow_data_change, files.dir)
        if changed:
            warnings.append(changed)
            notes.append("data")
    else:
        mcfg, warnings = model_config(cfg, data)
        warnings += cfg.warnings()
    for w in warnings:
        show.message(f"warning: {w}", always=True)
    check_memory(cfg, mcfg, data)                      # before the model is allocated
    model = make_model(cfg, mcfg)
    r = Run(cfg, files, data, mcfg, model, None, make_streams(cfg.data_seed), show, resume,
            command, fingerprint, saved, notes,
            n_params=int(sum(p.size for p in model.params.values())))
    from_checkpoint = resume and files.checkpoint.exists()
    if cfg.init_from is not None and not from_checkpoint:
        notes = apply_init_from(model, cfg.init_from, init=cfg.init_name, seed=cfg.init_seed,
                                reinit_head=cfg.reinit_head, allow_partial=cfg.allow_partial,
                                vocab=vocab)
        for line in notes or ():
            show.message(f"init_from: {line}", always=True)
    r.opt = make_optimizer(cfg, mcfg, model.params)
    if from_checkpoint:
        restore_from_checkpoint(r)
    elif cfg.start_from is not None:                   # its weights, optimizer, step, streams
        r.start = restore_checkpoint(Path(cfg.start_from), model.params, r.opt, r.streams, {})
        if r.start >= cfg.max_iters:
            raise CheckpointError(f"{cfg.start_from} is at step {r.start}, not before "
                                  f"max_iters {cfg.max_iters}")
    elif resume:
        show.message(f"{files.dir} has no checkpoint yet: starting from step 0")
    r.masks = run_masks(cfg, files.dir, model.params, resume)
    if r.masks is not None:                            # masked weights start at exactly 0
        apply_masks(model.params, r.masks)
        mask_optimizer_state(r.opt, r.masks)
    if cfg.sharpness_every:
        r.sharp_batch = sharpness_batch(cfg, data)
    return r


def restore_from_checkpoint(r):
    """Parameters, optimizer, generators and Carry from checkpoint.npz; sets r.start."""
    carry = asdict(r.carry)
    r.start = restore_checkpoint(r.files.checkpoint, r.model.params, r.opt, r.streams, carry)
    r.carry = Carry(**carry)
    r.last_checkpoint = r.start
    if r.start > r.cfg.max_iters:
        raise CheckpointError(f"{r.files.checkpoint} is at step {r.start}, past max_iters "
                              f"{r.cfg.max_iters}")


def open_folder(r):
    """A new run: config.json, empty logs, the step-0 checkpoint. A resume: the logs cut back
    to the checkpoint's step, config.json updated with what changed (extension, new data).
    Then metrics.jsonl is opened for appending."""
    cfg, files = r.cfg, r.files
    if r.resume:
        truncate_logs(files.logs, r.start)
        if r.last_checkpoint is not None:
            r.show.message(f"resuming {files.dir} from step {r.start}")
        if r.notes:
            write_json(files.config, updated_config(r))
        files.summary.unlink(missing_ok=True)          # an extended run is not finished
    else:
        tok = r.tokenizer
        save_tokenizer(files.dir, tok)                 # BPE files; characters are "vocab"
        write_run_config(files.dir, cfg, r.mcfg, r.vocab, r.n_params,
                         minitransformer_version=__version__, data_hash=r.fingerprint,
                         tokenizer=tok.record() if tok is not None else None)
        files.metrics.write_text("")
        if r.masks is not None:
            save_masks(files.dir / "mask.npz", r.masks)
        for path, on in ((files.telemetry, cfg.telemetry), (files.sharpness, cfg.sharpness_every)):
            if on:
                path.write_text("")
        checkpoint(r, r.start)                         # weights to inspect from the start
    r.established = True
    r.show.message(f"{cfg.model}: {r.n_params:,} parameters, init {cfg.init_name}, "
                   f"{cfg.max_iters} steps of batch {cfg.batch_size} -> {files.dir}")
    r.metrics = open(files.metrics, "a", encoding="utf-8")


def updated_config(r):
    """config.json of a resumed run with the changes recorded in r.notes: a larger max_iters
    (the previous summary is kept under "extended") or new data (its hash, the old one kept
    under "data_changes")."""
    saved = dict(r.saved)
    if "extend" in r.notes:
        old = read_json(r.files.summary) if r.files.summary.is_file() else None
        saved["extended"] = saved.get("extended", []) + [
            {"from_max_iters": saved["train"]["max_iters"], "at_step": r.start, "summary": old}]
        saved["train"] = r.cfg.to_dict()
    if "data" in r.notes:
        saved["data_changes"] = saved.get("data_changes", []) + [
            {"at_step": r.start, "before": saved.get("data_hash")}]
        saved["data_hash"] = r.fingerprint
    return saved


def evaluate_now(r, step):
    """Evaluate the current parameters on the evaluation stream; tracks the best val loss."""
    ev = evaluate(r.cfg, r.model, r.data, r.streams["eval"],
                  pool=r.shards.pool if r.shards is not None else None)
    if r.carry.best_val_loss is None or ev["val_loss"] < r.carry.best_val_loss:
        r.carry.best_val_loss = ev["val_loss"]
    r.show.message(f"step {step}: {format_eval(ev)}")
    return ev


def checkpoint(r, step):
    """checkpoint.npz at `step` (updates made), after metrics.jsonl holds every line before."""
    if r.metrics is not None:
        r.metrics.flush()
    save_checkpoint(r.files.checkpoint, r.model.params, r.opt, step, r.streams,
                    asdict(Carry(**dict(asdict(r.carry), elapsed_s=r.elapsed()))))
    r.last_checkpoint = step


def one_step(r, step):
    """Iteration `step` (module docstring); False when the run diverged and must stop."""
    cfg = r.cfg
    if step == cfg.save_state_at:                      # a rewind point (studies/lottery.py)
        save_checkpoint(r.files.dir / f"state_{step}.npz", r.model.params, r.opt, step,
                        r.streams, asdict(r.carry))
    ev = evaluate_now(r, step) if cfg.eval_interval and step % cfg.eval_interval == 0 else {}
    t0 = time.perf_counter()
    x, y = get_batch(cfg, r.data, "train", r.streams["data"])
    watch = cfg.telemetry and step % cfg.log_interval == 0
    trace = {} if watch else None                      # this forward's activations, for telemetry
    res = train_step(r.model, r.opt, x, y, cfg.lr_at(step), cfg.grad_clip,
                     initial_loss=r.carry.initial_loss, trace=trace, keep_before=watch,
                     masks=r.masks, shards=r.shards)
    if r.carry.initial_loss is None:
        r.carry.initial_loss = res.loss
    if not res.updated:
        finite = res.loss if math.isfinite(res.loss) else None
        r.log(dict({"step": step}, loss=finite, lr=res.lr, **ev))
        r.divergence = {"step": step, "reason": res.reason, "loss": finite}
        return False
    r.carry.last_finite_loss = res.loss
    r.step_times.append(time.perf_counter() - t0)
    if watch:                                          # draws no random numbers: resume unaffected
        t1 = time.perf_counter()
        rec = telemetry.step_record(step, res.lr, res.grad_norm, cfg.grad_clip, res.before,
                                    r.model, res.grads, r.opt, x, trace=trace)
        if r.masks is not None:
            rec["sparsity"] = sparsity(r.masks)
        append_jsonl(r.files.telemetry, dict(rec, loss=res.loss))
        r.watch_times.append(time.perf_counter() - t1)
    if cfg.sharpness_every and step % cfg.sharpness_every == 0:
        append_jsonl(r.files.sharpness, sharpness_line(cfg, r.model, r.sharp_batch, step,
                                                       res.lr, r.opt))
    logged = step % cfg.log_interval == 0 or step == cfg.max_iters - 1 or bool(ev)
    if logged:
        r.log(dict({"step": step}, loss=res.loss, lr=res.lr, **ev))
    r.show.step(step, res.loss, res.lr, r.step_times[-1], logged)
    done = step + 1
    if cfg.checkpoint_interval and done % cfg.checkpoint_interval == 0 and done < cfg.max_iters:
        checkpoint(r, done)
    return True


def stop_for_signal(r, step):
    """A signal asked the run to stop before step `step`: checkpoint here, say how to go on."""
    if r.last_checkpoint != step:
        checkpoint(r, step)
    r.show.message(f"stopped by {r.signals.name} at step {step} (checkpoint saved); continue "
                   f"with: {r.resume_command}", always=True)
    r.stopped = True
    raise Interrupted(r.signals.signum)


def finish(r):
    """The end of the loop: final checkpoint, evaluation and sample (completed), or the
    divergence report; writes summary.json and returns it."""
    cfg, show = r.cfg, r.show
    summary = {"status": "completed" if r.divergence is None else "diverged",
               "model": cfg.model, "n_params": r.n_params}
    if r.masks is not None:
        summary["sparsity"] = sparsity(r.masks)
    if r.divergence is None:
        step = cfg.max_iters
        checkpoint(r, step)                            # before the final eval (module docstring)
        ev = evaluate_now(r, step)
        r.log(dict({"step": step}, **ev))
        summary.update(step=step, final_val_loss=ev["val_loss"],
                       final_train_loss=ev["train_loss"])
        if "val_bpc" in ev:
            summary["final_val_bpc"] = ev["val_bpc"]
        if cfg.kind.classifies:
            summary["val_acc"] = ev["val_acc"]
            show.message(f"validation accuracy {ev['val_acc']:.2%} ({len(r.data.val_y)} images)")
        else:
            tok = r.tokenizer
            ids = generate(r.model, prompt_ids(tok, ""), 200, r.streams["sample"])
            summary["sample"] = tok.decode(ids)
            if show.enabled:
                unit = "characters" if tok.kind == "char" else "tokens"
                show.message(f"sample (200 {unit} from a newline, temperature 1):")
                print(summary["sample"], flush=True)
    else:
        d = r.divergence
        summary.update(step=d["step"], final_val_loss=None, diverged_step=d["step"],
                       diverged_loss=d["loss"], reason=d["reason"],
                       last_finite_loss=r.carry.last_finite_loss)
        show.message(f"diverged at step {d['step']}: {d['reason']} (last finite loss "
                     f"{_fmt_loss(r.carry.last_finite_loss)}); stopped, see "
                     f"{r.files.summary}", always=True)
    summary.update(best_val_loss=r.carry.best_val_loss, wall_time_s=round(r.elapsed(), 3),
                   ms_per_iter=round(1e3 * float(np.mean(r.step_times)), 3)
                   if r.step_times else None,
                   ms_per_iter_median=round(1e3 * float(np.median(r.step_times)), 3)
                   if r.step_times else None, max_iters=cfg.max_iters, out_dir=str(r.files.dir))
    if r.watch_times and r.step_times:                 # telemetry's cost, per run
        summary["telemetry_ms_per_record"] = round(1e3 * float(np.mean(r.watch_times)), 3)
        summary["telemetry_overhead"] = round(float(np.sum(r.watch_times)
                                                    / np.sum(r.step_times)), 4)
    write_json(r.files.summary, summary)
    return summary


def after_failure(r, error):
    """What an exception leaves: a new run that is not usable yet (nothing written, or no
    checkpoint past step 0 and not an interruption) is removed; otherwise say how to resume."""
    interrupted = isinstance(error, KeyboardInterrupt)
    if not r.resume and (not r.established or (not interrupted
                                               and r.last_checkpoint == r.start)):
        remove_half_made(r.files.dir, r.made)
        if interrupted:
            r.show.message(f"interrupted before the run started; {r.files.dir} not kept",
                           always=True)
    elif interrupted and not r.stopped:
        r.show.message(f"interrupted; continue from the checkpoint at step {r.last_checkpoint} "
                       f"with: {r.resume_command}", always=True)


# ---------------------------------------------------------------------------------------------
# The run

def finished_summary(run_dir):
    """summary.json of a finished run (completed or diverged), or None."""
    path = run_files(run_dir).summary
    return read_json(path, keys=("status",)) if path.is_file() else None


def resume(run_dir, progress=True, *, max_iters=None, allow_data_change=False,
           command=DEFAULT_COMMAND):
    """Continue the run in run_dir from its checkpoint to its max_iters (its config.json decides
    everything); the result is bit-identical to a run that was never interrupted. A finished run
    is left as it is (its summary is returned) unless max_iters, larger than the run's, extends
    it (TrainConfig.extended: the learning rates of the steps made stay the same)."""
    _, cfg, _ = read_run_config(run_dir, model_config=False)
    if max_iters is None:
        return run(cfg, Path(run_dir), resume=True, progress=progress,
                   allow_data_change=allow_data_change, command=command)
    done = finished_summary(run_dir)
    if done is not None and done["status"] != "completed":
        raise RunFolderError(f"{run_dir} diverged at step {done.get('step')}; a diverged run "
                             f"cannot be extended")
    return run(cfg.extended(max_iters), Path(run_dir), resume=True, progress=progress,
               allow_data_change=allow_data_change, command=command, extend=True)


def run(cfg, out_dir=None, resume=False, progress=True, *, allow_data_change=False,
        command=DEFAULT_COMMAND, extend=False):
    """Train as cfg says and write the run folder out_dir (default runs/<model>-<time>).
    With resume=True, continue the run in out_dir from its checkpoint instead (a finished run
    is not touched: its summary is returned). Returns the dict written to summary.json; its
    "status" is "completed" or "diverged". `command` starts the resume command printed when a
    signal stops the run; allow_data_change and extend: see resume().

    Everything that can be wrong with the input (data, shapes, numbers, memory, checkpoint) is
    checked before the first file is written."""
    if resume and not extend:
        done = finished_summary(out_dir)
        if done is not None:
            _say_finished(out_dir, done, command)
            return done
    r = setup(cfg, out_dir, resume, progress, command, allow_data_change)
    if extend:
        r.notes.append("extend")
    r.signals.install()
    try:
        if r.signals.signum is not None:
            raise Interrupted(r.signals.signum)        # stopped before anything was written
        r.lock, r.made = claim_folder(r.files.dir, new=not resume)
        summary = train(r)
    finally:
        r.signals.restore()
    if summary["status"] == "completed":
        speed = f", {summary['ms_per_iter']:.1f} ms/iter" if summary["ms_per_iter"] else ""
        r.show.message(f"done: val loss {summary['final_val_loss']:.4f}, "
                       f"{hms(summary['wall_time_s'])}{speed} -> {r.files.dir}")
    return summary


def train(r):
    """open_folder, the steps and finish, holding the folder's lock; after_failure on error."""
    cfg, step = r.cfg, r.start
    try:
        open_folder(r)
        r.shards = Shards(cfg.shards)
        for step in range(r.start, cfg.max_iters):
            if r.signals.signum is not None:
                stop_for_signal(r, step)
            if not one_step(r, step):
                break
        return finish(r)
    except BaseException as e:
        stop = interrupt_in(e)                         # a second Ctrl-C inside a kernel
        after_failure(r, stop if stop is not None else e)
        if stop is not None and stop is not e:
            raise stop from None
        raise
    finally:
        if r.shards is not None:
            r.shards.close()
        if r.metrics is not None:
            r.metrics.close()
        r.lock.release()


def _say_finished(run_dir, summary, command):
    if summary["status"] == "completed":
        what = (f"is complete ({summary.get('step')} steps, final val loss "
                f"{_fmt_loss(summary.get('final_val_loss'))}); nothing to do. To train it "
                f"further: {command} --resume {shlex.quote(str(run_dir))} --max-iters N --extend")
    else:
        what = (f"diverged at step {summary.get('step')}; nothing to resume (see "
                f"{run_files(run_dir).summary})")
    Progress(True, 0).message(f"{run_dir} {what}", always=True)


def _fmt_loss(x):
    return "none" if x is None else f"{x:.4f}"
