"""TrainConfig: every setting of a run, its default and its check; the ViT's defaults.

    cfg = TrainConfig.for_model(model="vit", lr=3e-3)   # ViT defaults, lr recorded as explicit
    cfg.lr_at(10)                                       # the learning rate of optimizer step 10

The defaults are nanoGPT's CPU Shakespeare configuration (GPT). Three seeds decide a run's
randomness: init_seed (the initial weights), data_seed (training batches, evaluation batches,
sampling) and seed, the default of both. TrainConfig resolves an unset init_seed or data_seed to
seed when it is made, so config.json records the two seeds actually used.
"""
from dataclasses import dataclass, asdict, fields
import math

from ..engine.config import (NORMS, POOLS, check_choice,
                             check_positive_int, check_nonnegative_int, check_positive_float,
                             check_number_in, from_dict)
from ..engine.kinds import MODEL_KINDS, kind_named
from ..engine.optim import SCHEDULES, get_lr
from .. import init as _init
from ..errors import ConfigError
from .data import IMAGE_DATA, parse_classes

MODELS = tuple(MODEL_KINDS)
OPTIMIZERS = ("adamw", "sgd")
TOKENIZERS = ("char", "bpe")
DTYPES = ("float32", "float64")


# ---------------------------------------------------------------------------------------------
# Configuration

