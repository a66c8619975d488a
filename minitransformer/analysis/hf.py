"""Hugging Face GPT-2 interop: import a `save_pretrained` folder as a run, export a run as one.

    python cli.py import-gpt2 HF_DIR --out RUN_DIR     # config.json + model.safetensors -> run
    python cli.py export-gpt2 RUN_DIR --out HF_DIR     # run -> config.json + model.safetensors

Our GPT uses GPT-2's names and its Conv1D (in, out) layout (DESIGN.md section 4), so the weights
map one to one: strip the "transformer." prefix that GPT2LMHeadModel adds, drop the causal-mask
buffers older versions saved (h.N.attn.bias, h.N.attn.masked_bias), and check that lm_head.weight,
when present, is wte (GPT-2 ties them; save_pretrained omits it). GPT-2 computes exactly our
pre-LN block with tanh GELU ("gelu_new") and LayerNorm eps 1e-5.

safetensors is read and written here with NumPy alone: the format is 8 bytes of little-endian
header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, and the
raw little-endian bytes. That is smaller than the dependency (a compiled wheel) it would replace,
and it never executes anything from the file. Reading checks every offset against the file.
"""
import json
import math
from pathlib import Path
import struct

import numpy as np

from ..engine.config import GPTConfig
from ..engine import gpt
from ..errors import DataError, NotFound, RunFolderError
from ..training.runfolder import atomic_write

# --------------------------------------------------------------------------------------------
# safetensors

_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
           "I8": "i1", "U8": "u1", "BOOL": "?"}                    # BF16 is converted below
_CODES = {np.dtype(v).newbyteorder("<") if v not in ("i1", "u1", "?") else np.dtype(v): k
          for k, v in _DTYPES.items()}
MAX_HEADER = 100 * 1024 * 1024     # the safetensors library's own limit


