"""`experiment list | run NAME | report DIR`: options mapped onto studies/experiments/runner.py.
Sizes, seeds and workers arrive as text and are checked by the library, so that a bad value is
one `error:` line (exit 2) like every other user error."""
import click

from ..errors import ConfigError
from .options import positive_count


@click.group("experiment")
def experiment():
    """Named studies of initialization and warmup, each with a report and a verdict."""


@experiment.command("list")
def list_():
    """Every study: its claim, its paper, the estimated time of each size."""
    from ..studies.experiments.registry import listing
    for name, claim, paper, minutes in listing():
        sizes = ", ".join(f"{k} ~{v:g} min" for k, v in minutes.items())
        click.echo(f"{name}\n    claim: {claim}\n    paper: {paper}\n    time (measured here, "
                   f"2 workers, machine shared): {sizes}")


@experiment.command("run")
@click.argument("name")
@click.option("--size", default="smoke", show_default=True, help="smoke | full.")
@click.option("--out", "out", default=None,
              help="Experiment folder (default experiments/NAME-SIZE); rerun to resume.")
@click.option("--workers", default=None, help="Local worker processes (default: the cores).")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="A Dask scheduler (tcp://HOST:PORT) instead of local workers.")
@click.option("--seeds", default=None, help="Seeds per setting (default: the size's).")
def run(name, size, out, workers, scheduler, seeds):
    """Run study NAME through the sweep engine and write DIR/report.md, figures, results.csv
    and verdict.json. Running it again resumes."""
    from ..studies.experiments.runner import run_experiment
    workers = positive_count("--workers", workers)
    if workers is not None and scheduler is not None:
        raise ConfigError("give either --workers or --scheduler, not both")
    doc = run_experiment(name, size=size, out=out, workers=workers, scheduler=scheduler,
                         seeds=positive_count("--seeds", seeds))
    click.echo(f"{name}: Verdict: {doc['verdict']} ({doc['n_runs']} runs) -> "
               f"{out or f'experiments/{name}-{size}'}/report.md")


@experiment.command("report")
@click.argument("out")
def report(out):
    """Rebuild DIR's report from its finished runs (nothing is trained)."""
    from ..studies.experiments.runner import report_experiment
    doc = report_experiment(out)
    click.echo(f"{doc['study']}: Verdict: {doc['verdict']} -> {out}/report.md")


COMMANDS = [experiment]
