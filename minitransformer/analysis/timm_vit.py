"""timm ViT interop: import a timm checkpoint folder as a run, export a ViT run as one.

    python cli.py import-vit DIR --out RUN [--image-size S] [--in-channels K]
    python cli.py export-vit RUN --out DIR

DIR is what timm's save_for_hf / push_to_hf_hub writes (what `huggingface-cli download
timm/<model>` fetches): model.safetensors with timm's state_dict and config.json with
"architecture", "num_classes", "global_pool", "pretrained_cfg" and, since timm 1.0, the
"model_args" that rebuild the model. A config.json without model_args must name a plain ViT,
vit_{tiny|small|base|large|huge}_patch{P}_{S}, whose sizes are timm's (ARCH_SIZES).

Our ViT is timm's VisionTransformer with its defaults (pre-LN blocks, exact GELU, LayerNorm eps
1e-6, learned absolute positions added to [CLS, patches]) and uses timm's names, so the mapping is:
  patch_embed.proj.weight  (C, Cin, P, P) conv -> patch_embed.weight (P*P*Cin, C): our patch
                           rows are flattened (row, col, channel), so
                           W[(i*P + j)*Cin + c, o] = w[o, c, i, j]
  cls_token (1, 1, C) -> (C,);  pos_embed (1, N', C) -> (N', C)
  every nn.Linear weight (out, in) -> transposed, (in, out): attn.qkv, attn.proj, mlp.fc1/fc2, head
global_pool "token" is our pool="cls"; "avg" without a class token and with fc_norm=False is our
pool="mean" (the final norm before the mean). What else timm can build (layer scale, register
tokens, pre-norm, fc_norm, qk-norm, a conv stem, relative or rotary positions, attention pooling,
another MLP ratio or activation) is refused in one line naming the setting or tensor.

Another resolution or channel count, as timm does when it loads a checkpoint into a model built
for other inputs: positions on the patch grid are resampled by antialiased bicubic interpolation
(timm.layers.resample_abs_pos_embed: torch's interpolate(mode="bicubic", antialias=True), PIL's
filter with a = -0.5) while the CLS position is kept; patch filters follow timm's
adapt_input_conv: for 1 channel the source channels are summed (a gray image then embeds as the
same image copied into every channel), otherwise repeated and scaled by Cin_old / Cin_new.
"""
import json
import math
from pathlib import Path
import re

import numpy as np

from ..engine.config import ViTConfig
from ..engine import vit
from ..errors import ConfigError, DataError, RunFolderError
from .tensorfile import write_safetensors, read_model_folder

# timm's plain ViT sizes: name -> (embed_dim, depth, num_heads)
ARCH_SIZES = {"tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12),
              "large": (1024, 24, 16), "huge": (1280, 32, 16)}
PLAIN_ARCH = re.compile(r"vit_(tiny|small|base|large|huge)_patch(\d+)_(\d+)")

# model_args our ViT computes only at this value (the value timm uses by default)
FIXED_ARGS = {"mlp_ratio": 4.0, "qk_norm": False, "init_values": None, "no_embed_class": False,
              "reg_tokens": 0, "pre_norm": False, "final_norm": True, "pos_embed": "learn",
              "dynamic_img_pad": False, "proj_bias": True, "scale_attn_norm": False,
              "scale_mlp_norm": False, "pool_include_prefix": False, "embed_norm_layer": None,
              "act_layer": None, "norm_layer": None, "embed_layer": None, "block_fn": None,
              "mlp_layer": None, "attn_layer": None}
ACT_OK = ("gelu",)
NORM_OK = ("layernorm",)
# model_args that do not change what the model computes at inference
IGNORED_ARGS = ("drop_rate", "pos_drop_rate", "patch_drop_rate", "proj_drop_rate",
                "attn_drop_rate", "drop_path_rate", "weight_init", "fix_init",
                "dynamic_img_size", "qkv_bias", "class_token", "global_pool", "fc_norm",
                "img_size", "patch_size", "in_chans", "num_classes", "embed_dim", "depth",
                "num_heads")
