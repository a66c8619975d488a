"""Data: character-level text, MNIST (gzip IDX) and UCI digits (gzip CSV), and batch samplers.

Shapes: B batch, T tokens (block_size), V vocab, N examples, H/W image height/width, Cin channels.

- Text (GPT): the vocabulary is the sorted set of characters of the whole file; the first 90% of
  the characters are the training split and the last 10% the validation split (as nanoGPT's
  shakespeare_char). Batches are random windows: y is x shifted left by one token.
- Images (ViT): channels-last float32 in [0, 1], (N, H, W, Cin). Both image sets are split by a
  fixed permutation, ``np.random.default_rng(SPLIT_SEED).permutation(N)`` with SPLIT_SEED = 0: the
  last ceil(N/5) indices of it are validation, the rest training (MNIST's 10,000 test images ->
  8,000 / 2,000; digits' 1,797 -> 1,437 / 360). The split never depends on --seed.

Every random draw takes an explicit np.random.Generator; nothing here touches global seeding.
Every problem with a file raises DataError with one sentence naming the file, so the CLI can print
it as one line.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple
import gzip
import math
import struct
import zlib

import numpy as np

from ..engine.kinds import MODEL_KINDS
from ..errors import ConfigError, DataError


SPLIT_SEED = 0           # fixed seed of the image train/validation permutation (not --seed)
TRAIN_FRACTION = 0.9     # text: first 90% of characters train, last 10% validation (nanoGPT)
DEFAULT_TEXT = "tinyshakespeare.txt"
IMAGE_DATA = ("mnist", "digits")


def _check_file(path):
    """Path of an existing regular file, else DataError (missing, or a directory)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    if path.is_dir():
        raise DataError(f"{path} is a directory, not a data file")
    return path


def _read_bytes(path, opener=open):
    """All bytes of a (possibly gzip) file; unreadable or corrupt gzip -> DataError."""
    path = _check_file(path)
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as e:   # BadGzipFile is an OSError; truncated -> EOF
        raise DataError(f"cannot read {path}: {e}") from None


# ---------------------------------------------------------------------------------------------
# Character-level text (GPT)

