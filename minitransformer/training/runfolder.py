"""The run folder: the only module that knows its file names and reads its config.json. Atomic
writes, JSON, checkpoints (plain arrays, no pickle) and the metrics.jsonl truncation that makes
--resume bit-identical. docs/design.md's run-folder contract describes the files:

    config.json      {"train": TrainConfig, "model": GPTConfig/ViTConfig, "vocab", "n_params", ...}
    metrics.jsonl    one line per logged step: step, loss, lr (+ train/val loss at evaluations)
    telemetry.jsonl  per-tensor and per-layer statistics (--telemetry), sharpness.jsonl (--sharpness-every)
    summary.json     written once, when the run ends (completed or diverged)
    checkpoint.npz   params under their own names, opt.* optimizer state, "step",
                     rng.<stream> generator states as JSON text, train.* scalars

    files = run_files("runs/demo")              # files.config, files.checkpoint, ...
    saved, cfg, mcfg = read_run_config("runs/demo")
    cfg, model, info = load_run("runs/demo")    # with the checkpoint's parameters
"""
from pathlib import Path
from typing import NamedTuple
import contextlib
import datetime
import json
import math
import os
import tempfile
import zipfile

import numpy as np

from ..errors import CheckpointError, NotFound, RunFolderError
from .build import config_from_dict, make_model
from .config import TrainConfig


class RunFiles(NamedTuple):
    """The paths of a run folder's files."""
    dir: Path
    config: Path
    metrics: Path
    telemetry: Path
    sharpness: Path
    summary: Path
    checkpoint: Path

    @property
    def logs(self):
        """The append-only .jsonl files (truncated together on resume)."""
        return (self.metrics, self.telemetry, self.sharpness)


def run_files(run_dir):
    """RunFiles of the folder run_dir (nothing is checked or created)."""
    d = Path(run_dir)
    return RunFiles(d, d / "config.json", d / "metrics.jsonl", d / "telemetry.jsonl",
                    d / "sharpness.jsonl", d / "summary.json", d / "checkpoint.npz")


def _umask():
    """The process's umask, read without changing it where Linux allows (/proc), else by the
    classic set-and-restore at call time (never at import)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_write(path, write):
    """Call write(file) on a temporary file in path's folder, fsync it and rename it over path,
    so a reader (or a process killed half-way) sees either the old file or the new one."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            write(f)


@contextlib.contextmanager
def atomic_path(path):
    """A temporary file name in path's folder, for writers that take a name rather than a file
    (the safetensors library): when the block ends without error the file is fsynced and
    renamed over path; after an error it is removed."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())                # mkstemp makes 0600; use the usual mode
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:                                        # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def atomic_write(path, data):
    """Write the bytes `data` to path atomically (temporary file, fsync, rename)."""
    _atomic_write(path, lambda f: f.write(data))


def write_json(path, obj):
    text = json.dumps(obj, indent=2, allow_nan=False) + "\n"
    _atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _decode_line(raw, path, lineno):
    """One line's bytes as text; bytes that are not UTF-8 are a RunFolderError naming the line."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RunFolderError(f"{path} line {lineno}: byte 0x{raw[e.start]:02x} at column "
                             f"{e.start + 1} is not UTF-8 text (the file is damaged)") from None


def _check_keys(record, keys, path, where):
    """RunFolderError unless record is a JSON object holding every key of `keys`."""
    if not isinstance(record, dict):
        raise RunFolderError(f"{path}{where}: expected a JSON object, found "
                             f"{type(record).__name__}")
    missing = [k for k in keys if k not in record]
    if missing:
        raise RunFolderError(f"{path}{where}: key {missing[0]!r} is missing (expected "
                             f"{', '.join(map(repr, keys))})")


def read_json(path, keys=()):
    """The JSON object in `path` (config.json, summary.json, ...). Every way the file can be
    damaged is one RunFolderError naming the file and what was expected: missing, not UTF-8,
    not JSON (with the line and column), not an object, or lacking one of `keys`."""
    path = Path(path)
    if not path.is_file():
        raise RunFolderError(f"{path} is missing (expected a JSON file)")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise RunFolderError(f"{path} line {line}: byte 0x{raw[e.start]:02x} is not UTF-8 "
                             f"text (the file is damaged)") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise RunFolderError(f"{path} line {e.lineno} column {e.colno}: not valid JSON "
                             f"({e.msg}); the file is damaged") from None
    _check_keys(obj, keys, path, "")
    return obj