def read_safetensors(path):
    """{name: array} from a .safetensors file (float16 and bfloat16 are widened to float32),
    and the header's __metadata__ dict. A malformed file is a ValueError naming it."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 8:
        raise DataError(f"{path} is not a safetensors file (shorter than 8 bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER or 8 + n > len(data):
        raise DataError(f"{path} is not a safetensors file (header length {n} does not fit)")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path} has a damaged safetensors header ({e})") from None
    if not isinstance(header, dict):
        raise DataError(f"{path} has a damaged safetensors header (not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    body = memoryview(data)[8 + n:]
    tensors, spans = {}, []
    for name, info in header.items():
        try:
            code, shape, (begin, end) = info["dtype"], [int(s) for s in info["shape"]], info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{path}: tensor {name!r} has a damaged header entry") from None
        itemsize = 2 if code == "BF16" else np.dtype(_DTYPES.get(code, "V1")).itemsize
        if code not in _DTYPES and code != "BF16":
            raise DataError(f"{path}: tensor {name!r} has unsupported dtype {code}")
        if not (0 <= begin <= end <= len(body)) or end - begin != itemsize * math.prod(shape):
            raise DataError(f"{path}: tensor {name!r} has offsets [{begin}, {end}) that do not "
                             f"match its shape {shape} or the file")
        raw = body[begin:end]
        if code == "BF16":                              # bfloat16 = the top 16 bits of a float32
            x = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            x = np.frombuffer(raw, _DTYPES[code])
            if code == "F16":
                x = x.astype(np.float32)
        tensors[name] = x.reshape(shape).copy()
        spans.append((begin, end))
    spans.sort()
    if any(a[1] > b[0] for a, b in zip(spans, spans[1:])):
        raise DataError(f"{path}: tensors overlap in the file")
    return tensors, metadata


def write_safetensors(path, tensors, metadata=None):
    """Write {name: array} as safetensors (tensors in name order, header padded with spaces so
    the data starts 8-byte aligned, as the safetensors library does), atomically."""
    header, offset, chunks = {}, 0, []
    for name in sorted(tensors):
        x = np.ascontiguousarray(tensors[name])
        x = x.astype(x.dtype.newbyteorder("<")) if x.dtype.byteorder == ">" else x
        code = _CODES.get(x.dtype)
        if code is None:
            raise DataError(f"cannot write {name}: dtype {x.dtype} has no safetensors code")
        b = x.tobytes()
        header[name] = {"dtype": code, "shape": list(x.shape), "data_offsets": [offset, offset + len(b)]}
        chunks.append(b)
        offset += len(b)
    if metadata:
        header = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}, **header}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, struct.pack("<Q", len(text)) + text + b"".join(chunks))


# --------------------------------------------------------------------------------------------
# GPT-2 config <-> GPTConfig

_TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")   # the same tanh approximation


def config_from_hf(hf):
    """GPTConfig from a Hugging Face GPT-2 config.json dict; what our GPT cannot compute is a
    ValueError naming the setting."""
    if hf.get("model_type", "gpt2") != "gpt2":
        raise DataError(f"model_type is {hf.get('model_type')!r}, not 'gpt2'")
    try:
        C, L, NH = int(hf["n_embd"]), int(hf["n_layer"]), int(hf["n_head"])
        V, T = int(hf["vocab_size"]), int(hf.get("n_positions", hf.get("n_ctx")))
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"GPT-2 config.json lacks or mangles {e}") from None
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
    """(GPTConfig, params) from a Hugging Face GPT-2 folder (config.json + model.safetensors)."""
    hf_dir = Path(hf_dir)
    if not hf_dir.is_dir():
        raise NotFound(f"Hugging Face folder not found: {hf_dir}")
    cfg_path, st_path = hf_dir / "config.json", hf_dir / "model.safetensors"
    for p in (cfg_path, st_path):
        if not p.is_file():
            raise NotFound(f"{hf_dir} has no {p.name} (sharded or .bin checkpoints are "
                                    f"not supported)")
    try:
        hf = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{cfg_path} is not valid JSON ({e})") from None
    cfg = config_from_hf(hf)
    tensors, _ = read_safetensors(st_path)
    return cfg, params_from_hf(tensors, cfg), hf


def import_gpt2(hf_dir, out_dir):
    """Write a run folder (config.json in the run format of train.py, checkpoint.npz with the
    parameters) from a Hugging Face GPT-2 folder. Returns (GPTConfig, params). The run has no
    vocabulary (GPT-2's BPE tokenizer is not part of this project): use it to inspect, or to
    fine-tune on token ids."""
    from ..training.config import TrainConfig
    from ..training.runfolder import check_out_dir, run_files, save_params, write_run_config
    cfg, params, hf = load_hf(hf_dir)
    out = check_out_dir(out_dir)
    train = TrainConfig(model="gpt", data=f"hf:{Path(hf_dir).resolve()}", n_layer=cfg.n_layer,
                        n_head=cfg.n_head, n_embd=cfg.n_embd, block_size=cfg.block_size,
                        init="gpt2")
    out.mkdir(parents=True, exist_ok=True)
    save_params(run_files(out).checkpoint, params, step=0)
    write_run_config(out, train, cfg, None, int(sum(p.size for p in params.values())),
                     imported_from={"format": "huggingface-gpt2",
                                    "path": str(Path(hf_dir).resolve()), "config": hf})
    return cfg, params


def export_gpt2(run_dir, out_dir):
    """Write a run's GPT as a Hugging Face GPT-2 folder (config.json + model.safetensors) that
    GPT2LMHeadModel.from_pretrained loads. Returns the Hugging Face config dict."""
    from ..training.runfolder import load_checkpoint, read_saved_config, run_files
    run_dir, out = Path(run_dir), Path(out_dir)
    saved = read_saved_config(run_dir)
    if saved.get("train", {}).get("model", "gpt") != "gpt" or "vocab_size" not in saved.get("model", {}):
        raise DataError(f"{run_dir} is not a GPT run; only GPTs can be written as GPT-2")
    cfg = GPTConfig.from_dict(saved["model"])
    hf = hf_config(cfg)
    ckpt = load_checkpoint(run_files(run_dir).checkpoint)
    shapes = gpt.param_shapes(cfg)
    bad = [n for n, s in shapes.items() if n not in ckpt or ckpt[n].shape != s]
    if bad:
        raise DataError(f"{run_dir}/checkpoint.npz does not match its config.json: {', '.join(bad[:3])}")
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"{out} is a file, not a folder")
    if (out / "model.safetensors").exists():
        raise RunFolderError(f"{out} already holds a model.safetensors; choose another --out")
    write_safetensors(out / "model.safetensors", hf_tensors({n: ckpt[n] for n in shapes}),
                      metadata={"format": "pt"})
    atomic_write(out / "config.json", (json.dumps(hf, indent=2) + "\n").encode("utf-8"))
    return hf
