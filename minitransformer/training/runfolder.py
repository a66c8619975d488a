"""The run folder: the only module that knows its file names and reads its config.json. Atomic
writes, the JSON readers, appending a line to a log, the lock that lets one process write at a
time, and the truncation of the logs that makes --resume bit-identical (checkpoint files:
training/checkpoint.py).
README's "Run folder" and "Reliability" sections describe the files and promises:

    config.json      {"train": TrainConfig, "model": GPTConfig/ViTConfig, "vocab", "n_params", ...}
    metrics.jsonl    one line per logged step: step, loss, lr (+ train/val loss at evaluations)
    telemetry.jsonl  per-tensor and per-layer statistics (--telemetry)
    sharpness.jsonl  top Hessian eigenvalue (--sharpness-every)
    .lock            the lock file (lock_folder): the PID of the process writing the folder
    summary.json     written once, when the run ends (completed or diverged)
    checkpoint.npz   params under their own names, opt.* optimizer state, "step",
                     rng.<stream> generator states as JSON text, train.* scalars

    files = run_files("runs/demo")              # files.config, files.checkpoint, ...
    saved, cfg, mcfg = read_run_config("runs/demo")
    lock, made = claim_folder("runs/demo", new=True)   # or RunFolderError naming the live PID
"""
from pathlib import Path
from typing import NamedTuple
import contextlib
import datetime
import json
import os
import re
import shutil
import tempfile

import numpy as np

from ..errors import ConfigError, NotFound, RunFolderError
from ..measure.telemetry import json_safe
from .config import TrainConfig, config_from_dict
from .lock import LOCK, check_not_in_use, lock_folder
from .tokenizer import run_tokenizer


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


def atomic_write_with(path, write):
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
    atomic_write_with(path, lambda f: f.write(data))


def write_json(path, obj):
    text = json.dumps(obj, indent=2, allow_nan=False) + "\n"
    atomic_write_with(path, lambda f: f.write(text.encode("utf-8")))


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


def _line_step(line):
    """The step of one .jsonl line (bytes without its newline), or None when the line is
    damaged: not UTF-8, not JSON, not an object, or without an integer "step"."""
    try:
        record = json.loads(line)
    except ValueError:                                  # JSONDecodeError, UnicodeDecodeError
        return None
    step = record.get("step") if isinstance(record, dict) else None
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def save_arrays(path, arrays):
    """An .npz of plain arrays {name: array}, written atomically (mask.npz, rewind points)."""
    atomic_write_with(path, lambda f: np.savez(f, **arrays))


