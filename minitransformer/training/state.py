"""What a run carries from one part of the training loop to the next (training/loop.py).

    Carry   the training state a checkpoint holds besides parameters, optimizer and generators
    Run     one run from setup to finish: what was built, where it writes, what it has measured
"""
from dataclasses import dataclass, field
import json
import shlex
import time

from .config import TrainConfig
from .progress import Progress
from .signals import SignalCatcher
from .tokenizer import CharTokenizer


@dataclass
class Carry:
    """The training state a checkpoint carries besides parameters, optimizer and generators
    (saved as train.<field>, in this order)."""
    initial_loss: float = None          # the divergence rule's reference (step.diverged)
    last_finite_loss: float = None
    best_val_loss: float = None
    elapsed_s: float = 0.0              # wall time of the earlier processes of this run


@dataclass
class Run:
    """One run from setup to finish: what was built, where it writes, what it has measured."""
    cfg: TrainConfig
    files: object                       # runfolder.RunFiles
    data: object
    mcfg: object
    model: object
    opt: object
    streams: dict
    show: Progress
    resume: bool
    command: str                        # how to resume: f"{command} --resume DIR"
    fingerprint: dict = None            # the data's hash (preflight.data_fingerprint)
    saved: dict = None                  # config.json as found (resume)
    notes: list = field(default_factory=list)   # resume: what config.json gains (extension, ...)
    start: int = 0                      # the first step this process makes
    n_params: int = 0
    carry: Carry = field(default_factory=Carry)
    t_start: float = field(default_factory=time.perf_counter)
    lock: object = None                 # runfolder.FolderLock while this process writes
    made: list = field(default_factory=list)    # folders claim_folder created
    established: bool = False           # config.json and a checkpoint are on disk
    last_checkpoint: int = None         # step of the newest checkpoint on disk
    signals: SignalCatcher = field(default_factory=SignalCatcher)
    stopped: bool = False               # stop_for_signal checkpointed and said how to resume
    metrics: object = None              # metrics.jsonl, open for appending
    sharp_batch: tuple = None           # --sharpness-every's fixed batch
    step_times: list = field(default_factory=list)
    watch_times: list = field(default_factory=list)
    divergence: dict = None             # {"step", "reason", "loss"} once the run diverged
    masks: dict = None                  # pruning masks {name: bool array}; None = dense
    shards: object = None               # shards.Shards while the steps run (cfg.shards threads)

    @property
    def vocab(self):
        return self.data.vocab if self.cfg.kind.on_text else None

    @property
    def tokenizer(self):
        """GPT: the text's characters, or the BPE of a TokenDataset; ViT: None."""
        if not self.cfg.kind.on_text:
            return None
        if self.data.vocab is not None:
            return CharTokenizer(self.data.vocab)
        return self.data.tokenizer

    @property
    def resume_command(self):
        return f"{self.command} --resume {shlex.quote(str(self.files.dir))}"

    def elapsed(self):
        return self.carry.elapsed_s + time.perf_counter() - self.t_start

    def log(self, record):
        self.metrics.write(json.dumps(record, allow_nan=False) + "\n")
        self.metrics.flush()
