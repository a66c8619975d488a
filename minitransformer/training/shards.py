"""Data parallelism inside one step: the batch cut into shards, one thread per shard.

    shards = Shards(2)                             # a pool of 2 threads; BLAS set to 1 thread
    loss, grads = shards.loss_and_grads(model, x, y, trace)
    shards.close()                                 # BLAS's thread count back as it was

Why: on 2 cores, NumPy's BLAS splits each matrix product over both, but everything between the
products (LayerNorm, GELU, softmax, the attention's small batched products, the optimizer) runs
on one core while the other waits. Cutting the batch in two and running each half's forward and
backward on its own thread, with one BLAS thread each, keeps both cores busy the whole step:
NumPy's matmul and ufuncs and our Numba kernels (nogil=True) release the GIL, so the two
threads run at once. Measured on the default GPT (2 cores): 30.9 -> 23.4 ms per step; ViT 17.3
-> 12.5 ms; nanoGPT's GPU shape 704 -> 606 ms (docs/speed.md, 2026-12-02).

The arithmetic: shard i holds rows [a_i, b_i) of the batch (B rows: sequences or images) and
returns the mean loss over its rows, L_i, and its gradient g_i. The whole batch's mean loss is

    L = sum_i w_i L_i,    w_i = (b_i - a_i) / B,    so    dL/dθ = sum_i w_i g_i

Each shard's backward starts from dloss = w_i (the models' loss_and_grads take it), so it returns
w_i g_i and the sum is one pass of additions (weighting afterwards cost two more passes over
every gradient: 10 ms a step at the GPU shape). They are summed in shard order, so the result
does not depend on which thread finishes first. It equals the unsharded step's up to float
rounding (tests/test_shards.py), not bit for bit: a run's number of shards is recorded in its
config.json (`shards`), and resume, replay and every step of the run use it, so a run is
bit-identical to itself whatever machine resumes it.

The trace of a telemetry step is every shard's trace concatenated along the batch axis (each
traced activation has the batch first), i.e. the unsharded trace.
"""
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import runtime
from ..errors import ConfigError


def auto_shards(batch_size):
    """The default: one shard per core this process may use (runtime.cores()), at most one per
    batch row; 1 when NumPy's BLAS threads cannot be set to one (the shards would then fight
    over cores with BLAS's own threads)."""
    n = min(runtime.cores(), batch_size)
    if n > 1 and runtime.blas_threads() is None:
        return 1
    return max(n, 1)


def shard_bounds(batch_size, n):
    """[(a, b), ...]: n contiguous shards of the batch rows, sizes differing by at most one."""
    if not isinstance(n, int) or n < 1:
        raise ConfigError(f"shards must be a positive integer, got {n!r}")
    if n > batch_size:
        raise ConfigError(f"shards ({n}) cannot exceed batch_size ({batch_size})")
    edges = np.linspace(0, batch_size, n + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


class Shards:
    """n shards: loss_and_grads on n threads (n = 1: the model's own call, no threads)."""

    def __init__(self, n):
        self.n = int(n)
        self.pool = None
        self._blas = None
        if self.n > 1:
            self._blas = runtime.blas_threads()        # to restore on close
            runtime.blas_threads(1)
            self.pool = ThreadPoolExecutor(self.n, thread_name_prefix="shard")

    def loss_and_grads(self, model, x, y, trace=None):
        """model.loss_and_grads(x, y, trace=trace), computed shard by shard (module docstring)."""
        if self.n == 1:
            return model.loss_and_grads(x, y, trace=trace)
        B = len(x)
        bounds = shard_bounds(B, self.n)
        weights = [(b - a) / B for a, b in bounds]
        traces = [{} if trace is not None else None for _ in bounds]
        futures = [self.pool.submit(model.loss_and_grads, x[a:b], y[a:b], trace=t, dloss=w)
                   for (a, b), t, w in zip(bounds, traces, weights)]
        results = [f.result() for f in futures]        # in shard order: a fixed sum below
        loss = sum(w * float(res[0]) for w, res in zip(weights, results))
        grads = results[0][1]                          # w_0 g_0, to which w_i g_i are added
        for name, g in grads.items():
            for _, other in results[1:]:
                g += other[name]
        if trace is not None:
            trace.update({key: np.concatenate([t[key] for t in traces], axis=0)
                          for key in traces[0]})
        return loss, grads

    def close(self):
        """Stop the threads and give BLAS back its thread count (idempotent)."""
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None
            if self._blas is not None:
                runtime.blas_threads(self._blas)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
