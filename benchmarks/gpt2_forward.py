"""Speed of a GPT-2 small forward pass here: `python benchmarks/gpt2_forward.py`.

Builds a GPT-2-small-shaped model locally (vocabulary 50,257, 1,024 positions, 12 blocks of 12
heads, 768 channels: 124M parameters, random gpt2 init; the weights do not change the speed, so
no download is needed) and times model.forward on random token ids, float32, for each
--shape B,T (default 1,1024 and 8,128 and 1,64). Prints one line per shape: milliseconds per
forward (median of --iters after --warmup), tokens per second, and the achieved GFLOP/s next to
this machine's measured float32 GEMM peak (analysis/bench.py).

Forward FLOPs: 2 * N * B * T for the weight matrices (N = parameters without wpe, counting wte
once as the tied LM head), plus 4 * L * C * B * T^2 for the attention scores and their
weighted sum (the causal half is computed too).
"""
import argparse
import json
import statistics

import numpy as np

from minitransformer import GPTConfig, build_model, runtime
from minitransformer.analysis.bench import gemm_peak, time_iterations

GPT2_SMALL = dict(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768)


def forward_flops(cfg, n_params, B, T):
    n = n_params - cfg.block_size * cfg.n_embd                 # wpe is a lookup, not a matmul
    return 2 * n * B * T + 4 * cfg.n_layer * cfg.n_embd * B * T * T


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", action="append", default=None, help="B,T (repeatable)")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    runtime.setup()
    shapes = [tuple(int(v) for v in s.split(",")) for s in (args.shape or ["1,1024", "8,128",
                                                                            "1,64"])]
    cfg = GPTConfig(**GPT2_SMALL)
    model = build_model(cfg, init="gpt2", seed=0, dtype="float32")
    n_params = sum(p.size for p in model.params.values())
    peak = gemm_peak()
    rng = np.random.default_rng(0)
    rows = []
    for B, T in shapes:
        idx = rng.integers(0, cfg.vocab_size, (B, T))
        times = time_iterations(lambda: model.forward(idx), args.iters, args.warmup)
        ms = 1e3 * statistics.median(times)
        gflops = forward_flops(cfg, n_params, B, T) / (ms / 1e3) / 1e9
        rows.append({"batch": B, "tokens": T, "ms_per_forward": round(ms, 1),
                     "tokens_per_s": round(B * T / (ms / 1e3)), "gflops": round(gflops, 1),
                     "gemm_peak_gflops": round(peak, 1), "n_params": int(n_params)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"GPT-2 small shape, {n_params:,} parameters, float32; GEMM peak {peak:.1f} GFLOP/s")
    for r in rows:
        print(f"B={r['batch']:<3d} T={r['tokens']:<5d} {r['ms_per_forward']:9.1f} ms/forward  "
              f"{r['tokens_per_s']:8,d} tokens/s  {r['gflops']:6.1f} GFLOP/s "
              f"({r['gflops'] / peak:.0%} of peak)")


if __name__ == "__main__":
    main()
