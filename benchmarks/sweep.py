"""Sweep throughput: 8 equal small runs one after another in this process, on the local pool with
2 workers, and on a 2-worker Dask LocalCluster.

    python benchmarks/sweep.py [--runs 8] [--iters 300] [--workers 2]

Prints, for each way: wall time, runs per minute, speed-up over sequential, and the overhead per
run = (wall x workers - sequential wall) / runs: the core-seconds a run costs beyond its training
in a warm process (process start, imports, Numba cache load, data load, task traffic). Also the
system load average before and after, since a shared machine slows everything.

The runs are the digits ViT (2 blocks, 32 channels) with seeds 0..runs-1: equal work. Every way
uses one BLAS and one Numba thread per process, and the three give the same final losses (checked).
"""
import os

for _k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_k] = "1"                  # before NumPy loads: this process is the sequential way

import argparse                                     # noqa: E402
import tempfile                                     # noqa: E402
import time                                         # noqa: E402
from pathlib import Path                            # noqa: E402

from minitransformer import runtime                 # noqa: E402
from minitransformer.studies.spec import check_spec  # noqa: E402
from minitransformer.studies.sweep import SweepSpec, sweep  # noqa: E402
from minitransformer.training.loop import run       # noqa: E402


def spec(runs, iters):
    base = dict(model="vit", data="digits", patch_size=4, n_layer=2, n_embd=32, n_head=4,
                batch_size=32, max_iters=iters, eval_interval=100, eval_iters=5,
                log_interval=10, checkpoint_interval=100, warmup_iters=10)
    return SweepSpec(base=base, grid={}, seeds=runs)


def sequential(sp, out):
    """Every run with training.loop.run in this process; returns (wall, final losses)."""
    _, runs = check_spec(sp)
    t0 = time.perf_counter()
    losses = [run(cfg, out / name, progress=False)["final_val_loss"] for name, _, _, cfg in runs]
    return time.perf_counter() - t0, losses


def timed_sweep(sp, out, **backend):
    t0 = time.perf_counter()
    rows = sweep(sp, out, progress=False, **backend)
    return time.perf_counter() - t0, [r["final_val_loss"] for r in rows]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--iters", type=int, default=300, help="steps per run")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    runtime.setup(threads=1)
    sp, n, w = spec(args.runs, args.iters), args.runs, args.workers
    load0 = os.getloadavg()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        results["sequential, 1 process"] = sequential(sp, tmp / "seq") + (1,)
        results[f"local pool, --workers {w}"] = timed_sweep(sp, tmp / "pool", workers=w) + (w,)
        try:
            import distributed
        except ImportError:
            print('dask.distributed not installed (pip install -e ".[cluster]"): no Dask row')
        else:
            t0 = time.perf_counter()
            with distributed.LocalCluster(n_workers=w, threads_per_worker=1, processes=True,
                                          host="127.0.0.1", dashboard_address="127.0.0.1:0") as lc:
                start = time.perf_counter() - t0
                wall, losses = timed_sweep(sp, tmp / "dask", scheduler=lc.scheduler_address)
                results[f"Dask LocalCluster, {w} workers"] = (wall, losses, w)
            print(f"(Dask cluster start-up {start:.1f} s, not counted below)")
    load1 = os.getloadavg()
    seq = results["sequential, 1 process"][0]
    print(f"{n} runs of {args.iters} steps (digits ViT, 2 blocks, 32 channels); load average "
          f"{load0[0]:.1f} before, {load1[0]:.1f} after, on {os.cpu_count()} cores")
    print(f"{'way':32s} {'wall s':>7s} {'runs/min':>9s} {'speed-up':>9s} {'overhead s/run':>15s}")
    for name, (wall, losses, procs) in results.items():
        overhead = (wall * procs - seq) / n
        print(f"{name:32s} {wall:7.1f} {60 * n / wall:9.1f} {seq / wall:9.2f} {overhead:15.2f}")
    same = len({tuple(v[1]) for v in results.values()}) == 1
    print(f"final validation losses identical across the ways: {same}")


if __name__ == "__main__":
    main()