# tensor-name fragments of timm options we cannot compute, and what they are
FOREIGN_TENSORS = (("patch_embed.backbone", "a conv stem (hybrid ViT)"),
                   ("relative_position", "relative positions"), ("rope", "rotary positions"),
                   (".ls1.", "layer scale"), (".ls2.", "layer scale"),
                   ("reg_token", "register tokens"),
                   ("norm_pre.", "a norm before the blocks (pre_norm)"),
                   ("fc_norm.", "a norm after pooling (fc_norm)"), ("q_norm", "qk-norm"),
                   ("k_norm", "qk-norm"), ("attn_pool.", "attention pooling"))


# --------------------------------------------------------------------------------------------
# config.json <-> ViTConfig

def _square(value, what):
    v = value if isinstance(value, (list, tuple)) else [value, value]
    if len(v) != 2 or v[0] != v[1]:
        raise DataError(f"{what} {value} is not square; this ViT takes square images")
    return int(v[0])


def config_from_timm(tc):
    """(ViTConfig, args used) from a timm config.json dict. What our ViT cannot compute is a
    DataError naming the architecture, argument or value."""
    arch = tc.get("architecture")
    if not isinstance(arch, str):
        raise DataError("config.json has no \"architecture\": not a timm model folder")
    args = dict(tc.get("model_args") or {})
    plain = PLAIN_ARCH.fullmatch(arch)
    if plain:
        C, L, NH = ARCH_SIZES[plain.group(1)]
        base = dict(embed_dim=C, depth=L, num_heads=NH, patch_size=int(plain.group(2)),
                    img_size=int(plain.group(3)))
    elif arch.startswith("vit_") and {"embed_dim", "depth", "num_heads", "patch_size"} <= set(args):
        base = {}
    else:
        raise DataError(f"architecture {arch!r} is not a plain timm ViT "
                        f"(vit_<size>_patch<P>_<S>) and config.json has no model_args that "
                        f"rebuild it; this ViT cannot express it")
    # as timm's builder: the model's arguments, else pretrained_cfg's input size, else the name's
    pcfg = tc.get("pretrained_cfg") or {}
    size = base.pop("img_size", 224)
    input_size = pcfg.get("input_size") or [3, size, size]
    base.update(img_size=list(input_size[1:]), in_chans=input_size[0],
                num_classes=tc.get("num_classes", pcfg.get("num_classes", 1000)),
                global_pool=tc.get("global_pool", "token"))
    base.update(args)
    for key, value in base.items():
        if key in IGNORED_ARGS:
            continue
        if key not in FIXED_ARGS:
            raise DataError(f"model_args.{key}={value!r} is a timm option this ViT cannot express")
        ok = (value == FIXED_ARGS[key] or (key == "act_layer" and value in ACT_OK)
              or (key == "norm_layer" and value in NORM_OK))
        if not ok:
            raise DataError(f"model_args.{key}={value!r} is not supported (this ViT has "
                            f"{key}={FIXED_ARGS[key]!r})")
    pool, cls = base.get("global_pool", "token"), base.get("class_token", True)
    if pool == "token" and cls:
        ours = "cls"
    elif pool == "avg" and not cls and base.get("fc_norm") is False:
        ours = "mean"
    else:
        raise DataError(f"global_pool={pool!r} with class_token={cls} and "
                        f"fc_norm={base.get('fc_norm')!r} is not supported (token pooling with a "
                        f"class token, or avg without one and fc_norm=false)")
    if int(base["num_classes"]) <= 0:
        raise DataError("num_classes=0 (no classifier head) is not supported")
    cfg = ViTConfig(image_size=_square(base["img_size"], "img_size"),
                    patch_size=_square(base["patch_size"], "patch_size"),
                    in_channels=int(base["in_chans"]), n_classes=int(base["num_classes"]),
                    n_layer=int(base["depth"]), n_head=int(base["num_heads"]),
                    n_embd=int(base["embed_dim"]), norm="pre", pool=ours, gelu="erf",
                    ln_eps=1e-6)
    return cfg, base


