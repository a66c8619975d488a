"""Hugging Face GPT-2 interop: import a `save_pretrained` folder as a run, export a run as one.

    python cli.py import-gpt2 HF_DIR --out RUN_DIR     # config.json + model.safetensors -> run
    python cli.py export-gpt2 RUN_DIR --out HF_DIR     # run -> config.json + model.safetensors

Our GPT uses GPT-2's names and its Conv1D (in, out) layout (docs/design.md#parameter-names), so the weights
map one to one: strip the "transformer." prefix that GPT2LMHeadModel adds, drop the causal-mask
buffers older versions saved (h.N.attn.bias, h.N.attn.masked_bias), and check that lm_head.weight,
when present, is wte (GPT-2 ties them; save_pretrained omits it). GPT-2 computes exactly our
pre-LN block with tanh GELU ("gelu_new") and LayerNorm eps 1e-5.

The tokenizer files of the folder (tokenizer.json, or GPT-2's vocab.json + merges.txt) are copied
into the run and recorded in its config.json (training/tokenizer.py), so `sample` reads and writes
text and `train --init-from` tokenizes the same way; their vocabulary must be the model's. A
folder without them gives a run on token ids. safetensors is read and written by the library
(analysis/tensorfile.py); all of this needs the `hf` extra.
"""
import json
from pathlib import Path

import numpy as np

from ..engine.config import GPTConfig
from ..engine import gpt
from ..errors import ConfigError, DataError, RunFolderError
from ..training.runfolder import atomic_write
from ..training.tokenizer import find_bpe_files, load_bpe, check_vocab_size, run_tokenizer
from .tensorfile import read_safetensors, write_safetensors, read_model_folder

__all__ = ["read_safetensors", "write_safetensors", "import_gpt2", "export_gpt2", "load_hf",
           "config_from_hf", "hf_config", "write_imported_run"]


# --------------------------------------------------------------------------------------------
# GPT-2 config <-> GPTConfig

_TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")   # the same tanh approximation


def config_from_hf(hf):
    """GPTConfig from a Hugging Face GPT-2 config.json dict; what our GPT cannot compute is a
    ValueError naming the setting."""
    if hf.get("model_type", "gpt2") != "gpt2":
        raise DataError(f"model_type is {hf.get('model_type')!r}, not 'gpt2'")
    sizes = {}
    for key in ("n_embd", "n_layer", "n_head", "vocab_size", "n_positions"):
        v = hf.get(key, hf.get("n_ctx")) if key == "n_positions" else hf.get(key)
        if isinstance(v, bool) or not isinstance(v, int):
            raise DataError(f"key {key!r} is missing" if v is None else
                            f"{key} must be an integer, got {v!r}")
        sizes[key] = v
    C, L, NH, V, T = sizes.values()
    act = hf.get("activation_function", "gelu_new")
    if act not in _TANH_GELUS + ("gelu",):
        raise DataError(f"activation_function {act!r} is not supported (gelu_new or gelu)")
    if hf.get("n_inner") not in (None, 4 * C):
        raise DataError(f"n_inner {hf['n_inner']} is not supported (our MLP is 4 * n_embd)")
    for flag in ("scale_attn_by_inverse_layer_idx", "add_cross_attention"):
        if hf.get(flag):
            raise DataError(f"{flag}=true is not supported")
    if hf.get("tie_word_embeddings", True) is False:
        raise DataError("tie_word_embeddings=false is not supported (our LM head is wte)")
    return GPTConfig(vocab_size=V, block_size=T, n_layer=L, n_head=NH, n_embd=C, norm="pre",
                     gelu="tanh" if act in _TANH_GELUS else "erf",
                     ln_eps=float(hf.get("layer_norm_epsilon", 1e-5)),
                     attn_scale=None if hf.get("scale_attn_weights", True) else 1.0)


def hf_config(cfg):
    """The config.json Hugging Face's GPT2LMHeadModel needs for our GPTConfig; a config GPT-2
    cannot express (post-LN, no LN, ReZero, residual/attention/logit scalings) is a ValueError."""
    problems = []
    if cfg.norm != "pre":
        problems.append(f"norm={cfg.norm!r} (GPT-2 is pre-LN)")
    if cfg.rezero:
        problems.append("rezero=True")
    if cfg.res_mult != 1.0:
        problems.append(f"res_mult={cfg.res_mult:g}")
    if cfg.logit_scale != 1.0:
        problems.append(f"logit_scale={cfg.logit_scale:g}")
    if cfg.attn_scale is not None and cfg.attn_scale != 1.0:
        problems.append(f"attn_scale={cfg.attn_scale:g} (GPT-2 has 1/sqrt(HS) or 1)")
    if problems:
        raise DataError("this GPT cannot be written as GPT-2: " + ", ".join(problems))
    return {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "vocab_size": cfg.vocab_size, "n_positions": cfg.block_size, "n_embd": cfg.n_embd,
        "n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_inner": None,
        "activation_function": "gelu_new" if cfg.gelu == "tanh" else "gelu",
        "layer_norm_epsilon": cfg.ln_eps, "scale_attn_weights": cfg.attn_scale is None,
        "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "initializer_range": 0.02,
        "tie_word_embeddings": True, "bos_token_id": None, "eos_token_id": None,
    }


# --------------------------------------------------------------------------------------------
# Tensors

