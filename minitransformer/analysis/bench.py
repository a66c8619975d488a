"""Speed benchmark: how fast a training iteration is, and how close that is to this machine's peak.

One timed iteration of our GPT (model="vit": our ViT) = loss and gradients (forward + backward) +
gradient clipping + an AdamW step, in float32, on a fixed batch of random tokens (images), the
batch cut into shards as `train` cuts it (one
per core; training/shards.py), after `warmup` untimed iterations (JIT compilation,
caches, BLAS thread start-up). Reported: median, p90, mean and min ms/iter (the median is the
headline; p90 and the mean show how much the run was disturbed: under load from other processes
the mean was three times the median), tokens/s, model GFLOP/s, the measured GEMM peak in the same
dtype and the fraction of it achieved. dtype="float64" reports the speed of the precision the
gradient checks and instruments use, against the float64 GEMM peak.

threads=N runs the whole benchmark (peak included) in a fresh Python process whose BLAS, OpenMP
and Numba thread counts are all N (runtime.worker_env; BLAS reads its count when NumPy loads, so
it cannot be changed in this process): threads=1 is how sweep workers run.

Model FLOPs per iteration (nanoGPT's estimate_mfu, from the PaLM paper's appendix B):

    6 * N * B * T                  every weight: a multiply-add forward and two backward, per token
  + 12 * L * C * T * B * T         attention (q @ k.T and att @ v), forward + backward, full T x T

N = parameters without the position embedding (a lookup, no multiply); the tied wte counts once
(its LM-head matmul). B batch, T block size, L layers, C channels. Elementwise work (LayerNorm,
GELU, softmax, AdamW) is not counted, so GFLOP/s is "useful matmul work per second", as nanoGPT
reports it. A ViT's count is the same rule with its tokens (vit_model_flops).

The GEMM peak is measured, not looked up: the best of 7 np.matmul calls on 2048 x 2048 matrices
(gemm_size) of the benchmark's dtype (2 n^3 FLOPs each) through NumPy's BLAS with the benchmark's
threads, measured before and after the timed iterations (the better of the two, so a burst of
load from elsewhere does not lower it). On a shared machine every number here is noisy; compare ratios from one run.

The GEMM floor is the step's own matrix products (step_gemms: the linear layers' forward and two
backward products, the tied head's three, the attention's six batched ones), each timed alone
(gemm_floor): what a step through this BLAS cannot go below, however fast the work between the
products. floor / median is the share of the step that is matrix products.
"""
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .. import GPTConfig, ViTConfig, build_model, runtime
from ..engine.optim import AdamW
from ..errors import ConfigError
from ..training.shards import Shards, auto_shards, shard_bounds
from ..training.config import VIT_DEFAULTS, TrainConfig
from ..training.step import train_step


def cpu_model():
    """The processor's name as the OS gives it ("AMD EPYC", "Intel(R) Xeon(R) ..."): speeds and
    ratios depend on it (the tables of 2026-12-02 and 2026-12-03 in docs/speed.md came from two
    machines, the first with twice the single-thread GEMM peak of the second), so every report
    names it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:                                    # not Linux
        pass
    return platform.processor() or platform.machine() or "unknown"


def gemm_peak(n=2048, repeats=7, dtype="float32"):
    """GFLOP/s of the fastest of `repeats` n x n matrix products (after one untimed)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype=dtype)
    np.matmul(a, b, out=c)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


def model_flops(cfg, n_params_no_pos, batch_size):
    """Model FLOPs of one training iteration (formula in the module docstring)."""
    B, T, L, C = batch_size, cfg.block_size, cfg.n_layer, cfg.n_embd
    return 6 * n_params_no_pos * B * T + 12 * L * C * T * B * T


# --------------------------------------------------------------------------------------------
# The GEMM floor: the step's matrix products alone. No implementation of the step that multiplies
# through this BLAS can take less time than they do, so floor / step is the share of the step
# that is matrix products, and another implementation's time / floor the largest speed-up over
# it that any work outside the products could still buy.

