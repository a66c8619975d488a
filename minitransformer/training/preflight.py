"""Checks made before a run writes anything: will it fit in memory, and is its data the data it
started with?

    fp = data_fingerprint(cfg)             # {"files": [...], "sha256": ..., "bytes": ...}
    check_data(saved, fp, allow_change)    # --resume: refuse other data unless allowed
    check_memory(cfg, mcfg, data)          # one ConfigError with the estimate and what is free

Memory estimate of one run (bytes; `s` = the dtype's item size, 4 for float32):

    parameters       N * s                  N from the model's parameter table
    gradients        N * s * shards         each shard's, until they are summed (shards.py)
    optimizer state  2 N * s (AdamW m, v)   or N * s (SGD momentum)
    activations      s * (L * (16 B T C + 3 B NH T^2) + 2 B T C + 3 B T V)
                     per block: the caches of LayerNorms, qkv (3), attention output, projections,
                     MLP (4 + 4 for GELU) ~ 16 B T C, and scores, probabilities and their
                     gradient, 3 B NH T^2; the embedding and the logits, probabilities and
                     their gradient. T is the context (GPT) or the number of tokens (ViT), V
                     the vocabulary or classes; a ViT evaluates up to 500 images at once, so
                     B = max(B, 500) there.
    encoded data     the arrays of the data set, already in memory when the check runs

It is an estimate within a small factor, meant to catch the impossible (a block size of 100,000
wants terabytes), not to plan the last megabyte. Available memory: MemAvailable of /proc/meminfo,
lowered to the cgroup's limit when one is set; where neither can be read the check is skipped.
"""
import hashlib
import math
from pathlib import Path

from ..engine.kinds import kind_named
from ..errors import ConfigError, RunFolderError
from .build import data_files

_CHUNK = 1 << 20


def data_fingerprint(cfg, tokenizer=None):
    """SHA-256 over the contents of the run's data files, in order, and their total size; with
    a BPE tokenizer also "tokenizer_sha256", over its files (name and bytes, in name order)."""
    h, total, files = hashlib.sha256(), 0, []
    for path in data_files(cfg):
        path = Path(path).resolve()
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
                total += len(chunk)
        files.append(str(path))
    out = {"files": files, "sha256": h.hexdigest(), "bytes": total}
    tok_files = getattr(tokenizer, "files", None)
    if tok_files:
        t = hashlib.sha256()
        for name in sorted(tok_files):
            t.update(name.encode() + b"\0" + tok_files[name])
        out["tokenizer_sha256"] = t.hexdigest()
    return out


def check_data(saved, fingerprint, allow_change, run_dir):
    """On resume: the data's hash must be the one config.json recorded when the run started.
    Returns a warning line when allow_change let a different one through, else None. Runs made
    before hashes were recorded are not checked."""
    recorded = saved.get("data_hash")
    if not isinstance(recorded, dict):
        return None
    if recorded.get("tokenizer_sha256") != fingerprint.get("tokenizer_sha256"):
        if not allow_change:
            raise RunFolderError(f"the tokenizer files of {run_dir} have changed since the run "
                                 f"started (their sha256 differs from config.json's); to train "
                                 f"with them anyway, resume with --allow-data-change")
        return (f"the tokenizer of {run_dir} has changed since the run started; training on "
                f"(--allow-data-change), config.json records both")
    if recorded.get("sha256") == fingerprint["sha256"]:
        return None
    what = ", ".join(fingerprint["files"])
    if not allow_change:
        raise RunFolderError(f"{what} has changed since the run in {run_dir} started (sha256 "
                             f"{fingerprint['sha256'][:12]}..., config.json records "
                             f"{str(recorded.get('sha256'))[:12]}...); to train on the new data "
                             f"anyway, resume with --allow-data-change")
    return (f"{what} has changed since the run started; training on the new data "
            f"(--allow-data-change), config.json records both")


def memory_estimate(cfg, mcfg, data):
    """{part: bytes} of the estimate in the module docstring."""
    s = 8 if cfg.dtype == "float64" else 4
    shapes = kind_named(cfg.model).param_shapes(mcfg)
    n = sum(math.prod(shape) for shape in shapes.values())
    L, C, NH, B = mcfg.n_layer, mcfg.n_embd, mcfg.n_head, cfg.batch_size
    if cfg.kind.on_text:
        T, V = mcfg.block_size, mcfg.vocab_size
        data_bytes = data.train.nbytes + data.val.nbytes
    else:
        T, V, B = mcfg.n_tokens, mcfg.n_classes, max(B, min(500, len(data.val_y)))
        data_bytes = sum(a.nbytes for a in data[:4])
    acts = s * (L * (16 * B * T * C + 3 * B * NH * T * T) + 2 * B * T * C + 3 * B * T * V)
    return {"parameters": n * s, "gradients": n * s * (cfg.shards or 1),
            "optimizer state": (2 if cfg.optimizer == "adamw" else 1) * n * s,
            "activations of one step": acts, "encoded data": data_bytes}


def available_memory():
    """Bytes this process can still allocate, or None when the system does not say."""
    found = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = Path("/sys/fs/cgroup/memory.current").read_text().strip()
        if limit != "max":
            found.append(int(limit) - int(used))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def check_memory(cfg, mcfg, data, available=None):
    """ConfigError (one line: the estimate by part and the available memory) when the run
    cannot fit. The encoded data is already allocated, so it is shown but not compared."""
    est = memory_estimate(cfg, mcfg, data)
    available = available_memory() if available is None else available
    need = sum(est.values()) - est["encoded data"]
    if available is None or need <= available:
        return est
    parts = ", ".join(f"{k} {_size(v)}" for k, v in est.items())
    raise ConfigError(f"this run needs about {_size(sum(est.values()))} of memory ({parts}) but "
                      f"{_size(max(available, 0))} is available; lower --block-size, "
                      f"--batch-size, --n-embd or --n-layer")


def _size(n):
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
