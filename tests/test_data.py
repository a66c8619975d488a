"""Tests of minitransformer.data on the bundled files and on broken files written to tmp_path."""
import gzip
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from minitransformer.errors import DataError
from minitransformer.training.data import (ImageDataset, TextDataset, get_image_batch,
                                  get_text_batch, load_dataset, load_digits, load_mnist,
                                  load_text)
from minitransformer.training import data as data_mod

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
MNIST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]   # t10k label counts


@pytest.fixture(scope="module")
def shakespeare():
    return load_text(DATA / "tinyshakespeare.txt")


@pytest.fixture(scope="module")
def mnist():
    return load_mnist(DATA)


# ------------------------------------------------------------------------------ text

def test_shakespeare_vocab_and_splits(shakespeare):
    ds = shakespeare
    assert isinstance(ds, TextDataset)
    assert ds.vocab_size == 65
    assert list(ds.vocab) == sorted(ds.vocab)
    assert ds.vocab[0] == "\n" and ds.vocab[1] == " "
    assert ds.stoi == {ch: i for i, ch in enumerate(ds.itos)}
    n = 1_115_394
    assert len(ds.train) == int(n * 0.9) == 1_003_854
    assert len(ds.val) == n - 1_003_854
    assert ds.train.dtype == np.uint8 and ds.val.dtype == np.uint8      # 65 ids: one byte each
    assert ds.decode(ds.train[:14]) == "First Citizen:"
    text = (DATA / "tinyshakespeare.txt").read_text(encoding="utf-8")
    assert ds.decode(ds.val[-20:]) == text[-20:]


def test_encode_decode_roundtrip(shakespeare):
    s = "To be, or not to be: that is the question.\n"
    ids = shakespeare.encode(s)
    assert ids.dtype == np.int64 and ids.shape == (len(s),)
    assert shakespeare.decode(ids) == s
    assert shakespeare.decode(list(ids)) == s
    with pytest.raises(DataError, match="not in the vocabulary"):
        shakespeare.encode("caf\u00e9")


def test_text_batch_windows_and_shift():
    ids = np.arange(50, dtype=np.int64)   # an id equals its position, so x shows its offset
    rng = np.random.default_rng(0)
    x, y = get_text_batch(ids, 32, 8, rng)
    assert x.shape == y.shape == (32, 8)
    assert x.dtype == y.dtype == np.int64
    assert x.flags.c_contiguous and y.flags.c_contiguous
    np.testing.assert_array_equal(x, x[:, :1] + np.arange(8))   # contiguous windows
    np.testing.assert_array_equal(y, x + 1)                     # targets shifted by one
    assert x[:, 0].min() >= 0 and y[:, -1].max() <= 49          # inside the split
    # all offsets 0..41 are reachable (the last window's target ends at the last id)
    offsets = get_text_batch(ids, 4000, 8, np.random.default_rng(1))[0][:, 0]
    assert set(offsets) == set(range(42))


def test_text_batch_reproducible(shakespeare):
    a = get_text_batch(shakespeare.train, 12, 64, np.random.default_rng(42))
    b = get_text_batch(shakespeare.train, 12, 64, np.random.default_rng(42))
    c = get_text_batch(shakespeare.train, 12, 64, np.random.default_rng(43))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    np.testing.assert_array_equal(a[0][:, 1:], a[1][:, :-1])


def test_text_batch_minimum_length():
    ids = np.arange(9, dtype=np.int64)
    x, y = get_text_batch(ids, 3, 8, np.random.default_rng(0))   # exactly one window
    np.testing.assert_array_equal(x, np.tile(np.arange(8), (3, 1)))
    with pytest.raises(DataError, match="need at least block_size\\+1 = 10"):
        get_text_batch(ids, 3, 9, np.random.default_rng(0))


