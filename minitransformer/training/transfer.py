"""Pretrained weights as initialization: start a model from another run's parameters.

    notes = apply_init_from(model, "runs/gpt-1", init="gpt2", seed=1337, vocab=data.vocab)

`model` is freshly built (build_model with `init` and `seed`); its parameters are overwritten in
place (model.params is the live state) by the checkpoint's, cast to the model's dtype. Every
tensor that is not loaded keeps the value it was built with: its fresh init by the chosen
scheme. The returned lines say which those are, each starting with the parameter name (and a
last line lists the checkpoint's tensors this model lacks, when allow_partial ignored some).

  path            a run folder (config.json + checkpoint.npz; config.json may hold "vocab") or an
                  .npz file (the params under their own names; other arrays such as opt.* are
                  ignored). Loaded with allow_pickle=False.
  reinit_head     ViT: head.weight and head.bias keep their fresh init. GPT: the head is tied to
                  wte, so it is wte that keeps its fresh init (the token embedding is re-drawn too).
  allow_partial   tensors whose shapes differ (or that one side lacks) keep their fresh init and
                  are listed, instead of a ValueError naming them with both shapes. A wpe or
                  pos_embed of another length is such a mismatch.
  vocab           the new run's vocabulary (GPT on text). When the source run's config.json has
                  another vocabulary, rows of wte are copied for the characters both share and
                  the rows of new characters keep their fresh init.
"""
from pathlib import Path

import numpy as np
from ..errors import ConfigError, NotFound
from .checkpoint import check_finite, load_checkpoint
from .runfolder import read_saved_config, run_files

_STATE_PREFIXES = ("opt.", "rng.", "train.")       # checkpoint entries that are not parameters
_MAX_LISTED = 6


def head_names(model):
    """The parameters --reinit-head re-draws: ViT's head; GPT's tied wte."""
    return ["head.weight", "head.bias"] if "head.weight" in model.params else ["wte.weight"]


def load_source(path):
    """({name: array} of the parameters in a run folder or .npz file, the run's vocabulary or
    None)."""
    path = Path(path)
    vocab = None
    if path.is_dir():
        files = run_files(path)
        if not files.checkpoint.is_file():
            raise NotFound(f"{path} has no checkpoint.npz to start from")
        if files.config.is_file():
            vocab = read_saved_config(path).get("vocab")
        path = files.checkpoint
    elif not path.exists():
        raise NotFound(f"--init-from: no such run folder or checkpoint: {path}")
    arrays = load_checkpoint(path)                 # allow_pickle=False; clear errors
    params = {k: v for k, v in arrays.items() if k != "step" and not k.startswith(_STATE_PREFIXES)}
    if not params:
        raise ConfigError(f"{path} holds no parameters")
    check_finite(params, path)                     # NaN weights would start a run that is dead
    return params, (vocab if isinstance(vocab, str) else None)


def _listing(items):
    shown = items[:_MAX_LISTED]
    more = len(items) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more else "")


def _map_vocab(old, new_vocab, old_vocab, fresh):
    """wte rows for new_vocab: the old row of every character both vocabularies share, the fresh
    row otherwise. Returns (rows, list of new characters)."""
    index = {ch: i for i, ch in enumerate(old_vocab)}
    rows = fresh.copy()
    new_chars = []
    for i, ch in enumerate(new_vocab):
        if ch in index:
            rows[i] = old[index[ch]]
        else:
            new_chars.append(ch)
    return rows, new_chars


def apply_init_from(model, path, *, init, seed, reinit_head=False, allow_partial=False, vocab=None):
    """Load the parameters at `path` into `model.params` in place; return one line per tensor
    that was not (or only partly) loaded, each starting with its name, and one listing ignored
    checkpoint tensors. Nothing is written when a ValueError is raised. See the module docstring."""
    src, src_vocab = load_source(path)
    params = model.params
    fresh = f"its fresh init ({init}, seed {seed})"
    skip = set(head_names(model)) if reinit_head else set()
    loaded, notes, problems = {}, [], []

    for name, p in params.items():
        if name in skip:
            notes.append(f"{name}: re-drawn by {init} (reinit_head)")
            continue
        if name not in src:
            problems.append((name, "missing from the checkpoint"))
            continue
        a = src[name]
        if a.dtype.kind != "f":
            raise ConfigError(f"{path}: {name} holds {a.dtype} values, not floating point")
        remap = (name == "wte.weight" and vocab is not None and src_vocab is not None
                 and src_vocab != vocab and a.ndim == 2 and a.shape[1] == p.shape[1]
                 and len(vocab) == p.shape[0] and len(src_vocab) == a.shape[0])
        if remap:
            rows, new_chars = _map_vocab(a, vocab, src_vocab, p)
            loaded[name] = rows
            if new_chars:
                shown = " ".join(repr(c) for c in new_chars[:12]) + (" ..." if len(new_chars) > 12 else "")
                notes.append(f"{name}: {len(new_chars)} of {len(vocab)} characters are new, their "
                             f"rows keep {fresh}: {shown}")
            continue
        if a.shape != p.shape:
            problems.append((name, f"checkpoint {a.shape} vs model {p.shape}"))
            continue
        loaded[name] = a
        if name == "wte.weight" and vocab is not None and src_vocab is None:
            notes.append(f"{name}: the checkpoint has no vocabulary; rows copied by index")

    extra = [n for n in src if n not in params]
    if (problems or extra) and not allow_partial:
        what = [f"{n}: {why}" for n, why in problems] + [f"{n}: not in this model" for n in extra]
        raise ConfigError(f"{path} does not fit this model: {_listing(what)} "
                         f"(use --allow-partial to keep a fresh init for these)")
    for name, a in loaded.items():
        params[name][...] = np.asarray(a, dtype=params[name].dtype)
    for name, why in problems:
        notes.append(f"{name}: {why}; keeps {fresh}")
    if extra:
        notes.append(f"checkpoint tensors not in this model, ignored: {', '.join(extra)}")
    return notes
