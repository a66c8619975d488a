"""Tokenizers of a GPT run: characters (the default) or byte-level BPE (the `hf` extra).

    tok = run_tokenizer(run_dir, saved)        # the one a run folder records (or None)
    ids = tok.encode("ROMEO:")                 # str -> int64 (n,)
    text = tok.decode(ids)                     # ids -> str

A run's config.json says which one under "tokenizer":
    {"kind": "char"}                                          its characters are "vocab"
    {"kind": "bpe", "files": ["tokenizer.json"], ...}         Hugging Face's one-file layout
    {"kind": "bpe", "files": ["vocab.json", "merges.txt"], ...}   GPT-2's original two files
BPE files sit in the run folder, copied byte for byte from where they came from. A config.json
without the key is a character run when it has a "vocab" (runs made before tokenizers), and a
run without any tokenizer when "vocab" is null (a GPT-2 imported without tokenizer files: it
works on token ids only).

Byte-level BPE (GPT-2's): text -> UTF-8 bytes -> each byte one of 256 printable stand-ins
("Ġ" is the space) -> split by GPT-2's pre-tokenizer regex -> merges applied by rank. Decoding
reverses it exactly, so every string round-trips. train_bpe learns the merges from a text with
the library's trainer, which has no randomness (it merges the most frequent pair, ties broken
by the pair's ids), so one text always gives the same tokenizer; no seed is needed or taken.
"""
import json
from pathlib import Path

import numpy as np

from ..engine.generate import start_ids
from ..errors import ConfigError, DataError, require

KINDS = ("char", "bpe")
LAYOUTS = (("tokenizer.json",), ("vocab.json", "merges.txt"))
N_BYTES = 256                       # the byte-level alphabet: the smallest byte-level BPE


def _tokenizers(purpose="a BPE tokenizer"):
    return require("tokenizers", "hf", purpose)


class CharTokenizer:
    """One id per character of `vocab` (a str of distinct characters, id i = vocab[i])."""
    kind = "char"

    def __init__(self, vocab):
        self.vocab = vocab
        self.stoi = {ch: i for i, ch in enumerate(vocab)}

    @property
    def vocab_size(self):
        return len(self.vocab)

    def encode(self, text):
        """str -> int64 (len(text),); a character outside the vocabulary is a DataError."""
        for pos, ch in enumerate(text):
            if ch not in self.stoi:
                raise DataError(f"character {ch!r} (U+{ord(ch):04X}, position {pos}) is not in "
                                f"the vocabulary of {len(self.vocab)} characters")
        return np.array([self.stoi[ch] for ch in text], dtype=np.int64)

    def decode(self, ids):
        return "".join(self.vocab[i] for i in np.asarray(ids).ravel())

    def pieces(self, ids):
        """One display string per id (attention-map labels)."""
        return [self.vocab[i] for i in np.asarray(ids).ravel()]

    def record(self):
        return {"kind": "char"}


class BPETokenizer:
    """A byte-level BPE `tokenizers.Tokenizer` and the bytes of the files it was read from
    (files: {name: bytes}, one of the LAYOUTS)."""
    kind = "bpe"

    def __init__(self, tokenizer, files):
        self.tokenizer = tokenizer
        self.files = files

    @property
    def vocab_size(self):
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text):
        return np.array(self.tokenizer.encode(text).ids, dtype=np.int64)

    def decode(self, ids):
        return self.tokenizer.decode([int(i) for i in np.asarray(ids).ravel()],
                                     skip_special_tokens=False)

    def pieces(self, ids):
        return [self.tokenizer.decode([int(i)], skip_special_tokens=False)
                for i in np.asarray(ids).ravel()]

    def record(self):
        return {"kind": "bpe", "files": list(self.files), "vocab_size": self.vocab_size}


def prompt_ids(tok, prompt):
    """A prompt as ids under a run's tokenizer: engine/generate.start_ids for characters (empty:
    a newline, or the first character); a byte-level BPE encodes any text (empty: a newline)."""
    if tok.kind == "char":
        return start_ids(tok.vocab, prompt)
    return tok.encode(prompt or "\n")


def _byte_level(tk, model):
    """A Tokenizer around a BPE model with GPT-2's byte-level pre-tokenizer and decoder."""
    tok = tk.Tokenizer(model)
    tok.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tk.decoders.ByteLevel()
    return tok


