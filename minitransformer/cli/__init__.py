"""The command line: click options mapped onto library calls, and nothing else.

`main` sorts what goes wrong into two kinds:
- the user's input (errors.MinitransformerError, or an OSError about a path the user named, such
  as a missing file or a folder without write permission): one line `error: ...` on stderr, exit 2;
- anything else is a bug of ours: its traceback, exit 1. A KeyError or ValueError from inside the
  library is never dressed up as a user error.
"""
import sys
import traceback

import click

from .. import runtime
from ..errors import MinitransformerError
from ..training.signals import interrupt_in


class UserError(MinitransformerError):
    """A problem with the command line itself that only the CLI can see (e.g. a failed check)."""


def user_error_line(e):
    """The one line printed for a user error, or None when `e` is not one (a bug)."""
    if isinstance(e, MinitransformerError):
        msg = str(e).strip()
        return msg.splitlines()[0] if msg else type(e).__name__
    if isinstance(e, OSError) and (e.filename is not None or isinstance(e, MinitransformerError)):
        where = e.filename if e.filename2 is None else f"{e.filename} -> {e.filename2}"
        return f"{where}: {e.strerror or type(e).__name__}"
    return None


@click.group(context_settings=dict(help_option_names=["-h", "--help"]))
def cli():
    """minitransformer: a NumPy + Numba GPT and ViT for studying initialization and warmup."""


@cli.command()
@click.option("--samples", type=int, default=None,
              help="Elements checked per tensor, at least 1 (default: every element).")
@click.option("--seed", type=int, default=0, show_default=True)
def gradcheck(samples, seed):
    """Check every gradient of a tiny GPT and a tiny ViT against finite differences (float64)."""
    from ..engine.gradcheck import tiny_models, format_rows
    from ..init.build import check_config
    if samples is not None and samples < 1:
        raise UserError(f"--samples must be at least 1 (a check of nothing passes nothing), "
                        f"got {samples}")
    failed = 0
    for title, cfg in tiny_models():
        rows = check_config(cfg, seed=seed, n_samples=samples)
        click.echo(format_rows(rows, title=f"== {title}"))
        click.echo()
        failed += sum(not r.ok for r in rows)
    if failed:
        raise UserError(f"gradcheck: {failed} tensor(s) above tolerance")
    click.echo("all gradients agree with finite differences")


# Commands that live in their own modules register here.
from .train import COMMANDS as _train_commands      # noqa: E402  train, sample, bench
from .init import COMMANDS as _init_commands        # noqa: E402  inits, import-gpt2, export-gpt2
from .inspect import COMMANDS as _inspect_commands  # noqa: E402  inspect ..., plot
from .lottery import COMMANDS as _lottery_commands  # noqa: E402  lottery
from .sweep import COMMANDS as _sweep_commands      # noqa: E402  sweep
from .experiment import COMMANDS as _experiment_commands  # noqa: E402  experiment ...
for _command in (*_train_commands, *_init_commands, *_inspect_commands, *_lottery_commands,
                 *_sweep_commands, *_experiment_commands):
    cli.add_command(_command)


def main(argv=None):
    runtime.setup()
    try:
        rc = cli.main(args=argv, standalone_mode=False)
        if isinstance(rc, int) and rc:                 # a command's ctx.exit(n)
            sys.exit(rc)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as e:
        if interrupt_in(e) is not None:               # Ctrl-C that landed inside a kernel
            click.echo("interrupted", err=True)
            sys.exit(130)
        line = user_error_line(e)
        if line is None:                               # a bug of ours: show where it happened
            traceback.print_exc()
            click.echo(f"internal error ({type(e).__name__}): this is a bug in minitransformer",
                       err=True)
            sys.exit(1)
        click.echo(f"error: {line}", err=True)
        sys.exit(2)
