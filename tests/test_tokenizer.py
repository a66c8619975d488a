"""Tokenizers: the byte-level BPE fixture (scripts/make_bpe_fixture.py) in both file layouts,
BPE training, and GPT-2 import with its tokenizer files."""
import json
from pathlib import Path
import shutil

import numpy as np
import pytest

pytest.importorskip("tokenizers")           # the hf extra (installed by the test extra)
pytest.importorskip("safetensors")

from minitransformer import GPTConfig, build_model
from minitransformer.cli import main
from minitransformer.analysis.hf import hf_config, hf_tensors
from minitransformer.analysis.tensorfile import write_safetensors
from minitransformer.training.tokenizer import (load_bpe, train_bpe, run_tokenizer, CharTokenizer,
                                                find_bpe_files)
from minitransformer.errors import DataError, ConfigError

ROOT = Path(__file__).resolve().parent.parent
BPE = ROOT / "tests" / "fixtures" / "bpe_shakespeare"
TEXT = (ROOT / "data" / "tinyshakespeare.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def both():
    return load_bpe(BPE / "json"), load_bpe(BPE / "pair")


def test_both_layouts_encode_alike_and_round_trip_every_character(both):
    one, two = both
    assert one.vocab_size == two.vocab_size == 320
    ids = one.encode(TEXT)                               # the whole text (2 s)
    assert len(ids) < 0.7 * len(TEXT)                    # merges do merge (0.67 tokens/char)
    assert one.decode(ids) == TEXT
    part = TEXT[:100_000]
    np.testing.assert_array_equal(two.encode(part), one.encode(part))
    for ch in sorted(set(TEXT)) + ["é", "ß", "Ω", "中", "😀", "\t", "\r\n", "\x00"]:
        assert one.decode(one.encode(ch)) == ch, repr(ch)
        assert two.decode(two.encode(ch)) == ch, repr(ch)
    assert "".join(one.pieces(one.encode("ROMEO: thou"))) == "ROMEO: thou"


def test_training_is_deterministic_and_is_the_fixtures_recipe():
    train = TEXT[:int(len(TEXT) * 0.9)]
    a = train_bpe(train, 320)
    b = train_bpe(train, 320)
    assert a.files == b.files                            # the same text, the same tokenizer
    ours = json.loads(a.files["tokenizer.json"])["model"]["merges"]
    fixture = json.loads((BPE / "json" / "tokenizer.json").read_text())["model"]["merges"]
    assert ours == fixture
    with pytest.raises(ConfigError, match="vocab-size"):
        train_bpe(train, 100)


def test_missing_merges_and_broken_files_are_data_errors(tmp_path):
    d = tmp_path / "t"
    d.mkdir()
    shutil.copy(BPE / "pair" / "vocab.json", d / "vocab.json")
    with pytest.raises(DataError, match="no merges.txt"):
        find_bpe_files(d)
    (d / "merges.txt").write_text("#version: 0.2\n")
    with pytest.raises(DataError, match="merges are missing"):
        load_bpe(d)
    (d / "merges.txt").write_text("#version: 0.2\nzz qq\n")
    with pytest.raises(DataError, match="cannot be read"):
        load_bpe(d)
    spec = json.loads((BPE / "json" / "tokenizer.json").read_text())
    spec["model"]["merges"] = []
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(DataError, match="merges are missing"):
        load_bpe(tmp_path / "j")


def test_run_records_are_read_back():
    assert run_tokenizer("r", {"vocab": "ab"}).vocab == "ab"               # runs made before
    assert run_tokenizer("r", {"vocab": None}) is None                     # ids only
    assert isinstance(run_tokenizer("r", {"vocab": "ab", "tokenizer": {"kind": "char"}}),
                      CharTokenizer)
    with pytest.raises(DataError, match="kind"):
        run_tokenizer("r", {"tokenizer": {"kind": "wordpiece"}})


def gpt2_folder(path, layout, vocab_size=320, seed=0):
    """A tiny GPT-2 folder as save_pretrained writes it (our export is byte-identical to it,
    tests/test_hf.py), with the fixture tokenizer's files beside it."""
    cfg = GPTConfig(vocab_size=vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=32)
    model = build_model(cfg, seed=seed)
    path.mkdir(parents=True)
    write_safetensors(path / "model.safetensors", hf_tensors(model.params), {"format": "pt"})
    (path / "config.json").write_text(json.dumps(hf_config(cfg)))
    for f in (BPE / layout).iterdir():
        shutil.copy(f, path / f.name)
    return model


@pytest.mark.parametrize("layout", ["json", "pair"])
def test_import_gpt2_keeps_its_tokenizer(tmp_path, capsys, layout):
    gpt2_folder(tmp_path / "hf", layout)
    main(["import-gpt2", str(tmp_path / "hf"), "--out", str(tmp_path / "run")])
    assert "BPE tokenizer" in capsys.readouterr().out
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    files = ["tokenizer.json"] if layout == "json" else ["vocab.json", "merges.txt"]
    assert saved["tokenizer"] == {"kind": "bpe", "files": files, "vocab_size": 320}
    for name in files:                                    # copied byte for byte
        assert (tmp_path / "run" / name).read_bytes() == (BPE / layout / name).read_bytes()
    tok = run_tokenizer(tmp_path / "run", saved)
    assert tok.decode(tok.encode("KING RICHARD:")) == "KING RICHARD:"
    main(["export-gpt2", str(tmp_path / "run"), "--out", str(tmp_path / "back")])
    for name in files:
        assert (tmp_path / "back" / name).read_bytes() == (BPE / layout / name).read_bytes()


def test_tokenizer_of_another_vocabulary_size_is_one_line_exit_2(tmp_path, capsys):
    gpt2_folder(tmp_path / "hf", "json", vocab_size=300)
    with pytest.raises(SystemExit) as e:
        main(["import-gpt2", str(tmp_path / "hf"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "320 tokens" in err and "vocab_size is 300" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_missing_merges_on_import_is_one_line_exit_2(tmp_path, capsys):
    gpt2_folder(tmp_path / "hf", "pair")
    (tmp_path / "hf" / "merges.txt").unlink()
    with pytest.raises(SystemExit) as e:
        main(["import-gpt2", str(tmp_path / "hf"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "no merges.txt" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


SMALL = ["--n-layer", "2", "--n-head", "2", "--n-embd", "32", "--block-size", "16",
         "--batch-size", "2", "--warmup-iters", "0", "--eval-iters", "2", "--log-interval", "1",
         "--no-telemetry"]


def test_sample_on_an_imported_gpt2_decodes_text(tmp_path, capsys):
    """Greedy sampling (top-k 1) through the CLI against a greedy loop written here."""
    model = gpt2_folder(tmp_path / "hf", "json", seed=3)
    main(["import-gpt2", str(tmp_path / "hf"), "--out", str(tmp_path / "run")])
    capsys.readouterr()
    main(["sample", str(tmp_path / "run"), "--prompt", "ROMEO: thou", "--max-new-tokens", "12",
          "--top-k", "1"])
    out = capsys.readouterr().out
    tok = load_bpe(BPE / "json")
    ids = list(tok.encode("ROMEO: thou"))
    for _ in range(12):
        ids.append(int(model.forward(np.array([ids[-16:]]))[0, -1].argmax()))
    assert out == "ROMEO: thou" + tok.decode(ids[-12:]) + "\n"


def test_train_bpe_records_its_tokenizer_and_reports_bits_per_character(tmp_path):
    text = TEXT[:20_000]
    (tmp_path / "t.txt").write_text(text)
    main(["train", "--data", str(tmp_path / "t.txt"), "--out", str(tmp_path / "run"),
          "--tokenizer", "bpe", "--vocab-size", "300", "--max-iters", "3", "--eval-interval", "0",
          *SMALL])
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["tokenizer"] == {"kind": "bpe", "files": ["tokenizer.json"], "vocab_size": 300}
    assert saved["model"]["vocab_size"] == 300 and saved["vocab"] is None
    n_train = int(len(text) * 0.9)
    assert (tmp_path / "run" / "tokenizer.json").read_bytes() == \
        train_bpe(text[:n_train], 300).files["tokenizer.json"]       # learned on the train split
    tok = run_tokenizer(tmp_path / "run", saved)
    per_char = len(tok.encode(text[n_train:])) / (len(text) - n_train)
    last = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()][-1]
    assert per_char < 0.8
    assert last["val_bpc"] == pytest.approx(last["val_loss"] * per_char / np.log(2), rel=1e-12)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["final_val_bpc"] == last["val_bpc"]
    main(["train", "--resume", str(tmp_path / "run"), "--quiet"])   # reads the stored tokenizer
    again = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert again["final_val_loss"] == summary["final_val_loss"]


def test_fine_tune_an_imported_gpt2_on_text_tokenized_the_same_way(tmp_path, capsys):
    gpt2_folder(tmp_path / "hf", "pair")
    main(["import-gpt2", str(tmp_path / "hf"), "--out", str(tmp_path / "gpt2")])
    (tmp_path / "t.txt").write_text(TEXT[:5_000])
    main(["train", "--data", str(tmp_path / "t.txt"), "--out", str(tmp_path / "ft"),
          "--init-from", str(tmp_path / "gpt2"), "--max-iters", "2", "--eval-interval", "0",
          *SMALL])
    out = capsys.readouterr()
    assert "init_from" not in out.err                      # every tensor loaded, none re-drawn
    saved = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert saved["tokenizer"]["files"] == ["vocab.json", "merges.txt"]
    assert saved["model"]["vocab_size"] == 320
    for name in ("vocab.json", "merges.txt"):
        assert (tmp_path / "ft" / name).read_bytes() == (BPE / "pair" / name).read_bytes()
    for bad, expect in ((["--tokenizer", "char"], "--tokenizer char"),
                        (["--tokenizer", "bpe", "--vocab-size", "400"], "--vocab-size 400")):
        with pytest.raises(SystemExit) as e:
            main(["train", "--data", str(tmp_path / "t.txt"), "--out", str(tmp_path / "x"),
                  "--init-from", str(tmp_path / "gpt2"), *bad, *SMALL])
        err = capsys.readouterr().err
        assert e.value.code == 2 and expect in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
