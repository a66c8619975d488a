#!/usr/bin/env python
"""Our default ViT (MNIST) against the same ViT in PyTorch eager, timed the same way, in one run.

    pip install torch          # CPU build; PyTorch is not a dependency of minitransformer
    python benchmarks/torch_vit.py [--iters 50] [--warmup 5] [--rounds 3] [--threads 1] [--json]

The PyTorch model is the ViT of `python cli.py train --model vit` (timm's layout): 28x28x1 images
cut into 7x7 patches (16 tokens) embedded by one linear map of the flattened patch (as our
patch_embed; a stride-7 Conv2d is the same map), a cls token, learned positions, 4 pre-LN blocks
(LayerNorm eps 1e-6, fused qkv, non-causal scaled-dot-product attention, exact-erf GELU MLP of
4C), a final LayerNorm, a linear head on the cls token, cross-entropy over 10 classes; C = 64,
4 heads, batch 64. Training step, for both: loss and gradients, global gradient-norm clipping to
1.0, AdamW (lr 1e-3, betas 0.9 / 0.99, weight decay 0.1 on 2-D tensors only), float32, on the
same fixed batch of random images. Alternating fresh-process blocks as benchmarks/torch_gpt.py
(benchmarks/versus.py). Ratio = ours / torch ms/iter (below 1 means we are faster); then the two
ceilings of benchmarks/torch_gpt.py (the model FLOPs at the GEMM peak, our GEMM floor).
"""
import argparse
import json
import sys

import versus  # (also puts the checkout on sys.path)
from minitransformer import ViTConfig, runtime
from minitransformer.analysis.bench import (bench_shape, ours_vit_step_fn,
                                             sharded_gemm_floor, vit_model_flops)
from minitransformer.training.shards import auto_shards


def torch_vit_step_fn(torch, cfg, batch_size, seed=0):
    """One training iteration of the PyTorch ViT on a fixed random batch, and the model."""
    nn, F = torch.nn, torch.nn.functional
    C, P = cfg.n_embd, cfg.patch_size

    class ViT(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch_embed = nn.Linear(P * P * cfg.in_channels, C)
            self.cls_token = nn.Parameter(torch.zeros(C))
            self.pos_embed = nn.Parameter(torch.zeros(cfg.n_patches + 1, C))
            self.blocks = nn.ModuleList(versus.torch_block(torch, C, cfg.n_head, 1e-6, False,
                                                           "none")
                                        for _ in range(cfg.n_layer))
            self.norm = nn.LayerNorm(C, eps=1e-6)
            self.head = nn.Linear(C, cfg.n_classes)

        def forward(self, img, labels):
            B, H, W, Cin = img.shape
            # (B, H, W, Cin) -> (B, H/P, P, W/P, P, Cin) -> (B, N, P*P*Cin), row-major patches
            x = img.view(B, H // P, P, W // P, P, Cin).permute(0, 1, 3, 2, 4, 5)
            x = self.patch_embed(x.reshape(B, (H // P) * (W // P), P * P * Cin))
            x = torch.cat([self.cls_token.expand(B, 1, C), x], dim=1) + self.pos_embed
            for block in self.blocks:
                x = block(x)
            return F.cross_entropy(self.head(self.norm(x)[:, 0]), labels)

    torch.manual_seed(seed)
    model = ViT()
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((batch_size, cfg.image_size, cfg.image_size, cfg.in_channels), generator=g)
    y = torch.randint(0, cfg.n_classes, (batch_size,), generator=g)
    return versus.torch_training_step(torch, model, x, y), model


def vit_config(a):
    return ViTConfig(n_layer=a.n_layer, n_head=a.n_head, n_embd=a.n_embd,
                     patch_size=a.patch_size)


def time_side(side, a):
    """Seconds per timed iteration of one side ("ours" or "torch") in this process."""
    if side == "ours":
        step, _ = ours_vit_step_fn(vit_config(a), a.batch_size)
    else:
        import torch
        step, _ = torch_vit_step_fn(torch, vit_config(a), a.batch_size)
    return versus.time_step(side, step, a)


def gemm_floor(a):
    """Seconds of our step's GEMM floor, its batch cut into shards as our side's (this process's
    cores, or --threads)."""
    return sharded_gemm_floor(vit_config(a), a.batch_size, auto_shards(a.batch_size))[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    versus.add_common_options(ap, {k.replace("_", "-"): v for k, v in bench_shape("vit").items()})
    a = ap.parse_args()
    try:
        import torch
    except ImportError:
        sys.exit("PyTorch is not installed: `pip install torch` (CPU build) to compare; "
                 "`python cli.py bench` times minitransformer alone.")
    if a.child:
        versus.child_main(a, time_side, gemm_floor)
        return
    if a.same_process:
        runtime.setup(threads=a.threads)
        torch.set_num_threads(a.threads or torch.get_num_threads())
    cfg = vit_config(a)
    # one shard here (only the parameters are counted): BLAS keeps its threads for the peak
    _, model = ours_vit_step_fn(cfg, a.batch_size, shards=1)
    _, tmodel = torch_vit_step_fn(torch, cfg, a.batch_size)
    n_params = sum(p.size for p in model.params.values())
    n_torch = sum(p.numel() for p in tmodel.parameters())
    assert n_params == n_torch, (n_params, n_torch)            # the same model, tensor for tensor
    del model, tmodel
    flops = vit_model_flops(cfg, n_params, a.batch_size)
    t_ours, t_torch, peak = versus.alternate(__file__, a, time_side)
    floor = gemm_floor(a) if a.same_process else versus.run_child(__file__, "floor", a)
    r = versus.report(a, torch.__version__, n_params, flops, a.batch_size * (cfg.n_patches + 1),
                      t_ours, t_torch, peak, floor)
    if a.json:
        print(json.dumps(r, indent=2))
        return
    versus.print_report(r, f"ViT L={a.n_layer} NH={a.n_head} C={a.n_embd} P={a.patch_size} "
                           f"B={a.batch_size} (MNIST 28x28)", a.gemm_size)


if __name__ == "__main__":
    main()