@dataclass
class TrainConfig:
    """Every setting of a run. Defaults: nanoGPT's CPU Shakespeare configuration (GPT).
    TrainConfig.for_model(model="vit", ...) starts from the ViT defaults (VIT_DEFAULTS) instead."""
    # what to train
    model: str = "gpt"                  # "gpt" (character language model) or "vit" (classifier)
    data: str = "data/tinyshakespeare.txt"   # gpt: any UTF-8 text file; vit: "mnist" or "digits"
    train_limit: int = None             # train on the first N examples (vit) / characters (gpt)
                                        # of the training split only; None = all (data.py)
    classes: str = None                 # vit: keep only these labels in both splits, "0-4" or
                                        # "5,7,9"; None = all ten (data.py: parse_classes)
    tokenizer: str = None               # gpt: "char" or "bpe"; None = char, or --init-from's
    vocab_size: int = None              # gpt with tokenizer "bpe": tokens of the trained BPE
    # model shape
    n_layer: int = 4                    # L: transformer blocks
    n_head: int = 4                     # NH: attention heads
    n_embd: int = 128                   # C: channels (must be divisible by n_head)
    block_size: int = 64                # T: GPT context length in characters (unused by vit)
    norm: str = "pre"                   # "pre" (GPT-2, ViT), "post" (original Transformer), "none"
    rezero: bool = False                # learned gate alpha on both branches of each block
    patch_size: int = 7                 # vit: P, must divide the image size (28 -> 16 patches)
    pool: str = "cls"                   # vit: "cls" token or "mean" of the patch tokens
    # initialization
    init: str = None                    # scheme name from init.py; None = gpt2 (gpt) / vit (vit)
    init_scale: float = 1.0             # multiplies every weight matrix after the scheme
    init_std: float = 0.02              # std of schemes that take one ("normal")
    base_width: int = None              # mup: the width whose behaviour is copied (None = n_embd)
    impulse_k: int = 3                  # structured: k x k impulse window (3 or 5)
    init_from: str = None               # start from another run's folder/checkpoint (transfer.py)
    reinit_head: bool = False           # with init_from: draw the head afresh
    allow_partial: bool = False         # with init_from: skip tensors whose shapes differ
    start_from: str = None              # a saved training state (.npz) to go on from in a new
                                        # run: its step, weights, optimizer, streams (masks.py)
    mask: str = None                    # mask.npz: these weights stay exactly 0 (masks.py)
    save_state_at: int = None           # also keep the state after this many updates, state_K.npz
    # optimization
    batch_size: int = 12                # B: sequences (gpt) or images (vit) per step
    max_iters: int = 2000               # optimizer steps; always finite
    optimizer: str = "adamw"            # "adamw" or "sgd" (with momentum)
    lr: float = 1e-3                    # peak learning rate
    min_lr: float = 1e-4                # floor of the decay (nanoGPT: lr / 10)
    schedule: str = "cosine"            # cosine | linear | constant | noam | inverse_sqrt
    warmup_iters: int = 100             # linear warmup steps (0 = none)
    lr_decay_iters: int = None          # cosine/linear reach min_lr here; None = max_iters (2000)
    beta1: float = 0.9                  # AdamW beta1
    beta2: float = 0.99                 # AdamW beta2 (nanoGPT's CPU config: small data, 0.99)
    weight_decay: float = 0.1           # decoupled, on 2-D weights only
    momentum: float = 0.9               # sgd only
    grad_clip: float = 1.0              # global gradient-norm clip; 0 = off
    # evaluation, logging, checkpoints
    eval_interval: int = 250            # evaluate every this many steps; 0 = only at the end
    eval_iters: int = 20                # batches per split per evaluation (also the final one)
    log_interval: int = 10              # write metrics.jsonl (and a progress line) every N steps
    checkpoint_interval: int = 250      # checkpoint every N steps; 0 = only at the end
    telemetry: bool = True              # per-tensor/per-layer statistics every log_interval steps
    sharpness_every: int = 0            # top Hessian eigenvalue every N steps (0 = never; costly)
    # reproducibility
    seed: int = 1337                    # the default of init_seed and data_seed
    init_seed: int = None               # initial weights: default_rng(init_seed); None = seed
    data_seed: int = None               # batches, evaluation, sampling; None = seed
    dtype: str = "float32"              # training precision: float32 or float64
    shards: int = None                  # threads a step's batch is cut over (training/shards.py);
                                        # None = one per core, resolved and recorded at the start
    explicit: tuple = ()                # fields the user set; init schemes may adapt the others

    def __post_init__(self):
        self.explicit = tuple(self.explicit)
        for name in ("init_seed", "data_seed"):       # recorded as used (module docstring)
            if getattr(self, name) is None:
                setattr(self, name, self.seed)
        names = {f.name for f in fields(self)}
        bad = [n for n in self.explicit if n not in names]
        if bad:
            raise ConfigError(f"unknown TrainConfig field(s) in explicit: {', '.join(bad)}")
        check_choice("model", self.model, MODELS)
        if not isinstance(self.data, str) or not self.data:
            raise ConfigError(f"data must be a file path or a data set name, got {self.data!r}")
        if not self.kind.on_text and self.data not in IMAGE_DATA:
            raise ConfigError(f"data for vit must be one of {', '.join(IMAGE_DATA)}; "
                              f"got {self.data!r}")
        self._check_tokenizer()
        for name in ("n_layer", "n_head", "n_embd", "block_size", "patch_size", "batch_size",
                     "max_iters", "eval_iters", "log_interval"):
            check_positive_int(name, getattr(self, name))
        if self.n_embd % self.n_head != 0:
            raise ConfigError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if self.train_limit is not None:
            check_positive_int("train_limit", self.train_limit)
        if self.classes is not None:
            if not self.kind.classifies:
                raise ConfigError("classes selects image labels: it needs --model vit")
            parse_classes(self.classes)
        check_choice("norm", self.norm, NORMS)
        check_choice("pool", self.pool, POOLS)
        for name in ("rezero", "reinit_head", "allow_partial", "telemetry"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.init is not None:
            _init.check_scheme(self.init)
        for name in ("init_scale", "init_std", "lr"):
            check_positive_float(name, getattr(self, name))
        for name in ("init_from", "start_from", "mask"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"{name} must be a file or folder path, got {value!r}")
        if self.init_from is not None and self.start_from is not None:
            raise ConfigError("init_from and start_from exclude each other: start_from already "
                              "gives the weights")
        if self.save_state_at is not None:
            check_nonnegative_int("save_state_at", self.save_state_at)
            if self.save_state_at > self.max_iters:
                raise ConfigError(f"save_state_at ({self.save_state_at}) is beyond max_iters "
                                  f"({self.max_iters})")
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_number_in("min_lr", self.min_lr, 0.0, self.lr, f"between 0 and lr ({self.lr})")
        for name in ("warmup_iters", "eval_interval", "checkpoint_interval", "seed",
                     "init_seed", "data_seed", "sharpness_every"):
            check_nonnegative_int(name, getattr(self, name))
        if self.lr_decay_iters is not None:
            check_positive_int("lr_decay_iters", self.lr_decay_iters)
        if self.shards is not None:
            check_positive_int("shards", self.shards)
            if self.shards > self.batch_size:
                raise ConfigError(f"shards ({self.shards}) cannot exceed batch_size "
                                  f"({self.batch_size})")
        if self.base_width is not None:
            check_positive_int("base_width", self.base_width)
        if self.impulse_k not in (3, 5):
            raise ConfigError(f"impulse_k must be 3 or 5, got {self.impulse_k!r}")
        if self.schedule in ("cosine", "linear") and self.decay_iters < self.warmup_iters:
            raise ConfigError(f"warmup_iters ({self.warmup_iters}) is longer than the "
                              f"{self.schedule} decay, lr_decay_iters ({self.decay_iters}); "
                              f"lower --warmup-iters or raise --lr-decay-iters")
        for name in ("beta1", "beta2", "momentum"):
            check_number_in(name, getattr(self, name), 0.0, 1.0, "in [0, 1)", open_right=True)
        check_number_in("weight_decay", self.weight_decay, 0.0, math.inf, ">= 0")
        check_number_in("grad_clip", self.grad_clip, 0.0, math.inf, ">= 0 (0 turns clipping off)")
        check_choice("dtype", self.dtype, DTYPES)

    def _check_tokenizer(self):
        if self.tokenizer is not None:
            if not self.kind.on_text:
                raise ConfigError(f"tokenizer is for gpt runs; {self.model} takes images")
            check_choice("tokenizer", self.tokenizer, TOKENIZERS)
        if self.vocab_size is not None:
            if self.tokenizer != "bpe":
                raise ConfigError("vocab_size sets the size of a trained BPE: it needs "
                                  "tokenizer 'bpe' (a char vocabulary is the text's characters)")
            check_positive_int("vocab_size", self.vocab_size)
        elif self.tokenizer == "bpe" and self.init_from is None:
            raise ConfigError("tokenizer 'bpe' needs vocab_size (--vocab-size N, N >= 256), or "
                              "--init-from a run whose BPE tokenizer to use")

    @property
    def decay_iters(self):
        """lr_decay_iters; None means max_iters (or warmup_iters, if a short run is all warmup)."""
        if self.lr_decay_iters is None:
            return max(self.max_iters, self.warmup_iters)
        return self.lr_decay_iters

    @property
    def kind(self):
        """The model kind (engine/kinds.py): what differs between a GPT and a ViT run."""
        return kind_named(self.model)

    @property
    def init_name(self):
        return self.init or self.kind.default_init

    def lr_at(self, step):
        """The learning rate of optimizer step `step` (0-based)."""
        return get_lr(step, self.schedule, self.lr, self.min_lr, self.warmup_iters,
                      self.decay_iters)

    def warnings(self):
        """Settings that are legal but probably not meant (one line each)."""
        out = []
        if self.warmup_iters > self.max_iters:
            out.append(f"warmup_iters ({self.warmup_iters}) is longer than max_iters "
                       f"({self.max_iters}): the learning rate never reaches lr ({self.lr:g}); "
                       f"the last step uses {self.lr_at(self.max_iters - 1):.3g}")
        return out

    def extended(self, max_iters):
        """This config trained on to max_iters (> self.max_iters) with the learning rates of the
        steps already made unchanged: the decay keeps its end (lr_decay_iters is pinned), so the
        added steps run at what the schedule gives past it (min_lr for cosine and linear)."""
        if isinstance(max_iters, bool) or not isinstance(max_iters, int) \
                or max_iters <= self.max_iters:
            raise ConfigError(f"--max-iters {max_iters} must be larger than the run's max_iters "
                              f"({self.max_iters}) to extend it")
        d = self.to_dict()
        d.update(max_iters=max_iters, lr_decay_iters=self.decay_iters)
        return type(self).from_dict(d)

    @classmethod
    def for_model(cls, **settings):
        """The defaults of settings["model"] (VIT_DEFAULTS for vit), then `settings`, which are
        recorded as explicit. `python cli.py train` builds this from the options the user typed."""
        model = settings.get("model", "gpt")
        names = {f.name for f in fields(cls)} - {"explicit"}
        unknown = sorted(set(settings) - names)
        if unknown:
            raise ConfigError(f"unknown training setting(s): {', '.join(unknown)}")
        values = dict(MODEL_DEFAULTS.get(model, {}))
        values.update(settings)
        return cls(**values, explicit=tuple(sorted(settings)))

    def to_dict(self):
        d = asdict(self)
        d["explicit"] = list(self.explicit)
        return d

    @classmethod
    def from_dict(cls, d):
        return from_dict(cls, d)


# The ViT's defaults, chosen by measurement on the MNIST 8,000/2,000 split. Validation accuracy at
# the end, seeds 1337 / 1 / 2: 96.30 / 96.35 / 96.15% with these; 96.2 / 95.15 / 95.75% with 2000
# steps; 95.75% (seed 1) with batch 128 for 1500 steps, the same compute; lr 3e-3 or mean pooling
# changed little. The model reaches train loss ~0.001: 8,000 images are the limit, not the steps.
VIT_DEFAULTS = dict(
    data="mnist",           # 8,000 train / 2,000 validation images of MNIST's test set
    n_layer=4,              # 4 blocks of
    n_head=4,               # 4 heads of 16 channels,
    n_embd=64,              # C = 64: 205,066 parameters
    patch_size=7,           # 16 patches of 7x7 (+ the cls token: 17 tokens)
    batch_size=64,          # images per step: 3000 steps = 24 passes over the training images
    max_iters=3000,         # optimizer steps (cosine decay over all of them)
    lr=2e-3,                # peak learning rate (small model, small batch: higher than the GPT's)
    weight_decay=0.05,      # timm's ViT recipes use 0.05
)

MODEL_DEFAULTS = {"gpt": {}, "vit": VIT_DEFAULTS}


def config_from_dict(model, d):
    """The GPTConfig or ViTConfig recorded in a run's config.json (model: "gpt" or "vit")."""
    return kind_named(model).config.from_dict(d)