def test_check_block(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("abcdefghij" * 10, encoding="utf-8")   # 100 chars: train 90, val 10
    ds = load_text(path)
    ds.check_block(9)
    with pytest.raises(DataError) as e:
        ds.check_block(64)
    assert str(e.value) == ("text too short: validation split has 10 characters, "
                            "need at least block_size+1 = 65")


def test_text_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_text(tmp_path / "missing.txt")
    with pytest.raises(DataError, match="directory"):
        load_text(tmp_path)
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        load_text(tmp_path / "empty.txt")
    (tmp_path / "binary.bin").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(DataError, match="binary.*offset 8"):
        load_text(tmp_path / "binary.bin")
    (tmp_path / "latin1.txt").write_bytes("na\u00efve text".encode("latin-1"))
    with pytest.raises(DataError, match="not valid UTF-8: byte 0xef at offset 2"):
        load_text(tmp_path / "latin1.txt")
    for name in ("missing.txt", "latin1.txt"):   # one line each, naming the file
        with pytest.raises(DataError) as e:
            load_text(tmp_path / name)
        assert name in str(e.value) and "\n" not in str(e.value)


def test_utf8_text_beyond_ascii(tmp_path):
    path = tmp_path / "u.txt"
    path.write_text("\u00e9t\u00e9 \u2014 \u65e5\u672c " * 20, encoding="utf-8")
    ds = load_text(path)
    assert ds.vocab == "".join(sorted(set("\u00e9t\u00e9 \u2014 \u65e5\u672c ")))
    assert ds.decode(np.concatenate([ds.train, ds.val])) == path.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------ images

def test_mnist_shapes_range_and_labels(mnist):
    ds = mnist
    assert isinstance(ds, ImageDataset)
    assert ds.train_x.shape == (8000, 28, 28, 1) and ds.val_x.shape == (2000, 28, 28, 1)
    assert ds.train_y.shape == (8000,) and ds.val_y.shape == (2000,)
    assert ds.train_x.dtype == np.float32 and ds.train_y.dtype == np.int64
    assert (ds.image_size, ds.in_channels, ds.n_classes) == (28, 1, 10)
    for x in (ds.train_x, ds.val_x):
        assert x.min() == 0.0 and x.max() == 1.0
    counts = np.bincount(np.concatenate([ds.train_y, ds.val_y]), minlength=10)
    assert counts.tolist() == MNIST_COUNTS
    assert np.bincount(ds.val_y, minlength=10).min() > 150   # a shuffled split, not the tail
    # pixels of a digit: a blank border around ink, as 28x28 MNIST has
    assert ds.train_x[:, 0, :, 0].max() < 0.5 and ds.train_x[:, 14, :, 0].max() == 1.0


def test_mnist_split_is_fixed(mnist):
    again = load_mnist(DATA)
    np.testing.assert_array_equal(again.train_y, mnist.train_y)
    np.testing.assert_array_equal(again.val_x, mnist.val_x)


def _write_idx(path, magic, dims, payload):
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(f">I{len(dims)}I", magic, *dims) + payload)


def test_mnist_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_mnist(tmp_path)
    shutil.copy(DATA / "t10k-labels-idx1-ubyte.gz", tmp_path)
    images = tmp_path / "t10k-images-idx3-ubyte.gz"

    _write_idx(images, 2049, (10000,), bytes(10000))   # a label file in place of images
    with pytest.raises(DataError, match="magic number 2049, expected 2051"):
        load_mnist(tmp_path)
    _write_idx(images, 2051, (10000, 28, 28), bytes(100))   # truncated pixels
    with pytest.raises(DataError, match="header"):
        load_mnist(tmp_path)
    _write_idx(images, 2051, (5, 28, 28), bytes(5 * 784))   # count mismatch with labels
    with pytest.raises(DataError, match="5 images but .* 10000 labels"):
        load_mnist(tmp_path)
    images.write_bytes(b"this is not gzip data at all")
    with pytest.raises(DataError, match="cannot read"):
        load_mnist(tmp_path)
    good = (DATA / "t10k-images-idx3-ubyte.gz").read_bytes()
    images.write_bytes(good[:1000])                         # truncated gzip stream
    with pytest.raises(DataError, match="cannot read"):
        load_mnist(tmp_path)


def test_digits_shapes_and_range():
    ds = load_digits(DATA)
    assert ds.train_x.shape == (1437, 8, 8, 1) and ds.val_x.shape == (360, 8, 8, 1)
    assert ds.train_x.dtype == np.float32 and ds.val_y.dtype == np.int64
    assert (ds.image_size, ds.in_channels, ds.n_classes) == (8, 1, 10)
    assert ds.train_x.min() == 0.0 and ds.train_x.max() == 1.0
    assert set(ds.train_y.tolist()) == set(range(10)) == set(ds.val_y.tolist())


def test_digits_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_digits(tmp_path)
    with gzip.open(tmp_path / "digits.csv.gz", "wt") as f:
        f.write("1,2,3\n4,5,6\n")
    with pytest.raises(DataError, match="64 pixels"):
        load_digits(tmp_path)
    with gzip.open(tmp_path / "digits.csv.gz", "wt") as f:
        f.write(",".join(["17"] * 64 + ["3"]) + "\n")
    with pytest.raises(DataError, match="0..16"):
        load_digits(tmp_path)


