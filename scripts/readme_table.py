#!/usr/bin/env python
"""Rewrite README's reading-order table with the current line counts of the modules.

    python scripts/readme_table.py          # update README.md in place
    python scripts/readme_table.py --check  # exit 1 if the table is stale (tests/test_readme.py)

The order and the one-line descriptions live here; the counts come from the files.
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ORDER = [  # (path, what to read it for)
    ("minitransformer/config.py", "GPTConfig / ViTConfig: every field, its default, its check"),
    ("minitransformer/layers.py", "forward/backward pairs: linear, LayerNorm, GELU, embeddings, cross-entropy, patches, CLS, pooling, gate"),
    ("minitransformer/attention.py", "multi-head self-attention: qkv (B, T, 3C) -> (B, T, C), causal or not"),
    ("minitransformer/block.py", "the block in its pre / post / none forms, ReZero gate, skip multiplier; the stack of blocks"),
    ("minitransformer/gpt.py", "GPT: parameter table, forward, loss_and_grads (tied LM head)"),
    ("minitransformer/vit.py", "ViT: parameter table, forward, loss_and_grads (patches, CLS or mean pooling)"),
    ("minitransformer/kernels.py", "Numba kernels and their NumPy twins; which one is the fast path and why"),
    ("minitransformer/gradcheck.py", "central differences in float64, relative errors, the model checks"),
    ("minitransformer/__init__.py", "build_model: config + init scheme -> model"),
    ("minitransformer/init.py", "every initialization scheme as a table of rules, with formula and paper"),
    ("minitransformer/optim.py", "AdamW / SGD kernels, gradient clipping, learning-rate schedules"),
    ("minitransformer/data.py", "Tiny Shakespeare, MNIST, digits: loading, checks, batches"),
    ("minitransformer/train.py", "TrainConfig, the training loop, evaluation, resume, divergence, progress"),
    ("minitransformer/runfolder.py", "the run folder's files: atomic writes, checkpoints without pickle, metrics truncation"),
    ("minitransformer/sample.py", "text generation from a trained GPT"),
    ("minitransformer/telemetry.py", "per-tensor and per-layer training statistics"),
    ("minitransformer/spectra.py", "singular values against Marchenko-Pastur"),
    ("minitransformer/sharpness.py", "top Hessian eigenvalue by power iteration on Hessian-vector products"),
    ("minitransformer/landscape.py", "loss along interpolations and filter-normalized directions"),
    ("minitransformer/coordcheck.py", "activation size against width (muP's coordinate check)"),
    ("minitransformer/plots.py", "every picture"),
]

BEGIN, END = "<!-- reading-order:begin -->", "<!-- reading-order:end -->"


def table():
    rows = ["| # | file | lines | what it holds |", "|---|---|---:|---|"]
    for i, (path, what) in enumerate(ORDER, 1):
        n = len((ROOT / path).read_text(encoding="utf-8").splitlines())
        rows.append(f"| {i} | [`{path}`]({path}) | {n} | {what} |")
    return "\n".join(rows)


def main():
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        sys.exit(f"README.md has no {BEGIN} ... {END} section")
    new = pattern.sub(lambda m: f"{BEGIN}\n{table()}\n{END}", text)
    if "--check" in sys.argv:
        if new != text:
            sys.exit("README's reading-order table is stale: run python scripts/readme_table.py")
        return
    readme.write_text(new, encoding="utf-8")


if __name__ == "__main__":
    main()