def step_gemms(cfg, batch_size):
    """The matrix products of one training step of our GPT or ViT (by cfg's type): a list of
    (count, g, m, k, n, how), `count` calls per step of a product (m, k) @ (k, n), batched over g
    matrices (the attention's B*NH heads in one np.matmul call; 1 for a plain 2-D product), with
    the engine's layout `how`: "nn" a @ b, "nt" a @ b.T (dx = dy @ w.T), "tn" a.T @ b (dw =
    x.T @ dy). Their FLOPs, 2mkn each, are 6 per weight-matrix entry and row it acts on, plus the
    attention's 12*L*C*T*T*B (tested)."""
    L, C, B = cfg.n_layer, cfg.n_embd, batch_size
    T = cfg.n_tokens if isinstance(cfg, ViTConfig) else cfg.block_size
    G, HS = B * cfg.n_head, C // cfg.n_head

    def linear(count, rows, i, o):
        # forward y = x @ w; backward dx = dy @ w.T, dw = x.T @ dy (engine/layers.py)
        return [(count, 1, rows, i, o, "nn"), (count, 1, rows, o, i, "nt"),
                (count, 1, i, rows, o, "tn")]

    gemms = []
    for i, o in ((C, 3 * C), (C, C), (C, 4 * C), (4 * C, C)):    # qkv, proj, fc, fc_proj
        gemms += linear(L, B * T, i, o)
    # attention (engine/attention.py): s = q @ k.T, y = p @ v; dp = dy @ v.T, dv = p.T @ dy,
    # dq = ds @ k, dk = ds.T @ q
    gemms += [(L, G, T, HS, T, "nt"), (L, G, T, T, HS, "nn"), (L, G, T, HS, T, "nt"),
              (L, G, T, T, HS, "tn"), (L, G, T, T, HS, "nn"), (L, G, T, T, HS, "tn")]
    if isinstance(cfg, ViTConfig):                     # engine/vit.py
        P, Cin = cfg.patch_size, cfg.in_channels
        gemms += linear(1, B * cfg.n_patches, P * P * Cin, C)  # patch embedding
        gemms += linear(1, B, C, cfg.n_classes)                # head, on the pooled rows
    else:
        # tied LM head: logits = x @ wte.T, dx = dlogits @ wte, dwte = dlogits.T @ x (gpt.py)
        V = cfg.vocab_size
        gemms += [(1, 1, B * T, C, V, "nt"), (1, 1, B * T, V, C, "nn"), (1, 1, V, B * T, C, "tn")]
    return gemms


def gemm_floor(cfg, batch_size, dtype="float32", repeats=5):
    """Seconds per step of step_gemms(cfg, batch_size): each product timed alone, on random
    operands in its layout, with this process's BLAS threads; the median of `repeats` (after one
    untimed call) times its count, summed. Operands stay in cache between the repeats, as they
    do not in a step, so this is a floor, not an estimate."""
    rng = np.random.default_rng(0)
    total = 0.0
    for count, g, m, k, n, how in step_gemms(cfg, batch_size):
        a = rng.standard_normal((g, k, m) if how == "tn" else (g, m, k)).astype(dtype)
        b = rng.standard_normal((g, n, k) if how == "nt" else (g, k, n)).astype(dtype)
        a = a.swapaxes(-1, -2) if how == "tn" else a           # (g, m, k) views, as the engine's
        b = b.swapaxes(-1, -2) if how == "nt" else b           # (g, k, n)
        if g == 1:
            a, b = a[0], b[0]
        np.matmul(a, b)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            np.matmul(a, b)
            times.append(time.perf_counter() - t0)
        total += count * statistics.median(times)
    return total


def sharded_gemm_floor(cfg, batch_size, shards, dtype="float32"):
    """(seconds, rows): the GEMM floor of a step whose batch is cut into `shards` as train cuts it.
    The shards run at once, each with one BLAS thread (training/shards.py), so the floor is that
    of the largest shard's `rows` sequences on one BLAS thread (while the other cores idle: a
    floor still); with one shard, the whole batch with this process's BLAS threads."""
    rows = max(b - a for a, b in shard_bounds(batch_size, shards))
    if shards == 1:
        return gemm_floor(cfg, rows, dtype), rows
    before = runtime.blas_threads()
    runtime.blas_threads(1)
    try:
        return gemm_floor(cfg, rows, dtype), rows
    finally:
        if before is not None:
            runtime.blas_threads(before)


def ours_step_fn(cfg, batch_size, dtype="float32", seed=0, shards=None):
    """(step, model): step() does one training iteration of our GPT on a fixed random batch,
    the training loop's own step function (training/step.py) with lr 1e-3 and clip 1.0, its
    batch cut over `shards` threads as `train` does (None: train's default, one per core).
    step.keywords["shards"].close() gives BLAS its threads back."""
    model = build_model(cfg, init="gpt2", seed=seed, dtype=dtype)
    opt = AdamW(model.params, lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, cfg.vocab_size, (batch_size, cfg.block_size))      # (B, T)
    y = rng.integers(0, cfg.vocab_size, (batch_size, cfg.block_size))      # (B, T)
    return _step(model, opt, x, y, shards), model


def _step(model, opt, x, y, shards):
    n = auto_shards(len(x)) if shards is None else shards
    return functools.partial(train_step, model, opt, x, y, 1e-3, 1.0, shards=Shards(n))