def find_bpe_files(folder):
    """The tokenizer layout present in folder: ("tokenizer.json",), ("vocab.json", "merges.txt")
    or None when there is neither. vocab.json without merges.txt is a DataError."""
    folder = Path(folder)
    if (folder / "tokenizer.json").is_file():
        return LAYOUTS[0]
    if (folder / "vocab.json").is_file():
        if not (folder / "merges.txt").is_file():
            raise DataError(f"{folder} has vocab.json but no merges.txt: a BPE tokenizer needs "
                            f"both (or a tokenizer.json)")
        return LAYOUTS[1]
    if (folder / "merges.txt").is_file():
        raise DataError(f"{folder} has merges.txt but no vocab.json: a BPE tokenizer needs both "
                        f"(or a tokenizer.json)")
    return None


def load_bpe(folder, layout=None):
    """BPETokenizer from the files of folder (layout: as find_bpe_files; found when None).
    Files that are not a byte-level BPE with merges are a DataError naming the file."""
    tk = _tokenizers("reading BPE tokenizer files")
    folder = Path(folder)
    layout = layout or find_bpe_files(folder)
    if layout is None:
        raise DataError(f"{folder} has no tokenizer.json and no vocab.json + merges.txt")
    files = {}
    for name in layout:
        path = folder / name
        if not path.is_file():
            raise DataError(f"tokenizer file missing: {path}")
        files[name] = path.read_bytes()
    # The library reports malformed files with a bare Exception (its only error type); the
    # calls below only parse the files, so that is what such an exception means here.
    try:
        if layout == LAYOUTS[0]:
            text = files["tokenizer.json"].decode("utf-8")
            spec = json.loads(text).get("model") or {}
            if spec.get("type") != "BPE":
                raise DataError(f"{folder / 'tokenizer.json'} holds a {spec.get('type')!r} "
                                f"model, not BPE")
            n_merges, n_vocab = len(spec.get("merges") or ()), len(spec.get("vocab") or ())
            tok = tk.Tokenizer.from_str(text)
        else:
            merges = files["merges.txt"].decode("utf-8").splitlines()
            n_merges = sum(1 for m in merges if m.strip() and not m.startswith("#version"))
            n_vocab = len(json.loads(files["vocab.json"]))
            tok = _byte_level(tk, tk.models.BPE.from_file(str(folder / "vocab.json"),
                                                          str(folder / "merges.txt")))
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError) as e:
        raise DataError(f"{folder}: tokenizer files are not valid JSON/UTF-8 ({e})") from None
    except DataError:
        raise
    except Exception as e:                      # the library's parse errors (see above)
        raise DataError(f"{folder}: tokenizer files cannot be read ({e})") from None
    if n_merges == 0 and n_vocab > N_BYTES:
        raise DataError(f"{folder / layout[-1]} has no merges for a vocabulary of {n_vocab} "
                        f"tokens: its merges are missing")
    return BPETokenizer(tok, files)


def train_bpe(text, vocab_size):
    """A byte-level BPE with vocab_size tokens (fewer when the text runs out of pairs to merge)
    learned from text, saved as tokenizer.json."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < N_BYTES:
        raise ConfigError(f"--vocab-size must be an integer >= {N_BYTES} (the byte alphabet) "
                          f"for --tokenizer bpe, got {vocab_size!r}")
    tk = _tokenizers("--tokenizer bpe")
    tok = _byte_level(tk, tk.models.BPE())
    trainer = tk.trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                     initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(),
                                     special_tokens=[])
    tok.train_from_iterator([text], trainer)
    return BPETokenizer(tok, {"tokenizer.json": tok.to_str().encode("utf-8")})


def check_vocab_size(tok, vocab_size, where):
    """DataError unless the tokenizer has exactly the model's vocab_size tokens."""
    if tok.vocab_size != vocab_size:
        raise DataError(f"{where}: the tokenizer has {tok.vocab_size} tokens but the model's "
                        f"vocab_size is {vocab_size}")


