"""Checkpoints: plain arrays in an .npz archive (no pickle), written atomically, read back with
one clear error for every way the file can be unusable.

    checkpoint.npz   params under their own names, opt.* optimizer state, "step",
                     rng.<stream> generator states as JSON text, train.* scalars

    save_checkpoint(path, params, opt, step, streams, carry)     # the training loop
    step = restore_checkpoint(path, params, opt, streams, carry) # --resume
    cfg, model, info = load_run("runs/demo")   # a run folder's model with its checkpoint's weights
    check_finite(arrays, path)                 # CheckpointError naming tensors with NaN or inf
"""
from pathlib import Path
import json
import math
import zipfile

import numpy as np

from ..errors import CheckpointError
from .build import make_model
from .runfolder import atomic_write_with, read_run_config, run_files


def _rng_array(rng):
    """A generator's state as a 0-d unicode array holding JSON (no pickle needed to load it)."""
    return np.array(json.dumps(rng.bit_generator.state))


def _set_rng(rng, arr, name, path):
    try:
        rng.bit_generator.state = json.loads(str(arr[()]))
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"{path}: RNG state {name} is unusable ({e})") from None


def save_checkpoint(path, params, opt, step, streams, train_state):
    """checkpoint.npz: params under their own names, opt.* optimizer state, step, rng.* states
    (JSON strings) and train.* scalars (divergence reference, best val loss, elapsed seconds)."""
    arrays = dict(params)
    arrays.update(opt.state_dict())
    arrays["step"] = np.array(step, dtype=np.int64)
    for name, rng in streams.items():
        arrays[f"rng.{name}"] = _rng_array(rng)
    for name, value in train_state.items():
        arrays[f"train.{name}"] = np.array(np.nan if value is None else value, dtype=np.float64)
    atomic_write_with(path, lambda f: np.savez(f, **arrays))


def save_params(path, params, step=0):
    """A checkpoint of parameters only (an imported model): params under their names, "step"."""
    arrays = dict(params, step=np.array(step, dtype=np.int64))
    atomic_write_with(path, lambda f: np.savez(f, **arrays))


def load_checkpoint(path):
    """Every array of a checkpoint.npz as a dict, read with allow_pickle=False. A missing,
    truncated, corrupt or pickle-holding file is a CheckpointError naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:1] == b"\x80":                    # the first byte of a pickle (protocol >= 2)
        raise CheckpointError(f"{path} is a pickle, not a checkpoint; refusing to load it")
    if head != b"PK\x03\x04":                  # every .npz is a zip archive
        raise CheckpointError(f"{path} is corrupt or not a checkpoint (not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except ValueError as e:
        if "pickle" in str(e):
            raise CheckpointError(f"{path} holds pickled objects; refusing to load it "
                                  f"(checkpoints hold plain arrays only)") from None
        raise CheckpointError(f"{path} is not a valid checkpoint: {e}") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as e:
        raise CheckpointError(f"{path} is corrupt or not a checkpoint ({type(e).__name__}: "
                              f"{e})") from None


def restore_params(params, ckpt, path):
    """Copy checkpoint arrays into the live params; every name and shape must match."""
    missing = [n for n in params if n not in ckpt]
    if missing:
        raise CheckpointError(f"{path} lacks parameter(s) {', '.join(missing[:3])}"
                              f"{' ...' if len(missing) > 3 else ''}")
    for name, p in params.items():
        if ckpt[name].shape != p.shape:
            raise CheckpointError(f"{path}: {name} has shape {ckpt[name].shape}, the model "
                                  f"needs {p.shape}")
        p[...] = ckpt[name]


def check_finite(arrays, path, names=None):
    """CheckpointError naming every float tensor of `arrays` (those in `names`, default all)
    that holds NaN or inf: weights from which nothing can be sampled, measured or exported."""
    names = list(arrays) if names is None else list(names)
    bad = []
    for name in names:
        a = np.asarray(arrays[name])
        if a.dtype.kind in "fc" and not np.isfinite(a).all():
            bad.append(f"{name} ({int(np.isnan(a).sum())} NaN, {int(np.isinf(a).sum())} inf)")
    if bad:
        raise CheckpointError(f"{path} holds non-finite values in {len(bad)} of {len(names)} "
                              f"tensors: {', '.join(bad[:4])}{' ...' if len(bad) > 4 else ''}; "
                              f"nothing can be computed from them")


def restore_checkpoint(path, params, opt, streams, state):
    """Load everything a checkpoint holds into the live objects (params, optimizer, generators,
    the train.* entries of `state`); returns its step. Anything missing or mis-shaped is a
    CheckpointError naming the file."""
    ckpt = load_checkpoint(path)
    try:
        restore_params(params, ckpt, path)
        opt.load_state_dict(ckpt)
        for name, rng in streams.items():
            _set_rng(rng, ckpt[f"rng.{name}"], name, path)
        for name in state:
            v = float(ckpt[f"train.{name}"])
            state[name] = None if math.isnan(v) else v
        return int(ckpt["step"])
    except KeyError as e:
        raise CheckpointError(f"{path} lacks {e.args[0]}; it is not a training "
                              f"checkpoint") from None
    except CheckpointError:
        raise
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path} does not fit this run: {e}") from None


def load_run(run_dir):
    """(TrainConfig, model, info) of a run folder, with the parameters of its checkpoint.
    info holds the run's config.json (vocab, model config) and the checkpoint's step."""
    saved, cfg, mcfg = read_run_config(run_dir)
    model = make_model(cfg, mcfg)
    ckpt_path = run_files(run_dir).checkpoint
    ckpt = load_checkpoint(ckpt_path)
    restore_params(model.params, ckpt, ckpt_path)
    check_finite(model.params, ckpt_path)
    info = dict(saved, step=int(ckpt["step"]) if "step" in ckpt else None)
    return cfg, model, info