def ours_vit_step_fn(cfg, batch_size, dtype="float32", seed=0, shards=None):
    """(step, model): as ours_step_fn for a ViT, on a fixed batch of random images and labels."""
    model = build_model(cfg, init="vit", seed=seed, dtype=dtype)
    opt = AdamW(model.params, lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    rng = np.random.default_rng(seed)
    shape = (batch_size, cfg.image_size, cfg.image_size, cfg.in_channels)
    x = rng.random(shape).astype(dtype)                                     # (B, H, W, Cin)
    y = rng.integers(0, cfg.n_classes, batch_size)                          # (B,)
    return _step(model, opt, x, y, shards), model


def time_iterations(step, iters, warmup):
    """Seconds of each of `iters` calls of step(), after `warmup` untimed calls."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


def percentile(values, q):
    """The q-th percentile (0-100) of values, linear between the two nearest ranks (NumPy's
    default)."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def summarize(times, tokens, flops, peak):
    """ms/iter (median, p90, mean, min), tokens/s and GFLOP/s at the median, fraction of peak."""
    med = statistics.median(times)
    return {"ms_median": round(1e3 * med, 3), "ms_p90": round(1e3 * percentile(times, 90), 3),
            "ms_mean": round(1e3 * statistics.fmean(times), 3),
            "ms_min": round(1e3 * min(times), 3), "tokens_per_s": round(tokens / med, 1),
            "gflops": round(flops / med / 1e9, 2),
            "fraction_of_peak": round(flops / med / 1e9 / peak, 4)}


def bench_shape(model):
    """The shape `bench` times when no option is given: the model `python cli.py train` trains
    by default (TrainConfig's defaults: nanoGPT's CPU configuration, with GPTConfig's vocabulary
    of Tiny Shakespeare's 65 characters) or with --model vit (VIT_DEFAULTS over them)."""
    t = TrainConfig()
    if model == "vit":
        return {k: VIT_DEFAULTS.get(k, getattr(t, k))
                for k in ("n_layer", "n_head", "n_embd", "patch_size", "batch_size")}
    return dict(n_layer=t.n_layer, n_head=t.n_head, n_embd=t.n_embd, block_size=t.block_size,
                batch_size=t.batch_size, vocab_size=GPTConfig().vocab_size)


def vit_model_flops(cfg, n_params, batch_size):
    """Model FLOPs per iteration of a ViT, as model_flops: 6 * N * B * T' for the weights used
    once per token (N without pos_embed, cls_token and the head, which act on fewer tokens; T' =
    its tokens) + 6 * head * B + 12 * L * C * T'^2 * B for attention (not causal: the full T'^2)."""
    T = cfg.n_tokens
    head = cfg.n_embd * cfg.n_classes + cfg.n_classes
    n_tok = n_params - T * cfg.n_embd - (cfg.n_embd if cfg.pool == "cls" else 0) - head
    return 6 * n_tok * batch_size * T + 6 * head * batch_size \
        + 12 * cfg.n_layer * cfg.n_embd * T * T * batch_size


def run_bench(model="gpt", n_layer=None, n_head=None, n_embd=None, block_size=None,
              batch_size=None, vocab_size=None, patch_size=None, dtype="float32", iters=50,
              warmup=5, threads=None, gemm_size=2048):
    """Time our GPT's or ViT's training iterations; returns a dict (see format_report). A shape
    option left None takes bench_shape(model)'s value. threads=N: in a fresh process with N
    threads of everything (module docstring)."""
    if model not in ("gpt", "vit"):
        raise ConfigError(f"model must be gpt or vit, got {model!r}")
    if dtype not in ("float32", "float64"):
        raise ConfigError(f"dtype must be float32 or float64, got {dtype!r}")
    given = dict(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size,
                 batch_size=batch_size, vocab_size=vocab_size, patch_size=patch_size)
    shape = bench_shape(model)
    for k, v in given.items():
        if v is not None and k not in shape:
            other = "vit" if model == "gpt" else "gpt"
            raise ConfigError(f"--{k.replace('_', '-')} applies to --model {other} only")
    shape.update({k: v for k, v in given.items() if v is not None})
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"threads must be a positive integer, got {threads}")
        kwargs = dict(model=model, **shape, dtype=dtype, iters=iters, warmup=warmup,
                      gemm_size=gemm_size)
        return dict(run_in_child(kwargs, threads), threads=threads)
    if iters < 1 or warmup < 0:
        raise ConfigError(f"iters must be >= 1 and warmup >= 0, got {iters} and {warmup}")
    batch_size = shape.pop("batch_size")
    if batch_size < 1 or gemm_size < 1:
        raise ConfigError(f"batch_size and gemm_size must be positive integers, got "
                          f"{batch_size} and {gemm_size}")
    peak = gemm_peak(gemm_size, dtype=dtype)           # before the shards set BLAS to 1 thread
    if model == "vit":
        cfg = ViTConfig(**shape)
        step, net = ours_vit_step_fn(cfg, batch_size, dtype)
        n_params = int(sum(p.size for p in net.params.values()))
        flops, tokens = vit_model_flops(cfg, n_params, batch_size), batch_size * cfg.n_tokens
        formula = "6*N*B*T + 6*head*B + 12*L*C*T*B*T, T = tokens, N = params acting per token"
    else:
        cfg = GPTConfig(**shape)
        step, net = ours_step_fn(cfg, batch_size, dtype)
        n_params = int(sum(p.size for p in net.params.values()))
        n_no_pos = n_params - net.params["wpe.weight"].size
        flops, tokens = model_flops(cfg, n_no_pos, batch_size), batch_size * cfg.block_size
        formula = "6*N*B*T + 12*L*C*T*B*T, N = params without wpe"
    times = time_iterations(step, iters, warmup)
    shards = step.keywords["shards"].n
    step.keywords["shards"].close()                    # BLAS's threads back, for the peak
    floor, shard_rows = sharded_gemm_floor(cfg, batch_size, shards, dtype)
    peak = max(peak, gemm_peak(gemm_size, dtype=dtype))    # before and after: the best of both
    return dict(
        config=dict(model=model, **shape, batch_size=batch_size, dtype=dtype),
        iters=iters, warmup=warmup, n_params=n_params, tokens_per_iter=tokens,
        gflop_per_iter=round(flops / 1e9, 4), flops_formula=formula,
        gemm_peak_gflops=round(peak, 1), gemm_size=gemm_size,
        **summarize(times, tokens, flops, peak),
        gemm_floor_ms=round(1e3 * floor, 3), gemm_floor_rows=shard_rows,
        machine=dict(cpu=cpu_model(), cpus=os.cpu_count(), python=platform.python_version(),
                     numpy=np.__version__),
        threads=None, shards=shards,
    )