@dataclass(frozen=True, eq=False)   # eq on arrays is ambiguous
class TextDataset:
    """A character-level corpus: vocabulary and the two splits as token ids.

    vocab: str of the V distinct characters, sorted, so ``vocab[i]`` is the character of id i (itos)
    stoi:  dict character -> id
    train: (0.9 * n,) ids of the first 90% of the characters, in the smallest unsigned dtype
           that holds V ids (uint8 up to 256 characters; batches are int64)
    val:   (n - len(train),) ids of the last 10%, a view of the same array
    """
    vocab: str
    stoi: dict
    train: np.ndarray
    val: np.ndarray
    val_tokens_per_char = 1.0   # one token per character (bits per character, training/evaluate.py)

    @property
    def itos(self):
        return self.vocab

    @property
    def vocab_size(self):
        return len(self.vocab)

    def encode(self, text):
        """str -> int64 (len(text),) ids; a character outside the vocabulary -> DataError."""
        try:
            return np.array([self.stoi[ch] for ch in text], dtype=np.int64)
        except KeyError as e:
            raise DataError(f"character {e.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids):
        """ids (any int sequence or array) -> str."""
        return "".join(self.vocab[i] for i in np.asarray(ids).ravel())

    def check_block(self, block_size):
        """DataError unless both splits hold at least one window of block_size + 1 characters."""
        need = block_size + 1    # x is block_size tokens, y the same window one further
        for name, ids in (("validation", self.val), ("training", self.train)):
            if len(ids) < need:
                raise DataError(f"text too short: {name} split has {len(ids)} characters, "
                                f"need at least block_size+1 = {need}")


CharDataset = TextDataset   # the name nanoGPT-style code looks for


def load_text(path):
    """Read a UTF-8 text file into a TextDataset (vocabulary of the whole file, 90/10 split).

    A UTF-8 byte-order mark at the start is dropped (it is not a character of the text).
    DataError for: a missing file, a directory, an empty file, UTF-16 or UTF-32 text (named as
    such), a binary file (any NUL byte), or bytes that are not UTF-8 (the message gives the byte
    offset of the first bad byte).
    """
    path = _check_file(path)
    with open(path, "rb") as f:
        start = _text_start(path, f.read(4096))
    vocab, ids = encode_text_file(path, start)
    n_train = int(len(ids) * TRAIN_FRACTION)
    return TextDataset(vocab=vocab, stoi={ch: i for i, ch in enumerate(vocab)},
                       train=ids[:n_train], val=ids[n_train:])


def read_text(path):
    """The whole UTF-8 text of a file, for tokenizers that need the text itself (BPE); the same
    DataErrors as load_text (missing, directory, empty, binary, not UTF-8)."""
    path = _check_file(path)
    raw = _read_bytes(path)
    if not raw:
        raise DataError(f"{path} is empty")
    raw = raw[_text_start(path, raw[:4096]):]
    _piece_codes(raw, path, 0)                                  # NUL and UTF-8 checks
    return raw.decode("utf-8")


def _text_start(path, head):
    """Where a text file's characters start: after a UTF-8 byte-order mark (not a character of
    the text), else at 0. UTF-16 and UTF-32 text are a DataError naming the encoding."""
    other = _other_unicode(head)
    if other:
        raise DataError(f"{path} is {other} text, not UTF-8; convert it first, e.g. "
                        f"iconv -f {other.split()[0]} -t UTF-8")
    start = len(UTF8_BOM) if head.startswith(UTF8_BOM) else 0
    if start and len(head) == start:
        raise DataError(f"{path} is empty (it holds only a UTF-8 byte-order mark)")
    return start


TEXT_PIECE = 2**20          # bytes decoded at a time: the file is never in memory whole
N_CODES = 0x110000          # Unicode code points 0 .. U+10FFFF


def id_dtype(vocab_size):
    """The smallest unsigned integer dtype that holds ids 0 .. vocab_size - 1."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if vocab_size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    raise DataError(f"a vocabulary of {vocab_size} characters does not fit 32-bit ids")


def encode_text_file(path, start=0):
    """(vocab, ids) of the UTF-8 text in `path` from byte `start` on, without holding the text:
    one pass counts the code points of each piece of the file (np.bincount), the sorted set of
    those present is the vocabulary, and a second pass writes every character's id once, through a
    code point -> id table, straight into one array of the smallest dtype (uint8 for up to 256
    characters: one byte per character of text; measured peak in README "Data").

    vocab: str of the V distinct characters, sorted by code point (as sorted(set(text)))
    ids:   (n,) id_dtype(V), n = number of characters
    """
    counts = np.zeros(N_CODES, dtype=np.int64)                  # (N_CODES,) characters per code
    n = 0
    for codes in _code_pieces(path, start):                     # (piece,) code points
        c = np.bincount(codes)                                  # (max code + 1,)
        counts[:len(c)] += c
        n += len(codes)
    if n == 0:
        raise DataError(f"{path} is empty")
    present = np.flatnonzero(counts)                            # (V,) sorted code points
    dtype = id_dtype(len(present))
    code_to_id = np.zeros(N_CODES, dtype=dtype)                 # (N_CODES,) code -> id
    code_to_id[present] = np.arange(len(present))
    ids = np.empty(n, dtype=dtype)                              # (n,)
    pos = 0
    for codes in _code_pieces(path, start):
        np.take(code_to_id, codes, out=ids[pos:pos + len(codes)])
        pos += len(codes)
    if pos != n:                                                # the file changed under us
        raise DataError(f"{path} changed while it was being read")
    return "".join(map(chr, present)), ids


def _code_pieces(path, start=0):
    """The code points of the file's text, piece by piece: uint8 (the bytes themselves) for a
    piece of ASCII, else uint32. Each piece ends on a character boundary. A NUL byte (binary
    file) or bytes that are not UTF-8 are a DataError with the file's byte offset."""
    try:
        with open(path, "rb") as f:
            f.seek(start)
            offset, carry = start, b""
            while True:
                block = f.read(TEXT_PIECE)
                data = carry + block
                if not data:
                    return
                cut = _last_lead_byte(data) if block else len(data)
                data, carry = data[:cut], data[cut:]
                yield _piece_codes(data, path, offset)
                offset += len(data)
    except OSError as e:
        raise DataError(f"cannot read {path}: {e}") from None


def _last_lead_byte(data):
    """Where to cut `data` so that no character is split: before the last byte among the final
    four that starts a multi-byte UTF-8 character (0b11xxxxxx), or at the end if there is none."""
    for i in range(len(data) - 1, max(len(data) - 5, -1), -1):
        if data[i] >= 0xC0:
            return i
    return len(data)


def _piece_codes(data, path, offset):
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DataError(f"{path} looks like a binary file (NUL byte at offset {offset + nul}), "
                        f"not text")
    if data.isascii():                                          # a byte is its code point
        return np.frombuffer(data, dtype=np.uint8)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not valid UTF-8: byte 0x{data[e.start]:02x} at offset "
                        f"{offset + e.start}") from None
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


UTF8_BOM = b"\xef\xbb\xbf"
_BOMS = [(b"\xff\xfe\x00\x00", "UTF-32 (little-endian, with byte-order mark)"),
         (b"\x00\x00\xfe\xff", "UTF-32 (big-endian, with byte-order mark)"),
         (b"\xff\xfe", "UTF-16 (little-endian, with byte-order mark)"),
         (b"\xfe\xff", "UTF-16 (big-endian, with byte-order mark)")]