def params_from_hf(tensors, cfg):
    """Our GPT parameters (float32) from the tensors of a GPT-2 safetensors file."""
    shapes = gpt.param_shapes(cfg)
    out, unknown = {}, []
    lm_head = None
    for name, x in tensors.items():
        ours = name[len("transformer."):] if name.startswith("transformer.") else name
        if ours == "lm_head.weight":
            lm_head = x
        elif ours.endswith(".attn.bias") or ours.endswith(".attn.masked_bias"):
            continue                                   # causal-mask buffers, not parameters
        elif ours in shapes:
            if tuple(x.shape) != shapes[ours]:
                raise DataError(f"{name} has shape {tuple(x.shape)}, config.json implies {shapes[ours]}")
            out[ours] = np.ascontiguousarray(x, dtype=np.float32)
        else:
            unknown.append(name)
    missing = [n for n in shapes if n not in out]
    if unknown or missing:
        raise DataError("not a GPT-2 checkpoint for this config: "
                         + (f"unknown tensors {', '.join(unknown[:4])}" if unknown else "")
                         + ("; " if unknown and missing else "")
                         + (f"missing {', '.join(missing[:4])}" if missing else ""))
    if lm_head is not None and not np.array_equal(lm_head, out["wte.weight"]):
        raise DataError("lm_head.weight differs from wte.weight; untied heads are not supported")
    return {n: out[n] for n in shapes}


def hf_tensors(params):
    """The tensors save_pretrained writes for GPT2LMHeadModel: "transformer."-prefixed, no
    lm_head (tied to wte), float32."""
    return {f"transformer.{name}": np.ascontiguousarray(p, dtype=np.float32)
            for name, p in params.items()}


# --------------------------------------------------------------------------------------------
# Folders

def load_hf(hf_dir):
    """(GPTConfig, params, config.json dict) from a Hugging Face GPT-2 folder (config.json +
    model.safetensors)."""
    hf, tensors = read_model_folder(hf_dir, "Hugging Face")
    try:
        cfg = config_from_hf(hf)
    except (DataError, ConfigError) as e:              # name the file the setting came from
        raise DataError(f"{Path(hf_dir) / 'config.json'}: {e}") from None
    return cfg, params_from_hf(tensors, cfg), hf


def write_imported_run(out_dir, train, cfg, params, imported_from, tokenizer=None):
    """Write a run folder for imported weights: checkpoint.npz (the parameters at step 0), the
    tokenizer's files, and config.json last (what makes the folder a run). Everything is checked
    before; the folder is locked while it is written, as `train` locks its own (a second import
    or a `train --out` into it is one line naming this process), and what this call made is
    removed again if a write fails (no half-made runs)."""
    from ..training.checkpoint import save_params
    from ..training.runfolder import (check_out_dir, claim_folder, remove_half_made, run_files,
                                      save_tokenizer, write_run_config)
    out = check_out_dir(out_dir)
    lock, made = claim_folder(out, new=True)           # checks again, under the lock
    try:
        save_params(run_files(out).checkpoint, params, step=0)
        save_tokenizer(out, tokenizer)
        write_run_config(out, train, cfg,
                         tokenizer.vocab if getattr(tokenizer, "kind", None) == "char" else None,
                         int(sum(p.size for p in params.values())),
                         tokenizer=tokenizer.record() if tokenizer is not None else None,
                         imported_from=imported_from)
    except BaseException:
        remove_half_made(out, made)
        raise
    finally:
        lock.release()
    return out


def import_gpt2(hf_dir, out_dir):
    """Write a run folder (config.json in the run format of train.py, checkpoint.npz with the
    parameters, the tokenizer files when hf_dir has them) from a Hugging Face GPT-2 folder.
    Returns (GPTConfig, params, tokenizer or None)."""
    from ..training.config import TrainConfig
    cfg, params, hf = load_hf(hf_dir)
    tok = None
    if find_bpe_files(hf_dir) is not None:
        tok = load_bpe(hf_dir)
        check_vocab_size(tok, cfg.vocab_size, f"{hf_dir}")
    src = str(Path(hf_dir).resolve())
    train = TrainConfig(model="gpt", data=f"hf:{src}", n_layer=cfg.n_layer, n_head=cfg.n_head,
                        n_embd=cfg.n_embd, block_size=cfg.block_size, init="gpt2")
    write_imported_run(out_dir, train, cfg, params,
                       {"format": "huggingface-gpt2", "path": src, "config": hf}, tok)
    return cfg, params, tok


def export_gpt2(run_dir, out_dir):
    """Write a run's GPT as a Hugging Face GPT-2 folder (config.json + model.safetensors, and its
    BPE tokenizer files) that GPT2LMHeadModel.from_pretrained loads. Returns the config dict."""
    from ..training.checkpoint import check_finite, load_checkpoint
    from ..training.runfolder import read_run_config, run_files, save_tokenizer
    run_dir, out = Path(run_dir), Path(out_dir)
    saved, train, cfg = read_run_config(run_dir)    # every damage named, with config.json
    if train.model != "gpt":
        raise DataError(f"{run_dir} is not a GPT run; only GPTs can be written as GPT-2")
    hf = hf_config(cfg)
    tok = run_tokenizer(run_dir, saved)
    ckpt = load_checkpoint(run_files(run_dir).checkpoint)
    shapes = gpt.param_shapes(cfg)
    bad = [n for n, s in shapes.items() if n not in ckpt or ckpt[n].shape != s]
    if bad:
        raise DataError(f"{run_dir}/checkpoint.npz does not match its config.json: {', '.join(bad[:3])}")
    check_finite(ckpt, run_files(run_dir).checkpoint, shapes)
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"{out} is a file, not a folder")
    if (out / "model.safetensors").exists():
        raise RunFolderError(f"{out} already holds a model.safetensors; choose another --out")
    write_safetensors(out / "model.safetensors", hf_tensors({n: ckpt[n] for n in shapes}),
                      metadata={"format": "pt"})
    save_tokenizer(out, tok)                           # BPE files (none for characters)
    atomic_write(out / "config.json", (json.dumps(hf, indent=2) + "\n").encode("utf-8"))
    return hf
