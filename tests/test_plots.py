"""Pictures: `plot` draws every figure its run folders allow (GPT and ViT), each with a title, axis
labels and a "Healthy:" line; without matplotlib the error is one clear line."""
import sys

import numpy as np
import pytest

import matplotlib  # noqa: F401  (the test extra installs it: these tests never skip)

from minitransformer.analysis import plots, plots_model  # noqa: E402
from minitransformer.errors import MissingDependency  # noqa: E402
from minitransformer.cli import main  # noqa: E402
from minitransformer.analysis.replay import record_run  # noqa: E402
from minitransformer.training.config import TrainConfig  # noqa: E402
from minitransformer.training.loop import run  # noqa: E402

GPT = dict(n_layer=2, n_head=2, n_embd=16, block_size=16, batch_size=4, max_iters=12,
           warmup_iters=3, eval_interval=6, eval_iters=2, checkpoint_interval=0)
VIT = dict(model="vit", data="digits", patch_size=4, n_layer=1, n_head=2, n_embd=16,
           batch_size=16, max_iters=8, warmup_iters=2, eval_interval=4, eval_iters=1,
           checkpoint_interval=0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("plots")
    out = {}
    # gpt_nowarm has no telemetry.jsonl: its figures are those a metrics-only run allows
    for name, kw in (("gpt", GPT), ("gpt_nowarm", dict(GPT, warmup_iters=0, telemetry=False)),
                     ("vit", VIT)):
        out[name] = root / name
        run(TrainConfig.for_model(**kw), out[name], progress=False)
    record_run(out["gpt"], every=3, sharpness_every=6)
    record_run(out["vit"], every=2)
    return out


@pytest.fixture
def figures(monkeypatch):
    """Every figure saved: (path, suptitle + titles, axis labels, figure texts)."""
    from matplotlib.figure import Figure
    seen = []
    orig = Figure.savefig

    def savefig(self, path, *a, **k):
        titles = [self._suptitle.get_text()] if self._suptitle else []
        titles += [ax.get_title() for ax in self.axes]
        labels = [(ax.get_xlabel(), ax.get_ylabel()) for ax in self.axes]
        texts = [t.get_text() for t in self.texts]
        seen.append((str(path), titles, labels, texts))
        return orig(self, path, *a, **k)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return seen


def _check(fig):
    path, titles, labels, texts = fig
    assert any(t.strip() for t in titles), path
    assert any(t.startswith("Healthy: ") for t in texts), path
    main_axes = [lab for lab in labels if lab != ("", "")]
    assert main_axes and all(x or y for x, y in main_axes), path
    # units: every labelled x axis says what it counts or measures
    assert all("(" in x for x, _ in main_axes if x and x != "optimizer step"), (path, labels)


def test_gpt_runs(runs, figures, tmp_path):
    out = tmp_path / "figs"
    paths = plots.plot_runs([runs["gpt"], runs["gpt_nowarm"]], out)
    names = sorted(p.name for p in paths)
    assert names == sorted(["loss.png", "lr.png", "update_ratio.png", "gpt_telemetry.png", "gpt_activations.png",
                            "gpt_sharpness.png", "gpt_spectra.png", "gpt_attention.png",
                            "gpt_nowarm_spectra.png", "gpt_nowarm_attention.png"])
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size < 300_000
    assert len(figures) == len(paths)
    for f in figures:
        _check(f)


def test_vit_run_and_default_folder(runs, figures):
    paths = plots.plot_runs([runs["vit"]], image_index=3)
    assert {p.name for p in paths} == {"loss.png", "lr.png", "update_ratio.png",
                                       "telemetry.png", "activations.png",
                                       "spectra.png", "attention.png", "patch_filters.png"}
    assert all(p.parent == runs["vit"] / "plots" for p in paths)
    for f in figures:
        _check(f)


def test_landscape_figure(runs, figures, tmp_path):
    from minitransformer.measure.landscape import inspect_landscape
    from minitransformer.analysis.snapshot import load_snapshot
    res = inspect_landscape(load_snapshot(runs["gpt"]), ("interp", "1d", "2d"), points=3,
                            n_batches=1)
    p = plots_model.plot_landscape(res, tmp_path / "land.png")
    assert p.read_bytes()[:4] == b"\x89PNG"
    _check(figures[0])


def test_coordcheck_figure(figures, tmp_path):
    from minitransformer.analysis.coordcheck import coordcheck
    res = [coordcheck("gpt", i, (16, 32), steps=1, n_layer=1) for i in ("gpt2", "mup")]
    plots_model.plot_coordcheck(res, tmp_path / "cc.png")
    _check(figures[0])


def test_tiles_are_the_filters():
    P, C = 3, 5
    w = np.arange(P * P * C, dtype=float).reshape(P * P, C) + 1
    grid = plots_model._tiles(w, P, 1)
    first = grid[:P, :P]
    np.testing.assert_allclose(first, w[:, 0].reshape(P, P) / w[:, 0].max())
    assert np.isnan(grid[P, 0])                          # the 1-pixel gap between tiles


def test_cli_plot_and_errors(runs, tmp_path, capsys):
    import shutil
    light = tmp_path / "light"                           # metrics only: loss and lr figures
    shutil.copytree(runs["gpt_nowarm"], light)
    (light / "checkpoint.npz").unlink()
    main(["plot", str(light), "--out", str(tmp_path / "p")])
    assert capsys.readouterr().out.split() == [str(tmp_path / "p" / "loss.png"),
                                               str(tmp_path / "p" / "lr.png")]
    for args, words in [([str(tmp_path / "none")], "not found"),
                        ([str(tmp_path)], "not a run folder")]:
        with pytest.raises(SystemExit) as e:
            main(["plot", *args, "--out", str(tmp_path / "q")])
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
    from minitransformer.analysis.snapshot import load_snapshot
    with pytest.raises(ValueError, match="not in the run's vocabulary"):
        plots_model.plot_attention_gpt(load_snapshot(runs["gpt"]), tmp_path / "a.png", prompt="日本")


def test_without_matplotlib(monkeypatch, runs, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)        # import matplotlib -> ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(MissingDependency, match=r"pip install -e \.\[plot\]"):
        plots.plot_runs([runs["gpt"]])
    with pytest.raises(SystemExit) as e:
        main(["plot", str(runs["gpt"])])
    assert e.value.code == 2
    assert capsys.readouterr().err.strip() == \
        "error: plotting needs matplotlib: pip install -e .[plot]"
