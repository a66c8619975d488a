"""What the `inspect` commands look at: a trained run, one checkpoint, or a model at init.

    snap = load_snapshot("runs/demo")                   # a run folder: its checkpoint.npz
    snap = load_snapshot("runs/demo/checkpoint.npz")    # a checkpoint next to its config.json
    snap = fresh_snapshot("gpt", init="gpt2", seed=0)   # the default model at step 0, no optimizer
    x, y = snap.batch(seed=0)                           # one fixed, seeded training batch
    m64 = snap.model_as("float64")                      # a float64 copy (Hessians, finite differences)
    m0 = snap.init_model()                              # the run's weights at step 0, rebuilt

A checkpoint alone does not say how many heads its model has, so a checkpoint is read together
with the config.json of its folder (docs/design.md#training-cli-and-run-folder). A fresh snapshot is built exactly as
`python cli.py train --model M --init NAME --seed S` would build it, so its data and batches are
the training run's.
"""
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..engine.kinds import kind_of
from ..training.build import get_batch, make_model, make_optimizer, model_config, resolve_data
from ..training.config import TrainConfig
from ..training.checkpoint import check_finite, load_checkpoint, restore_params
from ..training.runfolder import read_run_config, run_files
from ..training.tokenizer import CharTokenizer, run_tokenizer
from ..errors import ConfigError, NotFound, RunFolderError


@dataclass
class Snapshot:
    cfg: object                 # train.TrainConfig of the run (or of the fresh model)
    model: object               # GPT or ViT with the snapshot's parameters, in the run's dtype
    ckpt: dict                  # every array of the checkpoint (params, opt.*, step, ...); {} at init
    step: int                   # optimizer updates made (0 at init)
    source: str                 # what was loaded, for messages and JSON output
    run_dir: Path = None        # the run folder, when there is one
    vocab: str = None           # GPT: the run's characters
    _data: object = field(default=None, repr=False)

    def tokenizer(self):
        """GPT: the run's tokenizer (training/tokenizer.py), recorded in its folder, else the
        characters of vocab; None for a ViT or a GPT that reads token ids only."""
        if self.run_dir is not None and run_files(self.run_dir).config.is_file():
            saved, _, _ = read_run_config(self.run_dir, model_config=False)
            tok = run_tokenizer(self.run_dir, saved)
            if tok is not None:
                return tok
        return CharTokenizer(self.vocab) if self.vocab is not None else None

    def data(self):
        """The run's data set (loaded once)."""
        if self._data is None:
            tok = self.tokenizer() if kind_of(self.model).inputs == "tokens" else None
            recorded = tok if getattr(tok, "kind", None) == "bpe" else None
            self._data = resolve_data(self.cfg, recorded=recorded)
        return self._data

    def batch(self, seed=0, batch_size=None, split="train"):
        """(x, y): batch_size (default: the run's) examples drawn from default_rng(seed)."""
        cfg = self.cfg
        if batch_size is not None:
            if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
                raise ConfigError(f"batch size must be a positive integer, got {batch_size!r}")
            cfg = _replace_cfg(cfg, batch_size=int(batch_size))
        return get_batch(cfg, self.data(), split, np.random.default_rng(seed))

    def model_as(self, dtype):
        """A new model of the same class and config with copies of the parameters in dtype."""
        params = {k: np.array(v, dtype=dtype) for k, v in self.model.params.items()}
        return type(self.model)(self.model.cfg, params)

    def init_model(self, dtype=None):
        """The model as it was before the first update: rebuilt from config.json's init and seed
        (and its --init-from source, which must still exist)."""
        cfg = self.cfg
        model = make_model(cfg, self.model.cfg)
        if cfg.init_from is not None:
            from ..training.transfer import apply_init_from
            apply_init_from(model, cfg.init_from, init=cfg.init_name, seed=cfg.init_seed,
                            reinit_head=cfg.reinit_head, allow_partial=cfg.allow_partial,
                            vocab=self.vocab)
        if dtype is not None:
            model = type(model)(model.cfg, {k: np.array(v, dtype=dtype)
                                            for k, v in model.params.items()})
        return model

    def lr(self):
        """The learning rate of the next update (step `self.step`, 0-based), before any per-tensor
        multiplier (muP)."""
        return float(self.cfg.lr_at(self.step))

    def lr_mult(self):
        """{name: LR multiplier} of the run's optimizer (1 everywhere except under muP)."""
        return make_optimizer(self.cfg, self.model.cfg, self.model.params).lr_mult

    def adam_state(self):
        """(m, v, t) dicts of the checkpoint's AdamW state, or None (fresh model, or SGD)."""
        if "opt.t" not in self.ckpt or not any(k.startswith("opt.m.") for k in self.ckpt):
            return None
        names = self.model.params
        m = {n: self.ckpt[f"opt.m.{n}"] for n in names if f"opt.m.{n}" in self.ckpt}
        v = {n: self.ckpt[f"opt.v.{n}"] for n in names if f"opt.v.{n}" in self.ckpt}
        check_finite(self.ckpt, self.source, [f"opt.{k}.{n}" for k, d in (("m", m), ("v", v))
                                              for n in d])
        return m, v, int(self.ckpt["opt.t"])

    def describe(self):
        return {"source": self.source, "model": self.cfg.model, "init": self.cfg.init_name,
                "norm": self.model.cfg.norm, "step": self.step, "seed": self.cfg.seed}