def append_jsonl(path, record):
    """Append one record to a log of the folder (telemetry.jsonl, sharpness.jsonl) as a line of
    strict JSON; non-finite numbers become null (measure/telemetry.py json_safe)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(json_safe(record), allow_nan=False) + "\n")


def truncate_logs(paths, step):
    """Cut the run's .jsonl logs (metrics, telemetry, sharpness) back to the lines of steps
    < step, those written before the checkpoint at `step`; returns how many lines were dropped.

    What a killed process leaves is dropped: a last line without its newline (a write cut
    short) and every line from the first one of a step >= `step` on. A damaged line before
    that point is not something a kill makes, and dropping it would take history with it: it
    is a RunFolderError naming the file and the line, and no file is changed."""
    kept = {path: _lines_before(Path(path), step) for path in paths if Path(path).exists()}
    dropped = 0
    for path, (data, n_dropped) in kept.items():
        atomic_write_with(path, lambda f, data=data: f.write(data))
        dropped += n_dropped
    return dropped


def _lines_before(path, step):
    """(bytes of the lines of steps < step, number of lines after them); see truncate_logs."""
    lines = path.read_bytes().split(b"\n")
    lines.pop()                                         # after the last newline: b"" or a cut write
    keep = []
    for lineno, line in enumerate(lines, start=1):
        s = _line_step(line)
        if s is not None and s >= step:
            break                                       # written after the checkpoint: drop
        if s is None:
            raise RunFolderError(f"{path} line {lineno} is damaged (expected a JSON object with "
                                 f"an integer \"step\"); it lies before the checkpoint's step "
                                 f"{step}, so resuming would lose the history after it: repair "
                                 f"or delete that line, then resume")
        keep.append(line + b"\n")
    return b"".join(keep), len(lines) - len(keep)


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
        check_not_in_use(out)
        raise RunFolderError(f"{out} already holds a run; continue it with --resume {out} or "
                              f"choose another --out")
    return out


def clean_stale_temporaries(run_dir):
    """Delete the temporary files atomic writes leave when their process is killed mid-write
    (<file>.<8 random characters>.tmp); call it holding the folder's lock, so no live writer
    owns them.
    Returns the names removed."""
    removed = []
    for p in Path(run_dir).glob("*.tmp"):
        if _TEMPORARY.fullmatch(p.name):
            p.unlink(missing_ok=True)
            removed.append(p.name)
    return sorted(removed)


_TEMPORARY = re.compile(r".+\.[A-Za-z0-9_]{8}\.tmp")   # what atomic_path's mkstemp names look like


def claim_folder(run_dir, new):
    """Lock run_dir for writing. new=True: a new run; the folder (and missing parents) are
    created, and it must not hold a run (checked again under the lock: two processes may have
    passed check_out_dir together). Returns (lock, made): the folders this call created, from
    the top down, for remove_half_made."""
    run_dir = Path(run_dir)
    made = []
    if new:
        for p in reversed([run_dir, *run_dir.parents]):     # from the root down
            if not p.exists():
                try:
                    p.mkdir()
                    made.append(p)
                except FileExistsError:                     # another process made it first
                    pass
    lock = lock_folder(run_dir)
    try:
        if new and run_files(run_dir).config.exists():    # made by a process now finished
            raise RunFolderError(f"{run_dir} already holds a run; continue it with --resume "
                                 f"{run_dir} or choose another --out")
        clean_stale_temporaries(run_dir)
    except BaseException:
        lock.release()
        raise
    return lock, made


def remove_half_made(run_dir, made):
    """Undo a new run that failed before it was usable: its files, the run folder if this
    process made it, and the parents it made while they are empty (a parent may meanwhile hold
    another process's run, as in a sweep)."""
    run_dir = Path(run_dir)
    if run_dir in made:
        shutil.rmtree(run_dir, ignore_errors=True)
    else:
        for p in (*run_files(run_dir)[1:], run_dir / LOCK):
            Path(p).unlink(missing_ok=True)
    for p in reversed([m for m in made if m != run_dir]):
        try:
            p.rmdir()
        except OSError:                                     # not empty: someone else's now
            break


# ---------------------------------------------------------------------------------------------
# Reading a run folder back

def write_run_config(run_dir, train, mcfg, vocab, n_params, **extra):
    """config.json of a run: the TrainConfig, the model config, the vocabulary (or None), the
    parameter count and any `extra` entries (version, data hash, import source, ...)."""
    write_json(run_files(run_dir).config, dict({"train": train.to_dict(), "model": mcfg.to_dict(),
                                               "vocab": vocab, "n_params": n_params}, **extra))


def save_tokenizer(folder, tok):
    """Write a BPE tokenizer's files (tokenizer.json, or vocab.json + merges.txt) into folder,
    atomically and byte for byte; a character tokenizer has none (its characters are
    config.json's "vocab")."""
    for name, data in getattr(tok, "files", {}).items():
        atomic_write(Path(folder) / name, data)


def recorded_bpe(path):
    """The BPE tokenizer the run folder `path` records, or None (a character run, a run on token
    ids, a checkpoint file, or no run folder at all)."""
    path = Path(path)
    if not (path.is_dir() and run_files(path).config.is_file()):
        return None
    tok = run_tokenizer(path, read_saved_config(path))
    return tok if getattr(tok, "kind", None) == "bpe" else None


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
    path = run_files(run_dir).config
    _check_keys(saved, ("train", "model"), path, "")
    try:
        cfg = TrainConfig.from_dict(saved["train"])
        mcfg = config_from_dict(cfg.model, saved["model"]) if model_config else None
    except (KeyError, TypeError, AttributeError) as e:
        raise RunFolderError(f"{path} is incomplete or damaged ({e})") from None
    except ConfigError as e:                        # a value no run could have written
        raise RunFolderError(f"{path}: {e}") from None
    if mcfg is not None:
        check_vocab(saved, mcfg, path)
    return saved, cfg, mcfg


def check_vocab(saved, mcfg, path):
    """A GPT run's "vocab" holds exactly vocab_size distinct characters (id i is vocab[i]), or
    is null: a model without a character vocabulary (an imported GPT-2 works on token ids).
    Anything else (a shortened or edited vocabulary) is a RunFolderError naming config.json."""
    if not hasattr(mcfg, "vocab_size"):
        return
    if "vocab" not in saved:
        raise RunFolderError(f"{path}: key 'vocab' is missing (expected the run's characters, "
                             f"or null)")
    vocab = saved["vocab"]
    if vocab is None:
        return
    if not isinstance(vocab, str):
        raise RunFolderError(f"{path}: 'vocab' must be a string of characters, found "
                             f"{type(vocab).__name__}")
    if len(vocab) != mcfg.vocab_size:
        raise RunFolderError(f"{path}: 'vocab' has {len(vocab)} characters but the model's "
                             f"vocab_size (rows of wte.weight) is {mcfg.vocab_size}; the file "
                             f"was edited or damaged")
    if len(set(vocab)) != len(vocab):
        dup = next(ch for i, ch in enumerate(vocab) if ch in vocab[:i])
        raise RunFolderError(f"{path}: 'vocab' holds the character {dup!r} twice; each "
                             f"character must appear once")

