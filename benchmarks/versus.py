"""Shared by benchmarks/torch_gpt.py and benchmarks/torch_vit.py: time our model and PyTorch's the
same way, alternating blocks of iterations so that load from elsewhere hits both sides alike.

Each block runs in a fresh child process (the script itself, with --child ours|torch): in one
process PyTorch's OpenMP threads and NumPy's OpenBLAS threads compete for the cores and both
sides measured 20-40% slower. A child gets runtime.worker_env(threads) when --threads is given
(BLAS reads its thread count when NumPy loads, so only a fresh process can change it), and our
side calls runtime.setup(), exactly as `python cli.py train` does (malloc thresholds, Numba's
threading layer; without them our side measured 15-30% slower).
"""
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))                          # run from a checkout

from minitransformer import runtime  # noqa: E402
from minitransformer.analysis.bench import (cpu_model, gemm_peak, summarize,  # noqa: E402
                                             time_iterations)

NOT_FORWARDED = ("json", "child", "same_process", "gemm_size", "shape")


def child_env(threads):
    """The environment of a child: ours, the checkout on PYTHONPATH, the thread counts."""
    env = dict(os.environ) if threads is None else runtime.worker_env(threads)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def setup_side(side, threads):
    """Process settings of one side in its own process: ours as the CLI sets them, torch's
    intra-op threads = threads (or all cores)."""
    if side == "ours":
        runtime.setup(threads=threads)
    else:
        import torch
        torch.set_num_threads(threads or os.cpu_count())


def torch_block(torch, C, NH, eps, causal, gelu):
    """A pre-LN transformer block in PyTorch, as ours: fused qkv, scaled-dot-product attention
    (causal or not), an MLP of 4C with GELU ("tanh": GPT-2's, "none": exact, timm's), LayerNorm
    eps as given, biases everywhere. (B, T, C) -> (B, T, C)."""
    nn, F = torch.nn, torch.nn.functional

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.ln_2 = nn.LayerNorm(C, eps=eps), nn.LayerNorm(C, eps=eps)
            self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
            self.fc, self.fc_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

        def forward(self, x):
            B, T, _ = x.shape
            q, k, v = self.qkv(self.ln_1(x)).split(C, dim=2)
            q, k, v = (t.view(B, T, NH, C // NH).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            x = x + self.proj(y.transpose(1, 2).contiguous().view(B, T, C))
            return x + self.fc_proj(F.gelu(self.fc(self.ln_2(x)), approximate=gelu))

    return Block()


def torch_training_step(torch, model, x, y):
    """step() for a PyTorch model whose forward(x, y) is the loss: weight matrices drawn from
    N(0, 0.02) (speed-neutral), then loss.backward, global clipping to 1.0 and torch AdamW (lr
    1e-3, betas 0.9 / 0.99, weight decay 0.1 on tensors of 2 or more dimensions only), as ours."""
    for p in model.parameters():
        if p.dim() == 2:
            torch.nn.init.normal_(p, 0.0, 0.02)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99), eps=1e-8)

    def step():
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss
    return step


def time_step(side, step, a):
    """Seconds per timed iteration of step(); ours then gives BLAS its threads back (its shards
    set one), so that a GEMM peak measured after it in this process (--same-process) is right."""
    times = time_iterations(step, a.iters, a.warmup)
    if side == "ours":
        step.keywords["shards"].close()
    return times


def run_child(script, what, a):
    """Run `script --child what` with a's options in a fresh process; its last line as JSON."""
    cmd = [sys.executable, str(script), "--child", what] + [
        f"--{k.replace('_', '-')}={v}" for k, v in vars(a).items()
        if k not in NOT_FORWARDED and v is not None]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         env=child_env(a.threads)).stdout
    return json.loads(out.strip().splitlines()[-1])


def peak(script, a):
    """The float32 GEMM peak with the benchmark's threads (in a child when --threads is given)."""
    if a.threads is None or a.same_process:
        return gemm_peak(a.gemm_size)
    return run_child(script, "peak", a)


def alternate(script, a, time_side):
    """(ours, torch, peak): a.rounds alternating blocks of each side, ours and torch each a list
    of a.rounds lists of seconds per iteration."""
    run_side = (lambda side: time_side(side, a)) if a.same_process else \
        (lambda side: run_child(script, side, a))
    p = peak(script, a)
    t_ours, t_torch = [], []
    for _ in range(a.rounds):                          # alternate: shared load hits both
        t_ours.append(run_side("ours"))
        t_torch.append(run_side("torch"))
    return t_ours, t_torch, max(p, peak(script, a))   # before and after, as bench


def child_main(a, time_side, floor=None):
    """What a child does: print one JSON line (times of a block, the GEMM peak, or floor(a): our
    step's GEMM floor in seconds, benchmarks/torch_gpt.py's)."""
    if a.child in ("peak", "floor"):
        runtime.setup(threads=a.threads)
        print(json.dumps(gemm_peak(a.gemm_size) if a.child == "peak" else floor(a)))
    else:
        setup_side(a.child, a.threads)
        print(json.dumps(time_side(a.child, a)))