def timm_config(cfg, source=None):
    """The config.json timm's create_model needs for our ViTConfig (source: the config.json it
    was imported from, whose architecture and pretrained_cfg are kept). What timm's
    VisionTransformer cannot express is a DataError."""
    problems = []
    if cfg.norm != "pre":
        problems.append(f"norm={cfg.norm!r} (timm's ViT is pre-LN)")
    if cfg.rezero:
        problems.append("rezero=True")
    for name in ("res_mult", "logit_scale"):
        if getattr(cfg, name) != 1.0:
            problems.append(f"{name}={getattr(cfg, name):g}")
    if cfg.attn_scale is not None:
        problems.append(f"attn_scale={cfg.attn_scale:g}")
    if cfg.gelu != "erf":
        problems.append("gelu='tanh' (timm's ViT uses exact GELU)")
    if cfg.ln_eps != 1e-6:
        problems.append(f"ln_eps={cfg.ln_eps:g} (timm's ViT uses 1e-6)")
    if problems:
        raise DataError("this ViT cannot be written as a timm ViT: " + ", ".join(problems))
    source = source or {}
    pool = "token" if cfg.pool == "cls" else "avg"
    args = dict(img_size=[cfg.image_size, cfg.image_size], patch_size=cfg.patch_size,
                embed_dim=cfg.n_embd, depth=cfg.n_layer, num_heads=cfg.n_head,
                num_classes=cfg.n_classes, in_chans=cfg.in_channels, global_pool=pool)
    if cfg.pool == "mean":
        args.update(class_token=False, fc_norm=False)
    C = cfg.in_channels
    pcfg = dict(source.get("pretrained_cfg") or {"mean": [0.0] * C, "std": [1.0] * C,
                                                  "interpolation": "bicubic", "crop_pct": 1.0})
    for key in ("mean", "std"):                         # per channel: follow the channel count
        if len(pcfg.get(key) or ()) != C:
            pcfg[key] = [float(np.mean(pcfg.get(key) or [0.0 if key == "mean" else 1.0]))] * C
    pcfg.update(input_size=[C, cfg.image_size, cfg.image_size], num_classes=cfg.n_classes,
                fixed_input_size=True, first_conv="patch_embed.proj", classifier="head",
                pool_size=None)
    return {"architecture": source.get("architecture", "vit_base_patch16_224"),
            "num_classes": cfg.n_classes, "num_features": cfg.n_embd, "global_pool": pool,
            "model_args": args, "pretrained_cfg": pcfg}


# --------------------------------------------------------------------------------------------
# Tensors

def _check_foreign(tensors):
    for name in tensors:
        for fragment, what in FOREIGN_TENSORS:
            if fragment in name:
                raise DataError(f"tensor {name} belongs to {what}, which this ViT cannot express")


def params_from_timm(tensors, cfg):
    """Our ViT parameters (float32, (in, out) weights) from a timm state_dict of cfg's shape."""
    _check_foreign(tensors)
    C, P, Cin = cfg.n_embd, cfg.patch_size, cfg.in_channels
    out = {}
    for name, x in tensors.items():
        if name == "patch_embed.proj.weight":
            if x.shape != (C, Cin, P, P):
                raise DataError(f"{name} has shape {x.shape}, config.json implies {(C, Cin, P, P)}")
            out["patch_embed.weight"] = x.transpose(2, 3, 1, 0).reshape(P * P * Cin, C)
        elif name == "patch_embed.proj.bias":
            out["patch_embed.bias"] = x
        elif name in ("cls_token", "pos_embed"):
            out[name] = x.reshape(x.shape[-2:] if name == "pos_embed" else x.shape[-1:])
        elif x.ndim == 2:                                # nn.Linear (out, in) -> (in, out)
            out[name] = x.T
        else:
            out[name] = x
    shapes = vit.param_shapes(cfg)
    unknown = [n for n in out if n not in shapes]
    missing = [n for n in shapes if n not in out and not n.endswith("attn.qkv.bias")]
    if unknown or missing:
        raise DataError("not a timm ViT checkpoint for this config.json: "
                        + "; ".join(filter(None, [
                            f"unknown tensors {', '.join(unknown[:4])}" if unknown else "",
                            f"missing {', '.join(missing[:4])}" if missing else ""])))
    for name, shape in shapes.items():
        if name not in out:                              # qkv_bias=False: a zero bias is exact
            out[name] = np.zeros(shape, np.float32)
        if out[name].shape != shape:
            raise DataError(f"{name} has shape {out[name].shape}, config.json implies {shape}")
    return {n: np.ascontiguousarray(out[n], dtype=np.float32) for n in shapes}


