"""Checks of command-line values that several commands share (click callbacks).

    @click.option("--out", callback=nonempty_path, ...)
"""
from ..errors import ConfigError


def nonempty_path(ctx, param, value):
    """A path option given as "" would mean the current folder (Path("") is "."), so that a run
    or its files land where the user stands: refuse it in one line naming the option."""
    if value is not None and str(value).strip() == "":
        flag = max(param.opts, key=len) if param is not None else "path"
        raise ConfigError(f"{flag} is empty: give a name (an empty path would mean the current "
                          f"folder; write . if that is what you want)")
    return value


def positive_count(flag, text):
    """A positive integer option given as text (None stays None), else one ConfigError naming
    the option: `--workers 0` or `--seeds two` never reach the library."""
    if text is None:
        return None
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"{flag} must be a positive integer, got {text!r}")
    return n