def _other_unicode(raw):
    """The name of the Unicode encoding of raw when it is UTF-16 or UTF-32 rather than UTF-8:
    by its byte-order mark, or, without one, by NUL bytes at every other position (what ASCII
    text looks like in UTF-16). None otherwise."""
    for bom, name in _BOMS:
        if raw.startswith(bom):
            return name
    head = raw[:4096 - 4096 % 2]
    if len(head) >= 4:
        even, odd = head[0::2].count(0), head[1::2].count(0)
        half = len(head) // 2
        if odd > 0.9 * half and even == 0:
            return "UTF-16 (little-endian, without byte-order mark)"
        if even > 0.9 * half and odd == 0:
            return "UTF-16 (big-endian, without byte-order mark)"
    return None


def get_text_batch(split_ids, batch_size, block_size, rng):
    """nanoGPT's sampler: B random windows of the split, targets shifted by one.

    offsets i_b ~ U{0, ..., n - T - 1} (rng.integers), x[b] = ids[i_b : i_b+T],
    y[b] = ids[i_b+1 : i_b+T+1]. Returns x, y int64 (B, T).
    """
    n = len(split_ids)
    if n < block_size + 1:
        raise DataError(f"text too short: split has {n} characters, need at least "
                        f"block_size+1 = {block_size + 1}")
    offsets = rng.integers(0, n - block_size, size=batch_size)          # (B,)
    window = offsets[:, None] + np.arange(block_size + 1)               # (B, T+1)
    chunk = np.asarray(split_ids)[window].astype(np.int64)              # (B, T+1)
    return np.ascontiguousarray(chunk[:, :-1]), np.ascontiguousarray(chunk[:, 1:])


# ---------------------------------------------------------------------------------------------
# Images (ViT)

class ImageDataset(NamedTuple):
    """Image classification data, channels last: x float32 (N, H, W, Cin) in [0, 1], y int64 (N,)"""
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    image_size: int      # H = W
    in_channels: int     # Cin
    n_classes: int       # K


def _fixed_split(x, y, image_size, in_channels, n_classes):
    """Split with the fixed permutation of SPLIT_SEED: last ceil(N/5) indices are validation."""
    n = len(x)
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    n_val = math.ceil(n / 5)
    tr, va = perm[:n - n_val], perm[n - n_val:]
    return ImageDataset(x[tr], y[tr], x[va], y[va], image_size, in_channels, n_classes)