def add_common_options(ap, defaults):
    """The options both scripts share; defaults: {name: int} of the model options."""
    for name, default in list(defaults.items()) + [("iters", 50), ("warmup", 5), ("rounds", 3)]:
        ap.add_argument("--" + name, type=int, default=default)
    ap.add_argument("--threads", type=int, default=None,
                    help="BLAS / Numba / torch threads of each side (1: as sweep workers run); "
                         "default: all cores")
    ap.add_argument("--gemm-size", type=int, default=2048, help="n of the n x n GEMM peak test")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--same-process", action="store_true",
                    help="time both sides in this process (their thread pools then compete)")
    ap.add_argument("--child", choices=("ours", "torch", "peak", "floor"), help="(internal)")


def report(a, torch_version, n_params, flops, tokens, t_ours, t_torch, gemm, floor=None):
    """The JSON report of a comparison (t_ours, t_torch: alternate's rounds). The medians are
    over all timed iterations of a side; torch / ours is also given round by round (the two
    blocks of a round ran back to back), whose spread shows how much the ratio moved with the
    machine's load during the run. Two ceilings on torch / ours: the model FLOPs at the GEMM
    peak (no step can be faster), and, given floor (seconds), our step's matrix products timed
    alone (analysis/bench.py's GEMM floor: none of our steps can be faster)."""
    by_round = [round(statistics.median(t) / statistics.median(o), 3)
                for o, t in zip(t_ours, t_torch)]
    t_ours, t_torch = sum(t_ours, []), sum(t_torch, [])
    s_ours = summarize(t_ours, tokens, flops, gemm)
    s_torch = summarize(t_torch, tokens, flops, gemm)
    at_peak_ms = flops / (gemm * 1e9) * 1e3
    r = dict(config={k: v for k, v in vars(a).items() if k != "child"}, n_params=n_params,
             gflop_per_iter=round(flops / 1e9, 4), gemm_peak_gflops=round(gemm, 1),
             torch_version=torch_version, cpu=cpu_model(), cpus=os.cpu_count(),
             threads=a.threads if a.threads is not None else os.cpu_count(),
             minitransformer=s_ours, torch=s_torch,
             ratio_ours_over_torch=round(s_ours["ms_median"] / s_torch["ms_median"], 3),
             torch_over_ours=round(s_torch["ms_median"] / s_ours["ms_median"], 3),
             torch_over_ours_by_round=by_round,
             ms_at_gemm_peak=round(at_peak_ms, 3),
             torch_over_peak_time=round(s_torch["ms_median"] / at_peak_ms, 3))
    if floor is not None:
        r.update(gemm_floor_ms=round(1e3 * floor, 3),
                 torch_over_floor=round(s_torch["ms_median"] / (1e3 * floor), 3))
    return r


def print_report(r, title, gemm_size):
    """The report as a small table."""
    a = r["config"]
    where = "one process" if a["same_process"] else "a fresh process per block"
    print(f"{title}: {r['n_params']:,} parameters, {r['gflop_per_iter']:.3f} GFLOP/iter, float32,"
          f" {r['threads']} thread(s), {a['rounds']} alternating blocks of {a['iters']} timed "
          f"iterations per side ({where})")
    print(f"machine: {r['cpu']}, {r['cpus']} CPU(s); measured GEMM peak (np.matmul "
          f"{gemm_size}^2 float32, same threads): {r['gemm_peak_gflops']:.1f} GFLOP/s")
    print(f"{'':16}{'ms/iter median':>16}{'p90':>10}{'mean':>10}{'tokens/s':>12}"
          f"{'GFLOP/s':>10}{'of peak':>10}")
    for name, s in (("minitransformer", r["minitransformer"]),
                    (f"torch {r['torch_version']}", r["torch"])):
        print(f"{name:16}{s['ms_median']:16.2f}{s['ms_p90']:10.2f}{s['ms_mean']:10.2f}"
              f"{s['tokens_per_s']:12,.0f}{s['gflops']:10.1f}{s['fraction_of_peak']:10.1%}")
    print(f"ratio ours / torch (median ms/iter): {r['ratio_ours_over_torch']:.2f} "
          f"(torch / ours {r['torch_over_ours']:.2f}: above 1 means we are faster)")
    print("torch / ours round by round: "
          + " ".join(f"{x:.2f}" for x in r["torch_over_ours_by_round"]))
    print(f"ceiling: the model FLOPs at the GEMM peak take {r['ms_at_gemm_peak']:.2f} ms/iter; "
          f"torch / that = {r['torch_over_peak_time']:.2f}, the most any implementation can reach")
    if "gemm_floor_ms" in r:
        print(f"ceiling: our step's matrix products alone take {r['gemm_floor_ms']:.2f} ms/iter "
              f"(GEMM floor, as `cli.py bench`); torch / that = {r['torch_over_floor']:.2f}, "
              f"the most faster work between our products can reach")