def read_jsonl(path, keys=()):
    """Every record of a .jsonl file (metrics, telemetry, sharpness), each a JSON object with
    `keys`. A last line without its newline is a write cut short by a killed process and is
    left out; any other line that is not UTF-8 or not a JSON object with `keys` is a
    RunFolderError naming the file and the line: a reader never skips history silently."""
    path = Path(path)
    if not path.is_file():
        raise RunFolderError(f"{path} is missing (expected a JSON-lines file)")
    lines = path.read_bytes().split(b"\n")
    lines.pop()                                     # after the last newline: "" or a cut write
    out = []
    for lineno, raw in enumerate(lines, start=1):
        text = _decode_line(raw, path, lineno)
        try:
            record = json.loads(text)
        except json.JSONDecodeError as e:
            raise RunFolderError(f"{path} line {lineno}: not valid JSON ({e.msg} at column "
                                 f"{e.colno}); the file is damaged") from None
        _check_keys(record, keys, path, f" line {lineno}")
        out.append(record)
    return out


def _rng_array(rng):
    """A generator's state as a 0-d unicode array holding JSON (no pickle needed to load it)."""
    return np.array(json.dumps(rng.bit_generator.state))


def _set_rng(rng, arr, name, path):
    try:
        rng.bit_generator.state = json.loads(str(arr[()]))
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"{path}: RNG state {name} is unusable ({e})") from None


def save_arrays(path, arrays):
    """An .npz of plain arrays {name: array}, written atomically (mask.npz, rewind points)."""
    _atomic_write(path, lambda f: np.savez(f, **arrays))


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
    _atomic_write(path, lambda f: np.savez(f, **arrays))


def save_params(path, params, step=0):
    """A checkpoint of parameters only (an imported model): params under their names, "step"."""
    arrays = dict(params, step=np.array(step, dtype=np.int64))
    _atomic_write(path, lambda f: np.savez(f, **arrays))


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


def truncate_metrics(path, step):
    """Keep the lines of metrics.jsonl for steps < step (those written before the checkpoint);
    a process killed after the checkpoint may have left later or half-written lines."""
    if not path.exists():
        return
    keep = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                if json.loads(line)["step"] >= step:
                    break
            except (ValueError, KeyError, TypeError):
                break
            keep.append(line if line.endswith("\n") else line + "\n")
    text = "".join(keep)
    _atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def default_out_dir(cfg, root="runs"):
    """runs/<model>-<YYYYmmdd-HHMMSS>, with -2, -3, ... if that exists already."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{cfg.model}-{stamp}"
    path, i = base, 1
    while path.exists():
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    return path


def check_out_dir(out_dir):
    """A folder a new run may use: absent or empty. A file, or a folder holding a run, is an
    error (nothing gets overwritten)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"output path {out} is a file, not a folder; choose another --out")
    if out.is_dir() and run_files(out).config.exists():
        raise RunFolderError(f"{out} already holds a run; continue it with --resume {out} or "
                              f"choose another --out")
    return out


# ---------------------------------------------------------------------------------------------
# Reading a run folder back

def write_run_config(run_dir, train, mcfg, vocab, n_params, **extra):
    """config.json of a run: the TrainConfig, the model config, the vocabulary (or None), the
    parameter count and any `extra` entries (version, data hash, import source, ...)."""
    write_json(run_files(run_dir).config, dict({"train": train.to_dict(), "model": mcfg.to_dict(),
                                               "vocab": vocab, "n_params": n_params}, **extra))


def read_saved_config(run_dir):
    """config.json of a run folder as a dict; a missing folder, a file, or a folder without
    config.json is one clear error."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise NotFound(f"run folder not found: {run_dir}")
    if not run_dir.is_dir():
        raise RunFolderError(f"{run_dir} is a file, not a run folder")
    path = run_files(run_dir).config
    if not path.is_file():
        raise RunFolderError(f"{run_dir} is not a run folder (it has no config.json)")
    return read_json(path)                         # a JSON object, or one error naming it


def read_run_config(run_dir, model_config=True):
    """(config.json as a dict, its TrainConfig, its GPTConfig/ViTConfig or None) of a run
    folder; an unusable config.json is one RunFolderError naming it."""
    saved = read_saved_config(run_dir)
    try:
        cfg = TrainConfig.from_dict(saved["train"])
        mcfg = config_from_dict(cfg.model, saved["model"]) if model_config else None
    except (KeyError, TypeError) as e:
        raise RunFolderError(f"{run_files(run_dir).config} is incomplete or damaged "
                             f"({e})") from None
    return saved, cfg, mcfg


def load_run(run_dir):
    """(TrainConfig, model, info) of a run folder, with the parameters of its checkpoint.
    info holds the run's config.json (vocab, model config) and the checkpoint's step."""
    saved, cfg, mcfg = read_run_config(run_dir)
    model = make_model(cfg, mcfg)
    ckpt_path = run_files(run_dir).checkpoint
    ckpt = load_checkpoint(ckpt_path)
    restore_params(model.params, ckpt, ckpt_path)
    info = dict(saved, step=int(ckpt["step"]) if "step" in ckpt else None)
    return cfg, model, info
