"""Time every kernel's Numba version against its NumPy twin on nanoGPT's CPU shapes.

    python benchmarks/kernels.py [--dtype float32] [--reps 200]

Prints the median time of each and which one is faster; kernels.py's fast-path table
(_NUMBA_WINS / _NUMPY_WINS) should agree with the "faster" column on the machine you care about.
Runs the two versions interleaved, so load on a shared machine hits both alike.
"""
import argparse

import numpy as np

from minitransformer.engine import kernels
from minitransformer.analysis.bench import time_iterations

B, T, C, NH, V = 12, 64, 128, 4, 65          # nanoGPT's CPU Shakespeare configuration
R = B * T


def cases(dtype, rng):
    x = rng.standard_normal((R, C)).astype(dtype)
    w = rng.standard_normal(C).astype(dtype)
    b = rng.standard_normal(C).astype(dtype)
    h = rng.standard_normal((R, 4 * C)).astype(dtype)
    b4 = rng.standard_normal(4 * C).astype(dtype)
    s = rng.standard_normal((B * NH * T, T)).astype(dtype)
    logits = rng.standard_normal((R, V)).astype(dtype)
    y = rng.integers(0, V, R)
    _, mean, rstd = kernels.layernorm_fwd_numpy(x, w, b, 1e-5)
    p = kernels.softmax_fwd_numpy(s.copy(), 0.17, True)
    _, t = kernels.gelu_tanh_fwd_numpy(h)
    _, cdf = kernels.gelu_erf_fwd_numpy(h)
    return {
        "bias_add": lambda f: f(h, b4),
        "col_sum": lambda f: f(h),
        "layernorm_fwd": lambda f: f(x, w, b, 1e-5),
        "layernorm_bwd": lambda f: f(x, x, mean, rstd, w),
        "gelu_tanh_fwd": lambda f: f(h),
        "gelu_tanh_bwd": lambda f: f(h, t, h),
        "gelu_erf_fwd": lambda f: f(h),
        "gelu_erf_bwd": lambda f: f(h, cdf, h),
        "softmax_fwd": lambda f: f(s.copy(), 0.17, True),
        "softmax_bwd": lambda f: f(p, s.copy(), 0.17),
        "xent": lambda f: f(logits, y),
        "embedding_bwd": lambda f: f(y, x, V),
    }


def median_ms(fn, reps):
    return 1e3 * float(np.median(time_iterations(fn, reps, warmup=1)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--reps", type=int, default=200)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'kernel':<15} {'numba ms':>9} {'numpy ms':>9}  faster   (in use)")
    for name, call in cases(np.dtype(args.dtype), rng).items():
        nb = getattr(kernels, name + "_numba")
        npy = getattr(kernels, name + "_numpy")
        t_nb = median_ms(lambda: call(nb), args.reps)
        t_np = median_ms(lambda: call(npy), args.reps)
        used = "numba" if getattr(kernels, name) is nb else "numpy"
        print(f"{name:<15} {t_nb:9.3f} {t_np:9.3f}  {'numba' if t_nb < t_np else 'numpy':<8} ({used})")


if __name__ == "__main__":
    main()