def _replace_cfg(cfg, **changes):
    d = cfg.to_dict()
    d.update(changes)
    return type(cfg).from_dict(d)


def load_snapshot(path):
    """A run folder, or an .npz checkpoint whose folder holds the run's config.json."""
    path = Path(path)
    if not path.exists():
        raise NotFound(f"no such run folder or checkpoint: {path}")
    if path.is_dir():
        run_dir, ckpt_path = path, run_files(path).checkpoint
        if run_files(run_dir).config.is_file() and not ckpt_path.is_file():
            raise NotFound(f"{run_dir} has no checkpoint.npz yet")
    else:
        run_dir, ckpt_path = path.parent, path
    if not run_files(run_dir).config.is_file():
        raise RunFolderError(f"{path} is not a run folder or a checkpoint next to its config.json "
                             f"(the model's shape is read from config.json)")
    saved, cfg, mcfg = read_run_config(run_dir)
    model = make_model(cfg, mcfg)
    ckpt = load_checkpoint(ckpt_path)
    restore_params(model.params, ckpt, ckpt_path)
    check_finite(model.params, ckpt_path)
    step = int(ckpt["step"]) if "step" in ckpt else 0
    return Snapshot(cfg, model, ckpt, step, str(ckpt_path), run_dir, saved.get("vocab"))


def fresh_snapshot(model="gpt", init=None, seed=1337, **settings):
    """The model `python cli.py train --model MODEL --init INIT --seed SEED [settings]` starts
    from (step 0, no optimizer state). settings: any TrainConfig field (n_layer, norm, ...)."""
    settings = {k: v for k, v in dict(settings, init=init).items() if v is not None}
    cfg = TrainConfig.for_model(model=model, seed=seed, **settings)
    data = resolve_data(cfg)
    mcfg, _ = model_config(cfg, data)
    m = make_model(cfg, mcfg)
    vocab = data.vocab if kind_of(m).inputs == "tokens" else None
    return Snapshot(cfg, m, {}, 0, f"fresh {cfg.model} init {cfg.init_name} seed {seed}", None,
                    vocab, data)


def snapshot_from_options(target, init=None, model="gpt", seed=1337, **settings):
    """What every `inspect` command takes: RUN_OR_CHECKPOINT, or --init NAME (--model) for a
    freshly initialized model. Exactly one of the two."""
    if target is not None and init is not None:
        raise ConfigError("give either RUN_OR_CHECKPOINT or --init NAME, not both")
    if target is None and init is None:
        raise RunFolderError("give a run folder or checkpoint, or --init NAME for a fresh model")
    if target is not None:
        return load_snapshot(target)
    return fresh_snapshot(model, init, seed, **settings)
