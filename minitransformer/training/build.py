"""What a run is built from, before any file is written: its data, its model config (adapted by
the init scheme), its model at step 0, its optimizer and its random streams.

    data = resolve_data(cfg)
    mcfg, warnings = model_config(cfg, data)
    model = make_model(cfg, mcfg)                 # default_rng(cfg.init_seed) draws the weights
    opt = make_optimizer(cfg, mcfg, model.params)
    streams = make_streams(cfg.data_seed)         # {"data", "eval", "sample"} generators
    x, y = get_batch(cfg, data, "train", streams["data"])

Randomness (four explicit generators): the initial weights come from
np.random.default_rng(init_seed), so build_model(mcfg, seed=init_seed) reproduces them; training
batches, evaluation batches and sampling use the three children of
np.random.SeedSequence(data_seed).spawn(3). A checkpoint holds the state of the three streams,
which is what makes --resume bit-identical (training/loop.py).
"""
from dataclasses import fields
from pathlib import Path

import numpy as np

from .. import build_model
from .. import init as _init
from ..engine.config import GPTConfig, ViTConfig
from ..engine.optim import AdamW, SGD
from ..measure.sharpness import sharpness_record
from .data import (load_dataset, get_text_batch, get_image_batch, parse_classes, subset_images,
                   subset_text, read_text)
from .tokenizer import choose_tokenizer, bpe_text

REPO_DATA = Path(__file__).resolve().parents[2] / "data"   # the bundled data sets


def resolve_data(cfg, recorded=None, source=None):
    """load_dataset() for cfg, restricted by cfg.train_limit and cfg.classes: a relative text
    path that does not exist here is also looked up next to the package (so the bundled data/
    works from any directory). A GPT's text is characters (TextDataset) or BPE tokens
    (tokenizer.TokenDataset): the BPE recorded by the run (resume, inspection), or by the
    --init-from run (source), or one learned from the training split (tokenizer.choose_tokenizer;
    runfolder.recorded_bpe reads them)."""
    if not cfg.kind.on_text:
        classes = parse_classes(cfg.classes) if cfg.classes is not None else None
        return subset_images(load_dataset(cfg.model, cfg.data, image_data_dir()),
                             cfg.train_limit, classes)
    path = data_path(cfg.data)
    tok = choose_tokenizer(cfg, recorded, source)
    if tok is None and cfg.tokenizer != "bpe":
        return subset_text(load_dataset(cfg.model, str(path)), cfg.train_limit)
    return bpe_text(read_text(path), tok, cfg.vocab_size, cfg.train_limit)


def image_data_dir():
    """./data when it holds image data, else the bundled data/."""
    data_dir = Path("data")
    if not any(data_dir.glob("t10k-*")) and not (data_dir / "digits.csv.gz").exists():
        return REPO_DATA
    return data_dir


def data_files(cfg):
    """The files a run's data is read from (what training/preflight.py hashes)."""
    if cfg.kind.on_text:
        return [data_path(cfg.data)]
    names = {"mnist": ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"],
             "digits": ["digits.csv.gz"]}[cfg.data]
    return [image_data_dir() / n for n in names]


def data_path(data):
    """The text file a GPT's --data names: as given, or in the bundled data/ when a relative
    path does not exist from here."""
    path = Path(data)
    if not path.exists() and not path.is_absolute():
        bundled = REPO_DATA.parent / path
        if bundled.exists():
            return bundled
    return path


def model_config(cfg, data):
    """GPTConfig/ViTConfig from the settings and the data, adapted by the init scheme
    (init.prepare_config). Returns (model_cfg, warnings)."""
    if cfg.kind.on_text:
        data.check_block(cfg.block_size)
        mcfg = GPTConfig(vocab_size=data.vocab_size, block_size=cfg.block_size,
                         n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd,
                         norm=cfg.norm, rezero=cfg.rezero)
    else:
        mcfg = ViTConfig(image_size=data.image_size, patch_size=cfg.patch_size,
                         in_channels=data.in_channels, n_classes=data.n_classes,
                         n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd,
                         norm=cfg.norm, pool=cfg.pool, rezero=cfg.rezero)
    explicit = tuple(n for n in cfg.explicit if n in {f.name for f in fields(mcfg)})
    return _init.prepare_config(mcfg, cfg.init_name, explicit, init_options(cfg))


def init_options(cfg):
    return _init.InitOptions(init_std=cfg.init_std, init_scale=cfg.init_scale,
                             base_width=cfg.base_width, impulse_k=cfg.impulse_k)


def make_model(cfg, mcfg):
    """The model with its initial parameters (scheme cfg.init_name from
    default_rng(cfg.init_seed))."""
    return build_model(mcfg, init=cfg.init_name, seed=cfg.init_seed, dtype=cfg.dtype,
                       **vars(init_options(cfg)))


def make_optimizer(cfg, mcfg, params):
    """AdamW or SGD over params, with the init scheme's per-tensor LR multipliers (muP)."""
    mult = _init.lr_multipliers(mcfg, cfg.init_name, params, init_options(cfg))
    if cfg.optimizer == "adamw":
        return AdamW(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                     weight_decay=cfg.weight_decay, lr_mult=mult)
    return SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
               lr_mult=mult)


def make_streams(data_seed):
    """Generators for training batches, evaluation batches and sampling (init has its own)."""
    data_ss, eval_ss, sample_ss = np.random.SeedSequence(data_seed).spawn(3)
    return {"data": np.random.default_rng(data_ss), "eval": np.random.default_rng(eval_ss),
            "sample": np.random.default_rng(sample_ss)}


def sharpness_batch(cfg, data):
    """The fixed training batch --sharpness-every probes on: drawn from a fourth child of
    SeedSequence(data_seed), so probing never moves the data stream."""
    rng = np.random.default_rng(np.random.SeedSequence(cfg.data_seed).spawn(4)[3])
    return get_batch(cfg, data, "train", rng)


def sharpness_line(cfg, model, batch, step, lr, opt):
    """The sharpness.jsonl record `train --sharpness-every` writes after step `step` (replay
    writes the same, bit for bit): Lanczos (~5x fewer Hessian products than power iteration) on
    the fixed probe batch (sharpness_batch), and the Adam-preconditioned value for AdamW."""
    return sharpness_record(model, *batch, step, lr, opt if cfg.optimizer == "adamw" else None,
                            method="lanczos")


def get_batch(cfg, data, split, rng):
    """(x, y) of one batch: windows of text (GPT) or images and labels (ViT)."""
    if cfg.kind.on_text:
        ids = data.train if split == "train" else data.val
        return get_text_batch(ids, cfg.batch_size, cfg.block_size, rng)
    if split == "train":
        return get_image_batch(data.train_x, data.train_y, cfg.batch_size, rng)
    return get_image_batch(data.val_x, data.val_y, cfg.batch_size, rng)
