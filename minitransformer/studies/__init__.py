"""Studies: many runs and what they show (above analysis/, below cli/).

Sweeps:
    spec.py     a sweep's settings: axes, seeds, run names, every check before a file is written
    task.py     one run as a task: skip if complete, resume if interrupted, failure as a result
    pool.py     the local backend: worker processes with one BLAS and one Numba thread each
    cluster.py  the Dask backend: one task per run on an existing cluster
    results.py  results.csv and results.md (grouped over seeds)
    sweep.py    sweep(spec, out_dir): the engine that ties them together
    sweep_plots.py  `plot DIR` of a sweep: heatmap over two axes, loss curves with a band
Lottery tickets: lottery.py, lottery_report.py, instability.py.
"""
