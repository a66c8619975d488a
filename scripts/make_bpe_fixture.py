#!/usr/bin/env python
"""Make tests/fixtures/bpe_shakespeare/ with the `tokenizers` library (pip install -e ".[hf]").

    python scripts/make_bpe_fixture.py

A byte-level BPE of 320 tokens (GPT-2's recipe: the 256 byte stand-ins, GPT-2's pre-tokenizer
regex, no prefix space, no special tokens) trained on the training split of Tiny Shakespeare (its
first 90% of characters), saved in both layouts a GPT-2 folder can have:
  json/tokenizer.json              Hugging Face's one-file layout (Tokenizer.save)
  pair/vocab.json, pair/merges.txt GPT-2's original two files (BPE model.save)
tests/test_tokenizer.py loads both, checks they encode alike and round-trip every character.
"""
from pathlib import Path
import shutil

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "bpe_shakespeare"
VOCAB_SIZE = 320


def main():
    text = (ROOT / "data" / "tinyshakespeare.txt").read_text(encoding="utf-8")
    train = text[:int(len(text) * 0.9)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, show_progress=False, special_tokens=[],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([train], trainer)
    if OUT.exists():
        shutil.rmtree(OUT)
    (OUT / "json").mkdir(parents=True)
    (OUT / "pair").mkdir()
    tok.save(str(OUT / "json" / "tokenizer.json"))
    tok.model.save(str(OUT / "pair"))
    for f in sorted(OUT.rglob("*.*")):
        print(f"{f.relative_to(OUT)}  {f.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
