#!/usr/bin/env python
"""Cold start: seconds from launching `python cli.py train` to its first training step done.

    python benchmarks/cold_start.py [--model gpt|vit] [--repeats 3] [--json]

"Fresh" runs use a new, empty NUMBA_CACHE_DIR, as on a fresh clone: every Numba kernel the run
needs is compiled (Python's own .pyc files are not removed, so a real fresh clone adds their
compilation, well under a second). "Cached" runs reuse that directory, as every run after the
first does. The time is measured from Popen to the moment the run's progress line of step 0
("step 0/...", printed on stderr after the step) arrives: interpreter start, imports, data,
model, the step itself and its telemetry record. Each run trains 3 steps of the default model
into a temporary folder with --eval-interval 0, so the evaluation at step 0 (20 batches per
split, not part of starting) is left out; each is printed with the total time of the process.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def time_to_first_step(model, out_dir, cache_dir):
    """(seconds to the step-0 progress line, seconds to the end of the process)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir), PYTHONPATH=str(ROOT))
    cmd = [sys.executable, str(ROOT / "cli.py"), "train", "--model", model, "--out",
           str(out_dir), "--max-iters", "3", "--eval-interval", "0", "--log-interval", "1"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    first = None
    for line in proc.stderr:
        if first is None and line.startswith("step 0/"):
            first = time.perf_counter() - t0
    if proc.wait() != 0 or first is None:
        sys.exit(f"{' '.join(cmd)} failed (exit {proc.returncode})")
    return first, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=("gpt", "vit"), default="gpt")
    ap.add_argument("--repeats", type=int, default=3, help="fresh-then-cached pairs")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    a = ap.parse_args()
    runs = {"fresh": [], "cached": []}
    with tempfile.TemporaryDirectory(prefix="cold_start_") as tmp:
        for i in range(a.repeats):
            cache = Path(tmp) / f"numba_cache_{i}"      # empty: a fresh clone's first run
            for kind in ("fresh", "cached"):
                runs[kind].append(time_to_first_step(a.model, Path(tmp) / f"run_{i}_{kind}",
                                                     cache))
    r = {kind: dict(first_step_s=[round(f, 3) for f, _ in v],
                    first_step_median_s=round(statistics.median(f for f, _ in v), 3),
                    process_s=[round(t, 3) for _, t in v]) for kind, v in runs.items()}
    r = dict(model=a.model, repeats=a.repeats, **r)
    if a.json:
        print(json.dumps(r, indent=2))
        return
    print(f"`python cli.py train --model {a.model}`: seconds from launch to step 0 done "
          f"(median of {a.repeats}; each run's whole process in brackets)")
    for kind, what in (("fresh", "empty Numba cache (fresh clone)"),
                       ("cached", "Numba cache from the run before")):
        v = r[kind]
        each = ", ".join(f"{f:.2f} [{t:.2f}]" for f, t in zip(v["first_step_s"], v["process_s"]))
        print(f"  {kind:7}{v['first_step_median_s']:7.2f} s   {what}: {each}")


if __name__ == "__main__":
    main()
