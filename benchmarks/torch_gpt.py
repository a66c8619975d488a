#!/usr/bin/env python
"""Our GPT against the same GPT in PyTorch eager, timed the same way, in one run.

    pip install torch          # CPU build; PyTorch is not a dependency of minitransformer
    python benchmarks/torch_gpt.py [--iters 50] [--warmup 5] [--rounds 3] [--json]
    python benchmarks/torch_gpt.py --threads 1      # one BLAS / Numba / torch thread each
    python benchmarks/torch_gpt.py --shape gpu      # nanoGPT's GPU shape: L6 H6 C384 T256 B8

The PyTorch model is GPT-2 as nanoGPT writes it, with our configuration: learned positions, pre-LN
blocks (LayerNorm eps 1e-5), fused qkv projection, causal scaled-dot-product attention
(F.scaled_dot_product_attention, as nanoGPT uses), tanh-GELU MLP of 4C, final LayerNorm, LM head
tied to the token embedding, biases everywhere but the head, no dropout. Training step, for both:
loss.backward / loss_and_grads, global gradient-norm clipping to 1.0, AdamW (lr 1e-3, betas 0.9 /
0.99, weight decay 0.1 on 2-D tensors only; torch.optim.AdamW with its default implementation).
Both train in float32 on the same fixed batch of random tokens with all cores: PyTorch with its
intra-op threads, ours as `train` does, the batch cut into one shard per core, each on its own
thread with one BLAS thread (training/shards.py); with --threads 1, one thread each.

Timing is the same function (minitransformer.analysis.bench.time_iterations) for both: `warmup`
untimed iterations, then `iters` timed ones. To be fair on a busy machine the two alternate in
`rounds` blocks, each in a fresh process (benchmarks/versus.py says why), and each side's median
and p90 are over all its timed iterations. Ratio = ours / torch ms/iter (below 1 means we are
faster). Two ceilings follow: PyTorch's time over the model FLOPs' time at the GEMM peak (no
implementation can go past it) and over our step's GEMM floor, its matrix products each timed
alone (`cli.py bench` prints it too; faster work between our products cannot go past it).
"""
import argparse
import json
import sys

import versus  # (also puts the checkout on sys.path)
from minitransformer import GPTConfig, runtime
from minitransformer.analysis.bench import (bench_shape, model_flops, ours_step_fn,
                                             sharded_gemm_floor)
from minitransformer.training.shards import auto_shards

# cpu: the GPT `bench` and `train` use by default (nanoGPT's CPU config); gpu: nanoGPT's GPU
# shape, with the same vocabulary
SHAPES = {"cpu": bench_shape("gpt")}
SHAPES["gpu"] = dict(SHAPES["cpu"], n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=8)


def torch_step_fn(torch, cfg, batch_size, seed=0):
    """One training iteration of the PyTorch GPT on a fixed random batch, and the model."""
    nn, F = torch.nn, torch.nn.functional
    C = cfg.n_embd

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(cfg.vocab_size, C)
            self.wpe = nn.Embedding(cfg.block_size, C)
            self.h = nn.ModuleList(versus.torch_block(torch, C, cfg.n_head, 1e-5, True, "tanh")
                                   for _ in range(cfg.n_layer))
            self.ln_f = nn.LayerNorm(C, eps=1e-5)

        def forward(self, idx, targets):
            x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
            for block in self.h:
                x = block(x)
            logits = self.ln_f(x) @ self.wte.weight.T          # tied head, no bias
            return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))

    torch.manual_seed(seed)
    model = GPT()
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, cfg.vocab_size, (batch_size, cfg.block_size), generator=g)
    y = torch.randint(0, cfg.vocab_size, (batch_size, cfg.block_size), generator=g)
    return versus.torch_training_step(torch, model, x, y), model


def time_side(side, a):
    """Seconds per timed iteration of one side ("ours" or "torch") in this process."""
    cfg = GPTConfig(vocab_size=a.vocab_size, block_size=a.block_size, n_layer=a.n_layer,
                    n_head=a.n_head, n_embd=a.n_embd)
    if side == "ours":
        step, _ = ours_step_fn(cfg, a.batch_size)
    else:
        import torch
        step, _ = torch_step_fn(torch, cfg, a.batch_size)
    return versus.time_step(side, step, a)


def gemm_floor(a):
    """Seconds of our step's GEMM floor, its batch cut into shards as our side's (this process's
    cores, or --threads)."""
    cfg = GPTConfig(vocab_size=a.vocab_size, block_size=a.block_size, n_layer=a.n_layer,
                    n_head=a.n_head, n_embd=a.n_embd)
    return sharded_gemm_floor(cfg, a.batch_size, auto_shards(a.batch_size))[0]


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", choices=tuple(SHAPES), default="cpu",
                    help="cpu: nanoGPT's CPU config (4x4x128, T 64, B 12); gpu: its GPU shape "
                         "(6x6x384, T 256, B 8); the options below override it")
    versus.add_common_options(ap, {k.replace("_", "-"): None for k in SHAPES["cpu"]})
    a = ap.parse_args()
    for k, v in SHAPES[a.shape].items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    return a


def main():
    a = parse_args()
    try:
        import torch
    except ImportError:
        sys.exit("PyTorch is not installed: `pip install torch` (CPU build) to compare; "
                 "`python cli.py bench` times minitransformer alone.")
    if a.child:                                                # one block of one side, as JSON
        versus.child_main(a, time_side, gemm_floor)
        return
    if a.same_process:
        runtime.setup(threads=a.threads)
        torch.set_num_threads(a.threads or torch.get_num_threads())

    cfg = GPTConfig(vocab_size=a.vocab_size, block_size=a.block_size, n_layer=a.n_layer,
                    n_head=a.n_head, n_embd=a.n_embd)
    # one shard here (only the parameters are counted): BLAS keeps its threads for the peak
    _, model = ours_step_fn(cfg, a.batch_size, shards=1)
    _, tmodel = torch_step_fn(torch, cfg, a.batch_size)
    n_params = sum(p.size for p in model.params.values())
    n_torch = sum(p.numel() for p in tmodel.parameters())
    assert n_params == n_torch, (n_params, n_torch)            # the same model, tensor for tensor
    del model, tmodel
    flops = model_flops(cfg, n_params - cfg.block_size * cfg.n_embd, a.batch_size)
    t_ours, t_torch, peak = versus.alternate(__file__, a, time_side)
    floor = gemm_floor(a) if a.same_process else versus.run_child(__file__, "floor", a)
    r = versus.report(a, torch.__version__, n_params, flops, a.batch_size * a.block_size,
                      t_ours, t_torch, peak, floor)
    if a.json:
        print(json.dumps(r, indent=2))
        return
    versus.print_report(r, f"GPT L={a.n_layer} NH={a.n_head} C={a.n_embd} T={a.block_size} "
                           f"B={a.batch_size}", a.gemm_size)


if __name__ == "__main__":
    main()
