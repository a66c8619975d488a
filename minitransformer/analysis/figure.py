"""The frame every figure shares: matplotlib (the optional `plot` extra, imported only when a
figure is drawn, Agg backend), one line at the bottom saying what a healthy picture looks like,
and saving.
"""
from pathlib import Path
import warnings

from ..errors import MissingDependency

DPI = 100




def pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependency("plotting needs matplotlib: pip install -e .[plot]") from None
    return plt


def healthy_line(fig, text):
    """The one line (wrapped to the figure's width) saying what a healthy picture looks like;
    returns the fraction of the figure's height it takes."""
    import textwrap
    width = max(40, int(fig.get_figwidth() * 15))      # ~15 characters per inch at 8.5 pt
    lines = textwrap.wrap("Healthy: " + text, width)
    fig.text(0.5, 0.008, "\n".join(lines), ha="center", va="bottom", fontsize=8.5,
             style="italic")
    return (0.2 + 0.16 * len(lines)) / fig.get_figheight()


def finish(fig, healthy, path, colorbar=None):
    """The healthy line at the bottom, the axes laid out above it, save, close.
    colorbar: (mappable, label) of one colorbar shared by all axes, drawn at the right."""
    bottom = healthy_line(fig, healthy)
    if colorbar is None:
        fig.tight_layout(rect=(0, bottom, 1, 1))
    else:
        fig.subplots_adjust(left=0.08, right=0.86, bottom=bottom + 0.07, top=0.9,
                            wspace=0.35, hspace=0.45)
        cax = fig.add_axes((0.89, bottom + 0.12, 0.018, 0.9 - bottom - 0.17))
        fig.colorbar(colorbar[0], cax=cax, label=colorbar[1])
    with warnings.catch_warnings():                    # timing, not data: a loaded machine
        warnings.filterwarnings("ignore", message="Creating legend with loc=.best. can be slow")
        fig.savefig(path, dpi=DPI)
    pyplot().close(fig)
    return Path(path)


def run_name(run):
    return Path(run).resolve().name


def source(snap):
    """A short name for a snapshot in titles: the run folder's name and the step."""
    if snap.run_dir is not None:
        return f"{Path(snap.run_dir).resolve().name} (step {snap.step})"
    return snap.source
