"""The errors a user can fix, under one base class.

The CLI prints a MinitransformerError (and an OSError about a user's path) as one line,
`error: ...`, and exits with status 2. Anything else is a bug of ours: the CLI shows its traceback
and exits with status 1. So raise one of these only for a problem in the user's input (a value, a
file, a name), with a message that names the option, file, line or key and what was expected.

require() imports an optional library or raises MissingDependency naming the extra to install.

The classes also derive from the built-in exception they refine (ValueError, FileNotFoundError,
ImportError), so callers that catch those keep working.
"""


class MinitransformerError(Exception):
    """Base: a problem with the user's input, reported as one line."""


class ConfigError(MinitransformerError, ValueError):
    """A setting or argument that cannot work; the message names the field or option."""


class DataError(MinitransformerError, ValueError):
    """A data or model file that cannot be used; the message names the file and the problem."""


class RunFolderError(MinitransformerError, ValueError):
    """A run folder that cannot serve the request (not a run, damaged file, held by a process)."""


class CheckpointError(RunFolderError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


class NotFound(MinitransformerError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class MissingDependency(MinitransformerError, ImportError):
    """An optional extra is not installed; the message names the pip command that installs it."""


def require(module, extra, purpose):
    """importlib.import_module(module), or MissingDependency saying in one line which extra of
    pyproject.toml installs it. Only the library's own absence is caught: an ImportError from
    inside an installed library is a bug and propagates."""
    import importlib
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name != module.split(".")[0]:
            raise
        raise MissingDependency(f"{purpose} needs the {module.split('.')[0]} library: "
                                f"pip install -e \".[{extra}]\"") from None