def timm_tensors(params, cfg):
    """timm's state_dict (as save_for_hf writes it) for our ViT parameters."""
    C, P, Cin = cfg.n_embd, cfg.patch_size, cfg.in_channels
    out = {}
    for name, x in params.items():
        if name == "patch_embed.weight":               # (P*P*Cin, C) -> (C, Cin, P, P)
            out["patch_embed.proj.weight"] = x.reshape(P, P, Cin, C).transpose(3, 2, 0, 1)
        elif name == "patch_embed.bias":
            out["patch_embed.proj.bias"] = x
        elif name == "cls_token":
            out[name] = x.reshape(1, 1, C)
        elif name == "pos_embed":
            out[name] = x[None]
        elif x.ndim == 2:
            out[name] = x.T
        else:
            out[name] = x
    return {n: np.ascontiguousarray(x, dtype=np.float32) for n, x in out.items()}


# --------------------------------------------------------------------------------------------
# Another resolution or channel count

def _cubic(x, a=-0.5):
    """Keys' cubic convolution kernel (PIL's and torch's antialiased bicubic use a = -0.5)."""
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x < 1, near, np.where(x < 2, far, 0.0))


def resize_weights(n_in, n_out):
    """(n_out, n_in) matrix of antialiased bicubic resampling along one axis, as torch's
    interpolate(mode="bicubic", antialias=True, align_corners=False) computes it: output i is
    centred at (i + 0.5) * s in input coordinates (s = n_in / n_out); when shrinking (s > 1) the
    kernel is stretched by s so it averages over the inputs it covers; taps outside the input are
    dropped and each row renormalized to sum to 1."""
    s = n_in / n_out
    support = 2.0 * max(s, 1.0)                       # bicubic reaches 2 pixels each side
    inv = 1.0 / s if s >= 1.0 else 1.0
    W = np.zeros((n_out, n_in))
    for i in range(n_out):
        center = s * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), n_in)
        j = np.arange(lo, hi)
        w = _cubic((j - center + 0.5) * inv)
        W[i, lo:hi] = w / w.sum()
    return W


def resample_positions(pos, new_grid, n_prefix=1):
    """pos (n_prefix + G*G, C) -> (n_prefix + new_grid**2, C): the grid part resized by
    antialiased bicubic interpolation, the prefix (CLS) rows kept (timm's
    resample_abs_pos_embed). Computed in float64, returned in pos's dtype."""
    prefix, grid = pos[:n_prefix], pos[n_prefix:]
    G = math.isqrt(len(grid))
    if G * G != len(grid):
        raise DataError(f"pos_embed has {len(grid)} grid positions, not a square grid")
    if G == new_grid:
        return pos.copy()
    Wr = resize_weights(G, new_grid)                   # (G', G)
    g = grid.reshape(G, G, -1).astype(np.float64)      # (G, G, C) rows, cols, channels
    out = np.einsum("ah,hwc,bw->abc", Wr, g, Wr)       # (G', G', C)
    return np.concatenate([prefix, out.reshape(new_grid * new_grid, -1).astype(pos.dtype)])


