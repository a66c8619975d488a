#!/usr/bin/env python
"""Make tests/fixtures/hf_gpt2_tiny/ ONCE with the real Hugging Face `transformers` library.

    pip install torch transformers        # only for this script; the project never needs them
    python scripts/make_hf_fixture.py

A tiny random GPT-2 (2 layers, 32 channels, 2 heads, vocabulary 50, 16 positions), saved with
`save_pretrained` exactly as Hugging Face writes it (config.json, model.safetensors,
generation_config.json), plus a fixed input (input_ids.npy) and the float32 logits this model
gave on it (logits.npy). Every parameter, LayerNorms and biases included, is moved away from its
init by N(0, 0.1^2) noise, so a test that maps one tensor wrongly cannot pass by luck.
tests/test_hf.py checks that minitransformer's import of this folder reproduces the logits.
"""
from pathlib import Path
import shutil

import numpy as np
import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "hf_gpt2_tiny"


def main():
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=50, n_positions=16, n_embd=32, n_layer=2, n_head=2,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for p in model.parameters():                   # lm_head.weight is wte.weight (tied)
            p.add_(0.1 * torch.randn_like(p))
    ids = torch.randint(0, config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(ids).logits                     # (2, 16, 50) float32

    if OUT.exists():
        shutil.rmtree(OUT)
    model.save_pretrained(OUT)                         # config.json + model.safetensors
    np.save(OUT / "input_ids.npy", ids.numpy().astype(np.int64))
    np.save(OUT / "logits.npy", logits.numpy().astype(np.float32))
    (OUT / "VERSIONS.txt").write_text(f"transformers {transformers.__version__}\n"
                                      f"torch {torch.__version__}\n")
    for f in sorted(OUT.iterdir()):
        print(f"{f.name:24s} {f.stat().st_size:>8,d} bytes")


if __name__ == "__main__":
    main()
