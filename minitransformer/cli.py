"""The command line: click options mapped onto library calls, and nothing else.

Every command's errors that come from the user's input (bad values, files, names) reach `main`,
which prints them as one line on stderr and exits with status 2; no traceback is shown.
"""
import sys

import click

from .config import ConfigError


class UserError(Exception):
    """A problem with the user's input that the CLI reports as one line."""


# Errors that mean "your input is wrong", printed as one line. OSError covers missing files and
# permissions; ValueError covers ConfigError, DataError and the library's argument checks.
USER_ERRORS = (UserError, ConfigError, ValueError, OSError, KeyError)


@click.group(context_settings=dict(help_option_names=["-h", "--help"]))
def cli():
    """minitransformer: a NumPy + Numba GPT and ViT for studying initialization and warmup."""


@cli.command()
@click.option("--samples", type=int, default=None,
              help="Elements checked per tensor (default: every element).")
@click.option("--seed", type=int, default=0, show_default=True)
def gradcheck(samples, seed):
    """Check every gradient of a tiny GPT and a tiny ViT against finite differences (float64)."""
    from .gradcheck import tiny_models, check_config, format_rows
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
from .cli_train import COMMANDS as _train_commands      # noqa: E402  train, sample, bench
from .cli_init import COMMANDS as _init_commands        # noqa: E402  inits, import-gpt2, export-gpt2
from .cli_inspect import COMMANDS as _inspect_commands  # noqa: E402  inspect ..., plot
for _command in (*_train_commands, *_init_commands, *_inspect_commands):
    cli.add_command(_command)


def main(argv=None):
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
    except USER_ERRORS as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        click.echo(f"error: {msg}", err=True)
        sys.exit(2)
    except Exception as e:                             # a bug of ours: still one line
        click.echo(f"internal error ({type(e).__name__}): {e}", err=True)
        sys.exit(1)