def test_image_batch(mnist):
    x, y = get_image_batch(mnist.train_x, mnist.train_y, 16, np.random.default_rng(0))
    assert x.shape == (16, 28, 28, 1) and x.dtype == np.float32
    assert y.shape == (16,) and y.dtype == np.int64
    x2, y2 = get_image_batch(mnist.train_x, mnist.train_y, 16, np.random.default_rng(0))
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    # each example keeps its own label: find it back in the training set
    i = int(np.nonzero((mnist.train_x == x[0]).all(axis=(1, 2, 3)))[0][0])
    assert mnist.train_y[i] == y[0]
    x[...] = -1.0   # a batch is a copy, never a view of the data set
    assert mnist.train_x.min() == 0.0


# ------------------------------------------------------------------------------ load_dataset

def test_load_dataset_dispatch(tmp_path):
    text = load_dataset("gpt", None, DATA)
    assert isinstance(text, TextDataset) and text.vocab_size == 65
    small = tmp_path / "t.txt"
    small.write_text("hello world\n" * 5, encoding="utf-8")
    assert load_dataset("gpt", str(small)).vocab == "\n dehlorw"
    assert load_dataset("vit", None, DATA).image_size == 28
    assert load_dataset("vit", "digits", DATA).image_size == 8
    with pytest.raises(DataError, match="unknown image data set 'cifar10'.*mnist, digits"):
        load_dataset("vit", "cifar10", DATA)
    with pytest.raises(DataError, match="unknown model"):
        load_dataset("rnn", None, DATA)


# ---------------------------------------------------------------------------------------------
# Encoding large text: pieces, the smallest dtype, peak memory (issue 9, class 10)

@pytest.mark.parametrize("piece", [1, 2, 3, 5, 64])
def test_encoding_in_pieces_matches_the_whole_text(tmp_path, monkeypatch, piece):
    """Pieces of 1..64 bytes cut 2-, 3- and 4-byte characters anywhere: the ids are those of the
    text decoded whole, and the vocabulary is sorted(set(text))."""
    monkeypatch.setattr(data_mod, "TEXT_PIECE", piece)
    text = "héllo wörld → ∑ 𝄞 naïve\nabc" * 7
    p = tmp_path / "t.txt"
    p.write_text(text, encoding="utf-8")
    ds = load_text(p)
    assert ds.vocab == "".join(sorted(set(text)))
    assert ds.decode(np.concatenate([ds.train, ds.val])) == text
    assert ds.train.dtype == np.uint8


def test_ids_take_the_smallest_dtype(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("".join(map(chr, range(0x100, 0x100 + 300))) * 2, encoding="utf-8")
    ds = load_text(p)
    assert ds.vocab_size == 300 and ds.train.dtype == np.uint16
    x, y = get_text_batch(ds.train, 4, 8, np.random.default_rng(0))
    assert x.dtype == np.int64 and x.max() < 300
    assert data_mod.id_dtype(256) == np.uint8 and data_mod.id_dtype(257) == np.uint16
    assert data_mod.id_dtype(70_000) == np.uint32


@pytest.mark.parametrize("piece", [4, 1024])
@pytest.mark.parametrize("bad,offset", [(b"\xff", 10), (b"\xc3(", 10), (b"\x00", 10),
                                        (b"\xe2\x82", 10)])
def test_bad_byte_offset_is_the_files_at_any_piece_size(tmp_path, monkeypatch, piece, bad,
                                                        offset):
    monkeypatch.setattr(data_mod, "TEXT_PIECE", piece)
    p = tmp_path / "t.txt"
    p.write_bytes("é".encode() * 5 + bad + b"tail text")            # bad byte at offset 10
    with pytest.raises(DataError, match=f"offset {offset}"):
        load_text(p)


def test_peak_memory_per_mb_of_text(tmp_path):
    """Loading 24 MB of text in a fresh process raises its peak RSS by at most the ids (one
    byte per character) plus 32 MB of pieces; the old loader took 22 MB per MB."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import text_memory
    finally:
        sys.path.pop(0)
    path = tmp_path / "big.txt"
    text_memory.write_text(path, 24)
    res = text_memory.measure(path, ROOT)
    assert res["dtype"] == "uint8"
    assert res["rss_peak_mb"] - res["rss_before_mb"] <= res["file_mb"] + 32, res
