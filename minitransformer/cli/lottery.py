"""`lottery`: click options mapped onto studies.lottery.lottery. No logic here."""
import click
from click.core import ParameterSource

from ..training.masks import PRUNABLE_HELP
from .train import train_options


@click.command(help=f"""Lottery tickets: iterative magnitude pruning with rewinding and its
controls (docs/lottery.md). Level 0 trains the dense network (every train option applies) and
keeps its state after --rewind-iter updates; each next level prunes --prune-fraction of the
surviving prunable weights of the previous level's trained ticket, smallest magnitude first,
rewinds the survivors to their step-K values and retrains, next to the controls
randomly_reinitialize (same mask, fresh init) and randomly_prune (random mask of the same
per-tensor sparsity). Writes DIR/level_k/<branch>/ run folders, DIR/results.csv and
DIR/report.md with a verdict. Rerun the same command to finish an interrupted lottery.

{PRUNABLE_HELP} The lottery sets --init-from, --start-from, --mask and --save-state-at
itself.""")
@click.option("--out", type=str, required=True, help="Folder of the lottery.")
@click.option("--levels", type=int, required=True, help="Pruning rounds after the dense level 0.")
@click.option("--prune-fraction", type=float, default=0.2, show_default=True,
              help="Fraction of the remaining prunable weights removed per level, in (0, 1).")
@click.option("--rewind-iter", type=int, default=0, show_default=True,
              help="K: survivors go back to their values after K updates (0 = the initial "
                   "weights, the original lottery ticket).")
@click.option("--strategy", type=str, default="global", show_default=True,
              help="global (one magnitude threshold over all prunable tensors) | layerwise "
                   "(the same fraction of each tensor).")
@click.option("--optimizer-state", type=str, default="rewind", show_default=True,
              help="rewind (the optimizer's moments of step K go back with the weights) | fresh "
                   "(a new optimizer at step K, as open_lth does).")
@click.option("--branches", type=str, default="ticket,randomly_reinitialize,randomly_prune",
              show_default=True, help="Comma-separated branches run at every level >= 1.")
@click.option("--workers", type=int, default=None,
              help="Runs at a time (default: the number of cores).")
@click.option("--scheduler", type=str, default=None, metavar="tcp://HOST:PORT",
              help="A Dask scheduler to run the branches on (needs the cluster extra).")
@click.option("--quiet", is_flag=True, help="No progress display.")
@train_options
@click.pass_context
def lottery(ctx, out, levels, prune_fraction, rewind_iter, strategy, optimizer_state, branches,
            workers, scheduler, quiet, **options):
    from ..studies.lottery import lottery as run_lottery
    from ..training.config import TrainConfig
    given = {name: value for name, value in options.items()
             if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE,
                                                   ParameterSource.ENVIRONMENT)}
    run_lottery(TrainConfig.for_model(**given), out, levels=levels, fraction=prune_fraction,
                rewind_iter=rewind_iter, strategy=strategy,
                branches=tuple(b.strip() for b in branches.split(",") if b.strip()),
                workers=workers, scheduler=scheduler, progress=not quiet,
                optimizer_state=optimizer_state)


COMMANDS = (lottery,)