def run_in_child(kwargs, threads):
    """run_bench(**kwargs) in a fresh Python process with `threads` threads of BLAS, OpenMP and
    Numba (runtime.worker_env, then runtime.setup there); its report."""
    env = runtime.worker_env(threads)
    root = str(Path(__file__).resolve().parents[2])    # this checkout's package, not another
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    code = ("import json, sys; from minitransformer import runtime; "
            "from minitransformer.analysis.bench import run_bench; "
            f"runtime.setup(threads={int(threads)}); "
            "print(json.dumps(run_bench(**json.loads(sys.argv[1]))))")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(kwargs)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def format_report(r):
    c = r["config"]
    title = (f"ViT L={c['n_layer']} NH={c['n_head']} C={c['n_embd']} P={c['patch_size']} "
             f"B={c['batch_size']}" if c.get("model") == "vit" else
             f"GPT L={c['n_layer']} NH={c['n_head']} C={c['n_embd']} T={c['block_size']} "
             f"B={c['batch_size']} V={c['vocab_size']}")
    return "\n".join([
        f"{title} {c['dtype']}: {r['n_params']:,} parameters, "
        f"{r['tokens_per_iter']} tokens/iter",
        f"  {r['iters']} timed iterations after {r['warmup']} warm-up "
        f"(forward + backward + clip + AdamW), "
        + ("default threads" if r["threads"] is None else
           f"{r['threads']} thread(s) of BLAS/Numba in a fresh process")
        + f", the batch in {r['shards']} shard(s) as train cuts it",
        f"  ms/iter          median {r['ms_median']:.2f}   p90 {r['ms_p90']:.2f}   "
        f"mean {r['ms_mean']:.2f}   min {r['ms_min']:.2f}",
        f"  tokens/s         {r['tokens_per_s']:,.0f}",
        f"  model GFLOP/s    {r['gflops']:.1f}   ({r['gflop_per_iter']:.3f} GFLOP/iter = "
        f"{r['flops_formula']})",
        f"  GEMM peak        {r['gemm_peak_gflops']:.1f} GFLOP/s (measured: best np.matmul "
        f"{r['gemm_size']}x{r['gemm_size']} {c['dtype']}, same threads)",
        f"  fraction of peak {r['fraction_of_peak']:.1%}",
        f"  GEMM floor       {r['gemm_floor_ms']:.2f} ms/iter = "
        f"{r['gemm_floor_ms'] / r['ms_median']:.1%} of the median: the step's matrix products "
        f"for {r['gemm_floor_rows']} of the batch (one shard), each timed alone, warm",
        f"  machine          {r['machine']['cpu']}, {r['machine']['cpus']} CPU(s), "
        f"NumPy {r['machine']['numpy']}",
    ])
