"""`sweep`: click options mapped onto studies.sweep.sweep. The checks live in studies/spec.py."""
import sys

import click
from click.core import ParameterSource

from ..errors import ConfigError
from .options import positive_count
from .train import train_options


@click.command()
@click.option("--out", type=str, default=None, help="Sweep folder to create or continue.")
@click.option("--resume", type=str, default=None,
              help="Continue the sweep in this folder (its sweep.json decides every setting).")
@click.option("--grid", "grids", multiple=True, metavar="NAME=V1,V2,...",
              help="A grid axis: a train option and its values (repeat for more axes; the runs "
                   "are the full product), e.g. --grid lr=1e-3,1e-2 --grid init=gpt2,t_fixup.")
@click.option("--seeds", type=str, default=None,
              help="Seeds of every setting: a list (0,1,2) or a count (3 = 0,1,2) [default: 1].")
@click.option("--workers", type=str, default=None,
              help="Local worker processes, one BLAS and one Numba thread each "
                   "[default: the cores].")
@click.option("--scheduler", type=str, default=None, metavar="tcp://HOST:PORT",
              help="Run on this Dask cluster instead (needs: pip install -e \".[cluster]\").")
@click.option("--quiet", is_flag=True, help="No progress line.")
@train_options
@click.pass_context
def sweep(ctx, out, resume, grids, seeds, workers, scheduler, quiet, **options):
    """Train every point of a grid of settings x seeds into DIR/runs/, resumably; results in
    DIR/results.csv and DIR/results.md (docs/sweeps.md)."""
    from ..studies.sweep import SweepSpec, sweep as run_sweep, load_spec
    from ..studies.spec import parse_grid_option
    given = {name: value for name, value in options.items()
             if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE,
                                                   ParameterSource.ENVIRONMENT)}
    n_workers = positive_count("--workers", workers)
    if resume is not None:
        if given or grids or seeds is not None or out is not None:
            names = ["--" + n.replace("_", "-") for n in sorted(given)]
            names += ["--grid"] * bool(grids) + ["--seeds"] * (seeds is not None)
            names += ["--out"] * (out is not None)
            raise ConfigError(f"--resume takes the settings from the sweep's sweep.json; "
                              f"drop {', '.join(names)}")
        spec, out = load_spec(resume), resume
    else:
        if out is None:
            raise ConfigError("--out is required: the folder the sweep writes (or continues)")
        if "seed" in given:
            raise ConfigError("--seed: a sweep's seeds come from --seeds (a list 0,1,2 or a "
                              "count 3)")
        grid = {}
        for text in grids:
            name, values = parse_grid_option(text)
            if name in grid or name.replace("-", "_") in grid:
                raise ConfigError(f"--grid {name}: the axis is given twice; give its values once")
            grid[name] = values
        spec = SweepSpec(base=given, grid=grid, seeds=seeds if seeds is not None else 1)
    rows = run_sweep(spec, out, workers=n_workers, scheduler=scheduler, progress=not quiet)
    failed = sum(r["status"] == "failed" for r in rows)
    click.echo(f"{len(rows)} runs: {sum(r['status'] == 'completed' for r in rows)} completed, "
               f"{sum(r['status'] == 'diverged' for r in rows)} diverged, {failed} failed -> "
               f"{out}/results.md")
    if failed:
        sys.exit(1)


COMMANDS = (sweep,)