def _read_idx_ubyte(path, magic):
    """One gzip IDX file of unsigned bytes -> uint8 array of the shape in its header.

    IDX header (big-endian): uint32 magic = 0x0000_08_D (0x08 = ubyte, D = number of dims),
    then D uint32 sizes; then prod(sizes) bytes. MNIST images: 2051 (D=3), labels: 2049 (D=1).
    """
    raw = _read_bytes(path, gzip.open)
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated: {len(raw)} bytes, shorter than its header")
    found = struct.unpack(">I", raw[:4])[0]
    if found != magic:
        raise DataError(f"{path} has IDX magic number {found}, expected {magic}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) != header + math.prod(dims):
        raise DataError(f"{path} has {len(raw) - header} data bytes, but its header {dims} "
                        f"says {math.prod(dims)}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def load_mnist(data_dir="data"):
    """MNIST's 10,000 test images (the only MNIST data bundled) as an ImageDataset.

    Reads data_dir/t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz; x = pixel / 255 as
    float32 (N, 28, 28, 1), y int64 (N,). Split: np.random.default_rng(0).permutation(10000),
    first 8,000 train, last 2,000 validation.
    """
    data_dir = Path(data_dir)
    images_path = data_dir / "t10k-images-idx3-ubyte.gz"
    labels_path = data_dir / "t10k-labels-idx1-ubyte.gz"
    images = _read_idx_ubyte(images_path, 2051)      # (N, H, W) uint8
    labels = _read_idx_ubyte(labels_path, 2049)      # (N,) uint8
    if len(images) != len(labels):
        raise DataError(f"{images_path} has {len(images)} images but {labels_path} has "
                        f"{len(labels)} labels")
    if images.shape[1] != images.shape[2]:
        raise DataError(f"{images_path} holds {images.shape[1]}x{images.shape[2]} images; "
                        f"square images are needed")
    if len(labels) and labels.max() > 9:
        raise DataError(f"{labels_path} has label {labels.max()}, expected digits 0..9")
    x = (images.astype(np.float32) / 255.0)[..., None]   # (N, H, W) -> (N, H, W, 1)
    return _fixed_split(x, labels.astype(np.int64), images.shape[1], 1, 10)


def load_digits(data_dir="data"):
    """UCI optical digits (1,797 images of 8x8) from data_dir/digits.csv.gz as an ImageDataset.

    Each CSV row: 64 pixel values 0..16 (row-major) then the label 0..9. x = pixel / 16 as float32
    (N, 8, 8, 1), y int64 (N,). Split: np.random.default_rng(0).permutation(1797), first 1,437
    train, last 360 validation.
    """
    path = _check_file(Path(data_dir) / "digits.csv.gz")
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)   # (N, 65)
    except (OSError, EOFError, zlib.error, ValueError) as e:
        raise DataError(f"cannot read {path} as CSV of integers: {e}") from None
    if table.shape[1] != 65 or len(table) == 0:
        raise DataError(f"{path} has rows of {table.shape[1]} values, expected 64 pixels + label")
    pixels, labels = table[:, :64], table[:, 64]
    if pixels.min() < 0 or pixels.max() > 16 or labels.min() < 0 or labels.max() > 9:
        raise DataError(f"{path} has pixels outside 0..16 or labels outside 0..9")
    x = (pixels.astype(np.float32) / 16.0).reshape(-1, 8, 8, 1)   # (N, 64) -> (N, 8, 8, 1)
    return _fixed_split(x, labels, 8, 1, 10)


def get_image_batch(images, labels, batch_size, rng):
    """B examples drawn uniformly with replacement: idx = rng.integers(0, N, B).

    Returns x float32 (B, H, W, Cin), y int64 (B,) (fresh arrays).
    """
    idx = rng.integers(0, len(images), size=batch_size)   # (B,)
    return images[idx], labels[idx]


def parse_classes(text):
    """The labels named by --classes: "0-4" (a range, both ends included) or "5,7,9" ->
    sorted tuple of ints in 0..9; anything else is one ConfigError line."""
    bad = ConfigError(f"classes must be labels 0-9 as a range \"0-4\" or a list \"5,7,9\", "
                      f"got {text!r}")
    if not isinstance(text, str):
        raise bad
    try:
        if "-" in text:
            lo, hi = (int(p) for p in text.split("-"))
            labels = list(range(lo, hi + 1))
        else:
            labels = [int(p) for p in text.split(",")]
    except ValueError:
        raise bad from None
    if not labels or min(labels) < 0 or max(labels) > 9 or len(set(labels)) != len(labels):
        raise bad
    return tuple(sorted(labels))


def subset_images(ds, train_limit=None, classes=None):
    """ds restricted to the labels in `classes` (both splits; labels keep their values, so a
    model still has 10 outputs) and then to the first train_limit training examples (the split's
    fixed order is already a random permutation, so this is a random subset that does not
    depend on --seed). Too few examples left is a DataError."""
    tx, ty, vx, vy = ds.train_x, ds.train_y, ds.val_x, ds.val_y
    if classes is not None:
        keep_t, keep_v = np.isin(ty, classes), np.isin(vy, classes)
        tx, ty, vx, vy = tx[keep_t], ty[keep_t], vx[keep_v], vy[keep_v]
    if train_limit is not None:
        if train_limit > len(ty):
            raise DataError(f"train_limit {train_limit} is more than the {len(ty)} training "
                            f"examples available")
        tx, ty = tx[:train_limit], ty[:train_limit]
    if len(ty) == 0 or len(vy) == 0:
        raise DataError("no examples left after the class selection")
    return ImageDataset(tx, ty, vx, vy, ds.image_size, ds.in_channels, ds.n_classes)


def subset_text(ds, train_limit=None):
    """ds with only the first train_limit characters of its training split (vocabulary and
    validation split unchanged)."""
    if train_limit is None:
        return ds
    if train_limit > len(ds.train):
        raise DataError(f"train_limit {train_limit} is more than the {len(ds.train)} training "
                        f"characters available")
    return TextDataset(ds.vocab, ds.stoi, ds.train[:train_limit], ds.val)


def load_dataset(model, data=None, data_dir="data"):
    """The data set a model trains on.

    model "gpt": data is a text file path (default data_dir/tinyshakespeare.txt) -> TextDataset.
    model "vit": data is "mnist" (default) or "digits" -> ImageDataset. Anything else: DataError.
    """
    if model not in MODEL_KINDS:
        raise DataError(f"unknown model {model!r}: choose {' or '.join(MODEL_KINDS)}")
    if MODEL_KINDS[model].on_text:
        return load_text(data if data is not None else Path(data_dir) / DEFAULT_TEXT)
    data = "mnist" if data is None else data
    if data == "mnist":
        return load_mnist(data_dir)
    if data == "digits":
        return load_digits(data_dir)
    raise DataError(f"unknown image data set {data!r} for {model}: choose one of "
                    f"{', '.join(IMAGE_DATA)}")
