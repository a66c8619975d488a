#!/usr/bin/env python
"""Our GPT against the same GPT in PyTorch eager, timed the same way, in one run.

    pip install torch          # CPU build; PyTorch is not a dependency of minitransformer
    python benchmarks/torch_gpt.py [--iters 50] [--warmup 5] [--rounds 3] [--json]

The PyTorch model is GPT-2 as nanoGPT writes it, with our configuration: learned positions, pre-LN
blocks (LayerNorm eps 1e-5), fused qkv projection, causal scaled-dot-product attention
(F.scaled_dot_product_attention, as nanoGPT uses), tanh-GELU MLP of 4C, final LayerNorm, LM head
tied to the token embedding, biases everywhere but the head, no dropout. Training step, for both:
loss.backward / loss_and_grads, global gradient-norm clipping to 1.0, AdamW (lr 1e-3, betas 0.9 /
0.99, weight decay 0.1 on 2-D tensors only; torch.optim.AdamW with its default implementation).
Both train in float32 on the same fixed batch of random tokens with all cores.

Timing is the same function (minitransformer.bench.time_iterations) for both: `warmup` untimed
iterations, then `iters` timed ones. To be fair on a busy machine the two alternate in `rounds`
blocks, and each side's median is over all its timed iterations. Each block runs in a fresh
child process by default: in one process PyTorch's OpenMP threads and NumPy's OpenBLAS threads
compete for the cores and both sides measured 20-40% slower here (--same-process shows it).
Ratio = ours / torch ms/iter (below 1 means we are faster).
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run from a checkout

from minitransformer import GPTConfig  # noqa: E402
from minitransformer.analysis.bench import (gemm_peak, model_flops, ours_step_fn,     # noqa: E402
                                   time_iterations, summarize)


def torch_step_fn(torch, cfg, batch_size, seed=0):
    """One training iteration of the PyTorch GPT on a fixed random batch, and the model."""
    nn, F = torch.nn, torch.nn.functional
    C, NH = cfg.n_embd, cfg.n_head

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.ln_2 = nn.LayerNorm(C, eps=1e-5), nn.LayerNorm(C, eps=1e-5)
            self.c_attn, self.attn_proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
            self.c_fc, self.mlp_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

        def forward(self, x):
            B, T, _ = x.shape
            q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
            q, k, v = (t.view(B, T, NH, C // NH).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.attn_proj(y.transpose(1, 2).contiguous().view(B, T, C))
            return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(cfg.vocab_size, C)
            self.wpe = nn.Embedding(cfg.block_size, C)
            self.h = nn.ModuleList(Block() for _ in range(cfg.n_layer))
            self.ln_f = nn.LayerNorm(C, eps=1e-5)

        def forward(self, idx, targets):
            x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
            for block in self.h:
                x = block(x)
            logits = self.ln_f(x) @ self.wte.weight.T          # tied head, no bias
            return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))

    torch.manual_seed(seed)
    model = GPT()
    for name, p in model.named_parameters():                   # GPT-2 init (speed-neutral)
        if p.dim() == 2:
            nn.init.normal_(p, 0.0, 0.02)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99), eps=1e-8)
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, cfg.vocab_size, (batch_size, cfg.block_size), generator=g)
    y = torch.randint(0, cfg.vocab_size, (batch_size, cfg.block_size), generator=g)

    def step():
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss
    return step, model


def time_side(side, a):
    """Seconds per timed iteration of one side ("ours" or "torch") in this process."""
    cfg = GPTConfig(vocab_size=a.vocab_size, block_size=a.block_size, n_layer=a.n_layer,
                    n_head=a.n_head, n_embd=a.n_embd)
    if side == "ours":
        step, _ = ours_step_fn(cfg, a.batch_size)
    else:
        import torch
        torch.set_num_threads(os.cpu_count())
        step, _ = torch_step_fn(torch, cfg, a.batch_size)
    return time_iterations(step, a.iters, a.warmup)


def time_side_in_child(side, a):
    """time_side in a fresh Python process, so that only one side's thread pools exist."""
    cmd = [sys.executable, __file__, "--child", side] + [
        f"--{k.replace('_', '-')}={v}" for k, v in vars(a).items()
        if k not in ("json", "child", "same_process", "gemm_size")]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, default in (("n-layer", 4), ("n-head", 4), ("n-embd", 128), ("block-size", 64),
                          ("batch-size", 12), ("vocab-size", 65), ("iters", 50), ("warmup", 5),
                          ("rounds", 3)):
        ap.add_argument("--" + name, type=int, default=default)
    ap.add_argument("--gemm-size", type=int, default=2048, help="n of the n x n GEMM peak test")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--same-process", action="store_true",
                    help="time both sides in this process (their thread pools then compete)")
    ap.add_argument("--child", choices=("ours", "torch"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    try:
        import torch
    except ImportError:
        sys.exit("PyTorch is not installed: `pip install torch` (CPU build) to compare; "
                 "`python cli.py bench` times minitransformer alone.")
    if a.child:                                                # one block of one side, as JSON
        print(json.dumps(time_side(a.child, a)))
        return

    cfg = GPTConfig(vocab_size=a.vocab_size, block_size=a.block_size, n_layer=a.n_layer,
                    n_head=a.n_head, n_embd=a.n_embd)
    _, model = ours_step_fn(cfg, a.batch_size)
    _, tmodel = torch_step_fn(torch, cfg, a.batch_size)
    n_params = sum(p.size for p in model.params.values())
    n_torch = sum(p.numel() for p in tmodel.parameters())
    assert n_params == n_torch, (n_params, n_torch)            # the same model, tensor for tensor
    del model, tmodel
    flops = model_flops(cfg, n_params - cfg.block_size * cfg.n_embd, a.batch_size)
    tokens = a.batch_size * a.block_size
    peak = gemm_peak(a.gemm_size)

    run_side = (lambda side: time_side(side, a)) if a.same_process else \
        (lambda side: time_side_in_child(side, a))
    t_ours, t_torch = [], []
    for _ in range(a.rounds):                                  # alternate: shared load hits both
        t_ours += run_side("ours")
        t_torch += run_side("torch")
    peak = max(peak, gemm_peak(a.gemm_size))                   # before and after, as bench
    s_ours = summarize(t_ours, tokens, flops, peak)
    s_torch = summarize(t_torch, tokens, flops, peak)
    report = dict(config={k: v for k, v in vars(a).items() if k != "child"}, n_params=n_params,
                  gflop_per_iter=round(flops / 1e9, 4), gemm_peak_gflops=round(peak, 1),
                  torch_version=torch.__version__, threads=os.cpu_count(),
                  minitransformer=s_ours, torch=s_torch,
                  ratio_ours_over_torch=round(s_ours["ms_median"] / s_torch["ms_median"], 3))
    if a.json:
        print(json.dumps(report, indent=2))
        return
    where = "one process" if a.same_process else "a fresh process per block"
    print(f"GPT L={a.n_layer} NH={a.n_head} C={a.n_embd} T={a.block_size} B={a.batch_size}: "
          f"{n_params:,} parameters, {flops / 1e9:.3f} GFLOP/iter, float32, "
          f"{a.rounds} alternating blocks of {a.iters} timed iterations per side ({where})")
    print(f"measured GEMM peak (np.matmul {a.gemm_size}^2 float32): {peak:.1f} GFLOP/s")
    print(f"{'':16}{'ms/iter median':>16}{'mean':>10}{'tokens/s':>12}{'GFLOP/s':>10}"
          f"{'of peak':>10}")
    for name, s in (("minitransformer", s_ours), (f"torch {torch.__version__}", s_torch)):
        print(f"{name:16}{s['ms_median']:16.2f}{s['ms_mean']:10.2f}{s['tokens_per_s']:12,.0f}"
              f"{s['gflops']:10.1f}{s['fraction_of_peak']:10.1%}")
    print(f"ratio ours / torch (median ms/iter): {report['ratio_ours_over_torch']:.2f}")


if __name__ == "__main__":
    main()