def adapt_channels(w, P, c_old, c_new):
    """Patch filters (P*P*c_old, C) -> (P*P*c_new, C) as timm's adapt_input_conv: one channel
    sums the old ones; more repeat them cyclically, scaled by c_old / c_new."""
    if c_new == c_old:
        return w.copy()
    w = w.reshape(P, P, c_old, -1)                     # (row, col, channel, C)
    if c_new == 1:
        out = w.sum(axis=2, keepdims=True)
    else:
        reps = -(-c_new // c_old)
        out = np.concatenate([w] * reps, axis=2)[:, :, :c_new] * (c_old / c_new)
    return out.reshape(P * P * c_new, -1).astype(w.dtype)


def adapt(cfg, params, image_size=None, in_channels=None):
    """(ViTConfig, params) for another image size and/or channel count (see the docstring)."""
    size = cfg.image_size if image_size is None else image_size
    chans = cfg.in_channels if in_channels is None else in_channels
    for flag, v in (("--image-size", size), ("--in-channels", chans)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ConfigError(f"{flag} must be a positive integer, got {v!r}")
    if size % cfg.patch_size:
        raise ConfigError(f"--image-size {size} is not a multiple of the patch size "
                          f"{cfg.patch_size}")
    new = ViTConfig(**dict(cfg.to_dict(), image_size=size, in_channels=chans))
    out = dict(params)
    n_prefix = 1 if cfg.pool == "cls" else 0
    out["pos_embed"] = resample_positions(params["pos_embed"], size // cfg.patch_size, n_prefix)
    out["patch_embed.weight"] = adapt_channels(params["patch_embed.weight"], cfg.patch_size,
                                               cfg.in_channels, chans)
    return new, out


# --------------------------------------------------------------------------------------------
# Folders

def load_timm(timm_dir):
    """(ViTConfig, params, config.json dict) from a timm folder (config.json +
    model.safetensors)."""
    tc, tensors = read_model_folder(timm_dir, "timm")
    cfg, _ = config_from_timm(tc)
    return cfg, params_from_timm(tensors, cfg), tc


def import_vit(timm_dir, out_dir, image_size=None, in_channels=None):
    """Write a run folder from a timm ViT folder, adapted to image_size / in_channels when
    given. Returns (ViTConfig, params)."""
    from ..training.config import TrainConfig
    from .hf import write_imported_run
    cfg, params, tc = load_timm(timm_dir)
    cfg, params = adapt(cfg, params, image_size, in_channels)
    src = str(Path(timm_dir).resolve())
    # data: the default image set; it is not what the weights were trained on (imported_from is)
    train = TrainConfig.for_model(model="vit", n_layer=cfg.n_layer, n_head=cfg.n_head,
                                  n_embd=cfg.n_embd, patch_size=cfg.patch_size, pool=cfg.pool,
                                  init="vit")
    write_imported_run(out_dir, train, cfg, params, {"format": "timm-vit", "path": src,
                                                     "config": tc})
    return cfg, params


def export_vit(run_dir, out_dir):
    """Write a ViT run as a timm folder (config.json + model.safetensors) that
    timm.create_model("local-dir:DIR", pretrained=True) loads. Returns the config dict."""
    from ..training.checkpoint import load_checkpoint
    from ..training.runfolder import read_saved_config, run_files, atomic_write
    run_dir, out = Path(run_dir), Path(out_dir)
    saved = read_saved_config(run_dir)
    if saved.get("train", {}).get("model") != "vit":
        raise DataError(f"{run_dir} is not a ViT run; only ViTs can be written for timm")
    cfg = ViTConfig.from_dict(saved["model"])
    source = (saved.get("imported_from") or {}).get("config")
    tc = timm_config(cfg, source if isinstance(source, dict) else None)
    ckpt = load_checkpoint(run_files(run_dir).checkpoint)
    shapes = vit.param_shapes(cfg)
    bad = [n for n, s in shapes.items() if n not in ckpt or ckpt[n].shape != s]
    if bad:
        raise DataError(f"{run_dir}/checkpoint.npz does not match its config.json: "
                        f"{', '.join(bad[:3])}")
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"{out} is a file, not a folder")
    if (out / "model.safetensors").exists():
        raise RunFolderError(f"{out} already holds a model.safetensors; choose another --out")
    write_safetensors(out / "model.safetensors", timm_tensors({n: ckpt[n] for n in shapes}, cfg))
    atomic_write(out / "config.json", (json.dumps(tc, indent=2) + "\n").encode("utf-8"))
    return tc
