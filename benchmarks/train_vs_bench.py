#!/usr/bin/env python
"""`train`'s ms/iter against `bench`'s at the same model and batch, in one run.

    python benchmarks/train_vs_bench.py [--shape cpu|gpu] [--iters 50] [--rounds 1] [--json]

train: `python cli.py train` on Tiny Shakespeare (vocabulary 65) for --iters steps with
--eval-interval 0 and --checkpoint-interval 0 (so the only evaluation and checkpoint come after
the last step), telemetry on at its default interval. Its summary.json gives ms_per_iter (the
mean of the steps: data, forward, backward, clipping, AdamW), ms_per_iter_median and
telemetry_overhead (the telemetry records' time over the steps' time), so train's full cost per
step is ms * (1 + telemetry_overhead). bench: `python cli.py bench --json` at the same shape
(random tokens, vocabulary 65) after 5 warm-up iterations. Compared: the medians (train's mean
includes its first steps, which bench leaves out as warm-up; both means are printed too). The
two alternate for --rounds rounds, each in a fresh process. Printed: both, and train / bench (the
issue's target: within 5%).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHAPES = {"cpu": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12),
          "gpu": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=8)}


def shape_options(shape):
    return [x for k, v in SHAPES[shape].items() for x in (f"--{k.replace('_', '-')}", str(v))]


def run(args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(ROOT / "cli.py")] + args, cwd=ROOT, env=env,
                          check=True, capture_output=True, text=True).stdout


def train_ms(shape, iters, out_dir):
    """(median ms per step with telemetry, median without, telemetry overhead, mean with
    telemetry) of one train run."""
    run(["train", "--quiet", "--out", str(out_dir), "--max-iters", str(iters), "--eval-interval",
         "0", "--checkpoint-interval", "0", "--eval-iters", "1"] + shape_options(shape))
    s = json.loads((out_dir / "summary.json").read_text())
    overhead = s.get("telemetry_overhead", 0.0)
    med = s["ms_per_iter_median"]
    return med * (1 + overhead), med, overhead, s["ms_per_iter"] * (1 + overhead)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", choices=tuple(SHAPES), default="cpu")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    trains, benches = [], []
    with tempfile.TemporaryDirectory(prefix="train_vs_bench_") as tmp:
        for i in range(a.rounds):
            trains.append(train_ms(a.shape, a.iters, Path(tmp) / f"run_{i}"))
            benches.append(json.loads(run(["bench", "--json", "--iters", str(a.iters)]
                                          + shape_options(a.shape))))
    train_full = statistics.median(t[0] for t in trains)
    bench_med = statistics.median(b["ms_median"] for b in benches)
    r = dict(shape=a.shape, config=SHAPES[a.shape], iters=a.iters, rounds=a.rounds,
             train_ms_median_with_telemetry=round(train_full, 3),
             train_ms_median_steps_only=round(statistics.median(t[1] for t in trains), 3),
             train_ms_mean_with_telemetry=round(statistics.median(t[3] for t in trains), 3),
             telemetry_overhead=round(statistics.median(t[2] for t in trains), 4),
             bench_ms_median=round(bench_med, 3),
             bench_ms_mean=round(statistics.median(b["ms_mean"] for b in benches), 3),
             train_over_bench=round(train_full / bench_med, 3))
    if a.json:
        print(json.dumps(r, indent=2))
        return
    print(f"{a.shape} shape {SHAPES[a.shape]}, {a.iters} steps / timed iterations, "
          f"median of {a.rounds} round(s)")
    print(f"  train  {r['train_ms_median_with_telemetry']:9.2f} ms/iter median with telemetry "
          f"({r['train_ms_median_steps_only']:.2f} steps only, telemetry "
          f"{r['telemetry_overhead']:.1%}; mean {r['train_ms_mean_with_telemetry']:.2f})")
    print(f"  bench  {r['bench_ms_median']:9.2f} ms/iter median (mean {r['bench_ms_mean']:.2f})")
    print(f"  train / bench (medians) {r['train_over_bench']:.3f}")


if __name__ == "__main__":
    main()