def run_tokenizer(run_dir, saved):
    """The tokenizer a run folder records (saved: its config.json as a dict): CharTokenizer,
    BPETokenizer, or None for a run without one (token ids only)."""
    rec = saved.get("tokenizer")
    if rec is None:
        vocab = saved.get("vocab")
        return CharTokenizer(vocab) if isinstance(vocab, str) else None
    kind = rec.get("kind") if isinstance(rec, dict) else None
    if kind == "char":
        vocab = saved.get("vocab")
        if not isinstance(vocab, str):
            raise DataError(f"{run_dir}/config.json: a char tokenizer needs its \"vocab\"")
        return CharTokenizer(vocab)
    if kind == "bpe":
        layout = tuple(rec.get("files") or ())
        if layout not in LAYOUTS:
            raise DataError(f"{run_dir}/config.json: tokenizer files {list(layout)} are not one "
                            f"of {[list(x) for x in LAYOUTS]}")
        tok = load_bpe(run_dir, layout)
        vocab_size = (saved.get("model") or {}).get("vocab_size")
        if vocab_size is not None:
            check_vocab_size(tok, vocab_size, f"{run_dir}")
        return tok
    raise DataError(f"{run_dir}/config.json: tokenizer kind {kind!r} is not one of "
                    f"{', '.join(KINDS)}")


# ---------------------------------------------------------------------------------------------
# Text of a GPT run, tokenized by BPE

class TokenDataset:
    """A text as BPE tokens: the two splits of training/data.py (first 90% of the characters,
    last 10%) each encoded by `tokenizer`.

    train, val:           int64 (n_train,), (n_val,) token ids
    val_tokens_per_char:  tokens of the validation split per character of it; the validation
                          loss in bits per character is val_loss * val_tokens_per_char / ln 2
    """
    vocab = None                        # no character vocabulary: the tokenizer is the vocabulary

    def __init__(self, tokenizer, train, val, val_chars):
        self.tokenizer = tokenizer
        self.train = train
        self.val = val
        self.val_tokens_per_char = len(val) / max(val_chars, 1)

    @property
    def vocab_size(self):
        return self.tokenizer.vocab_size

    def encode(self, text):
        return self.tokenizer.encode(text)

    def decode(self, ids):
        return self.tokenizer.decode(ids)

    def check_block(self, block_size):
        """DataError unless both splits hold a window of block_size + 1 tokens."""
        for name, ids in (("validation", self.val), ("training", self.train)):
            if len(ids) < block_size + 1:
                raise DataError(f"text too short: the {name} split has {len(ids)} tokens, need "
                                f"at least block_size+1 = {block_size + 1}")


def choose_tokenizer(cfg, recorded=None, source=None):
    """The BPE a GPT run takes from elsewhere, or None: `recorded`, the run's own (resume,
    inspection), else `source`, the --init-from run's (fine-tuning tokenizes as the source run
    did). None with cfg.tokenizer "bpe" means: learn one from the training split (bpe_text)."""
    if recorded is not None:
        return recorded
    if source is None:
        if cfg.tokenizer == "bpe" and cfg.vocab_size is None:
            raise ConfigError(f"--tokenizer bpe: --init-from {cfg.init_from} records no BPE "
                              f"tokenizer to use; give --vocab-size N to train one")
        return None
    if cfg.tokenizer == "char":
        raise ConfigError(f"--tokenizer char: --init-from {cfg.init_from} reads BPE tokens; "
                          f"fine-tuning uses its tokenizer")
    if cfg.vocab_size is not None and cfg.vocab_size != source.vocab_size:
        raise ConfigError(f"--vocab-size {cfg.vocab_size}: --init-from {cfg.init_from} has a BPE "
                          f"of {source.vocab_size} tokens, which fine-tuning uses")
    return source


def bpe_text(text, tok=None, vocab_size=None, train_limit=None):
    """TokenDataset of text, split as training/data.py splits characters (the training split cut
    to its first train_limit characters when given), under tokenizer tok, or under a BPE of
    vocab_size tokens learned from that training split when tok is None."""
    from .data import TRAIN_FRACTION
    n_train = int(len(text) * TRAIN_FRACTION)
    train, val = text[:n_train], text[n_train:]
    if train_limit is not None:
        if train_limit > len(train):
            raise DataError(f"train_limit {train_limit} is more than the {len(train)} training "
                            f"characters available")
        train = train[:train_limit]
    if tok is None:
        tok = train_bpe(train, vocab_size)
    return TokenDataset(tok, tok.encode(train), tok.encode(val), len(val))
