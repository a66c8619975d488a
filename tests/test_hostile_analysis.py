"""Hostile inputs for the commands that read run folders (issue 9, classes 6, 7, 9, 10, 11):
damaged files, edited vocabularies, NaN weights, empty checks and paths, interrupted sampling,
progress on a terminal, plots of 1-step and diverged runs.

Each list below is a class's hostile inputs; test_count_hostile_inputs prints how many. Every
user error must be ONE line `error: ...` naming its file (and line or key), exit status 2, and
never a traceback."""
import json
import os
import pty
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import matplotlib  # noqa: F401  (the test extra installs it)

from minitransformer.cli import main
from minitransformer.training.loop import run
from minitransformer.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
HF_TINY = ROOT / "tests" / "fixtures" / "hf_gpt2_tiny"
TINY = dict(n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=4, eval_iters=1,
            warmup_iters=1, checkpoint_interval=0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 6-step GPT with telemetry and sharpness, a 1-step run, a diverged run and an imported
    GPT-2, made once; tests damage copies of them."""
    root = tmp_path_factory.mktemp("hostile")
    run(TrainConfig.for_model(max_iters=6, eval_interval=3, sharpness_every=3, **TINY),
        root / "gpt", progress=False)
    run(TrainConfig.for_model(max_iters=1, sharpness_every=1, **TINY), root / "one",
        progress=False)
    run(TrainConfig.for_model(**dict(TINY, max_iters=30, lr=50.0, warmup_iters=0)),
        root / "div", progress=False)
    assert cli("import-gpt2", str(HF_TINY), "--out", str(root / "imp"))[0] == 0
    return root


def cli(*args):
    """(exit status, stdout, stderr) of `python cli.py ARGS`, in this process."""
    import contextlib
    import io
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def user_error(code, err, *words):
    """Exit 2 and one line `error: ...` holding every word."""
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for w in words:
        assert w in lines[0], (w, lines[0])


def copy(runs, name, tmp_path):
    dst = tmp_path / name
    shutil.copytree(runs / name, dst)
    shutil.rmtree(dst / "plots", ignore_errors=True)
    return dst


def edit_json(path, change):
    d = json.loads(path.read_text())
    change(d)
    path.write_text(json.dumps(d))


# ---------------------------------------------------------------------------------------------
# Class 9: every damaged file is named, with its line or key and what was expected

def _del(key, sub=None):
    def f(d):
        del (d[sub] if sub else d)[key]
    return f


def _set(key, value, sub=None):
    def f(d):
        (d[sub] if sub else d)[key] = value
    return f


CONFIG_DAMAGE = [   # (id, bytes or a change of the dict, words of the message)
    ("empty", b"", ["config.json", "line 1 column 1"]),
    ("binary", b"\x00\x9f\x92\x96 PK", ["config.json", "0x9f", "not UTF-8"]),
    ("cut", b'{"train": {"model": "gpt"', ["config.json", "not valid JSON"]),
    ("list", b'["train", "model"]', ["config.json", "expected a JSON object"]),
    ("no model", _del("model"), ["config.json", "'model'"]),
    ("no train", _del("train"), ["config.json", "'train'"]),
    ("model str", _set("model", "gpt"), ["config.json"]),
    ("n_head 0", _set("n_head", 0, "model"), ["config.json", "n_head"]),
    ("lr text", _set("lr", "fast", "train"), ["config.json", "lr"]),
    ("unknown", _set("flux", 1, "model"), ["config.json", "flux"]),
]
CONFIG_READERS = [("sample",), ("inspect", "spectra"), ("plot",), ("export-gpt2",),
                  ("inspect", "grad")]


def _damage_config(path, damage):
    if isinstance(damage, bytes):
        path.write_bytes(damage)
    else:
        edit_json(path, damage)


def _reader_args(reader, folder, tmp_path):
    extra = {"export-gpt2": ["--out", tmp_path / "hf"], "plot": ["--out", tmp_path / "p"],
             "grad": ["--param", "wte.weight", "--index", "0,0"]}
    return [*reader, folder, *extra.get(reader[-1], [])]


@pytest.mark.parametrize("name,damage,words", CONFIG_DAMAGE, ids=[c[0] for c in CONFIG_DAMAGE])
def test_damaged_config_json_is_named_by_every_reader(runs, tmp_path, name, damage, words):
    folder = copy(runs, "gpt", tmp_path)
    _damage_config(folder / "config.json", damage)
    for reader in CONFIG_READERS:
        code, _, err = cli(*_reader_args(reader, folder, tmp_path))
        user_error(code, err, *words)
    assert not (tmp_path / "hf").exists() and not (tmp_path / "p").exists()


LOG_DAMAGE = [   # (file, bytes appended after its first line, words)
    ("summary.json", b"", ["summary.json", "not valid JSON"]),
    ("summary.json", b'["completed"]', ["summary.json", "expected a JSON object"]),
    ("summary.json", b'{"step": 6}', ["summary.json", "'status'"]),
    ("summary.json", b"\xff\xfe{}", ["summary.json", "not UTF-8"]),
    ("metrics.jsonl", b'{"step": 1, "loss": \n{"step": 2}\n', ["metrics.jsonl", "line 2"]),
    ("metrics.jsonl", b'{"step": 1, "loss": 4.1}\n\xc3\x28\n', ["metrics.jsonl", "line 3",
                                                                 "not UTF-8"]),
    ("metrics.jsonl", b'{"loss": 4.1}\n', ["metrics.jsonl", "line 2", "'step'"]),
    ("metrics.jsonl", b'{"step": 1, "loss": "low"}\n', ["metrics.jsonl", "line 2", "loss"]),
    ("metrics.jsonl", b'{"step": null, "loss": 4.0}\n', ["metrics.jsonl", "line 2", "step"]),
    ("metrics.jsonl", b'\n{"step": 2}\n', ["metrics.jsonl", "line 2"]),
    ("telemetry.jsonl", b'{"step": 3, "tensors": {}}\n', ["telemetry.jsonl", "line 2"]),
    ("telemetry.jsonl", b'{"step": 3}\n', ["telemetry.jsonl", "line 2", "'tensors'"]),
    ("telemetry.jsonl", b"{{{\n", ["telemetry.jsonl", "line 2"]),
    ("sharpness.jsonl", b'{"step": 3, "two_over_lr": 5}\n', ["sharpness.jsonl", "line 2",
                                                            "'lambda_max'"]),
    ("sharpness.jsonl", b'{"step": 3, "lambda_max": [1], "two_over_lr": 5}\n',
     ["sharpness.jsonl", "line 2", "lambda_max"]),
]


@pytest.mark.parametrize("fname,tail,words", LOG_DAMAGE)
def test_damaged_logs_are_named_by_plot(runs, tmp_path, fname, tail, words):
    folder = copy(runs, "gpt", tmp_path)
    path = folder / fname
    if fname == "summary.json":
        path.write_bytes(tail)
    else:
        first = path.read_bytes().split(b"\n")[0] + b"\n"
        path.write_bytes(first + tail)
    code, _, err = cli("plot", folder, "--out", tmp_path / "p")
    user_error(code, err, *words)


HF_DAMAGE = [   # Hugging Face folders given to import-gpt2
    (b"", ["config.json", "not valid JSON"]),
    (b"[1, 2]", ["config.json", "expected a JSON object"]),
    (b"\x80abc", ["config.json", "not UTF-8"]),
    (_set("n_head", "two"), ["config.json", "n_head"]),
    (_set("n_embd", 33), ["config.json", "n_embd"]),
    (_del("n_layer"), ["config.json", "n_layer"]),
]


@pytest.mark.parametrize("damage,words", HF_DAMAGE)
def test_damaged_hugging_face_config_is_named(tmp_path, damage, words):
    hf = tmp_path / "hf"
    shutil.copytree(HF_TINY, hf)
    _damage_config(hf / "config.json", damage)
    code, _, err = cli("import-gpt2", hf, "--out", tmp_path / "run")
    user_error(code, err, *words)
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------
# Class 6: every documented run folder is served, or the command says precisely why not

def test_sample_serves_an_imported_gpt2_on_token_ids(runs):
    code, out, err = cli("sample", runs / "imp", "--max-new-tokens", "7", "--seed", "0")
    assert code == 0, err
    ids = [int(t) for t in out.split()]
    assert len(ids) == 8 and ids[0] == 0 and all(0 <= i < 50 for i in ids)
    code, out, _ = cli("sample", runs / "imp", "--prompt", "3, 4 5", "--max-new-tokens", "2")
    assert code == 0 and out.split()[:3] == ["3", "4", "5"] and len(out.split()) == 5


IMPORTED_PROMPTS = ["ab", "1 x", "50", "-1", "1.5"]


@pytest.mark.parametrize("prompt", IMPORTED_PROMPTS)
def test_imported_gpt2_bad_prompt_is_one_line(runs, prompt):
    code, _, err = cli("sample", runs / "imp", "--prompt", prompt, "--max-new-tokens", "2")
    user_error(code, err, "prompt" if prompt != "50" and prompt != "-1" else "0..49")


def test_plot_draws_an_imported_gpt2_and_says_what_it_cannot(runs, tmp_path):
    code, out, err = cli("plot", runs / "imp", "--out", tmp_path / "a")
    assert code == 0, err
    assert sorted(Path(p).name for p in out.split()) == ["spectra.png"]
    assert "no loss or learning-rate curves" in err and "--prompt" in err
    code, out, err = cli("plot", runs / "imp", "--out", tmp_path / "b", "--prompt", "1 2 3 4")
    assert code == 0 and sorted(Path(p).name for p in out.split()) == ["attention.png",
                                                                        "spectra.png"]


def test_plot_draws_the_weights_of_a_run_without_metrics(runs, tmp_path):
    folder = copy(runs, "gpt", tmp_path)
    for f in ("metrics.jsonl", "telemetry.jsonl", "sharpness.jsonl", "summary.json"):
        (folder / f).unlink()
    code, out, err = cli("plot", folder, "--out", tmp_path / "p")
    assert code == 0, err
    assert sorted(Path(p).name for p in out.split()) == ["attention.png", "spectra.png"]
    assert "no loss or learning-rate curves" in err


VOCAB_DAMAGE = [
    ("shortened", lambda d: d.update(vocab=d["vocab"][:-1]), ["'vocab' has", "vocab_size"]),
    ("longer", lambda d: d.update(vocab=d["vocab"] + "\u20ac"), ["'vocab' has"]),
    ("duplicate", lambda d: d.update(vocab=d["vocab"][:-1] + d["vocab"][0]), ["twice"]),
    ("a list", lambda d: d.update(vocab=list(d["vocab"])), ["'vocab' must be a string"]),
    ("deleted", lambda d: d.pop("vocab"), ["key 'vocab' is missing"]),
]


@pytest.mark.parametrize("name,change,words", VOCAB_DAMAGE, ids=[v[0] for v in VOCAB_DAMAGE])
def test_edited_vocab_is_checked_against_the_weights(runs, tmp_path, name, change, words):
    folder = copy(runs, "gpt", tmp_path)
    edit_json(folder / "config.json", change)
    for reader in CONFIG_READERS:
        code, _, err = cli(*_reader_args(reader, folder, tmp_path))
        user_error(code, err, "config.json", *words)


EMPTY_CHECKS = [("gradcheck", "--samples", "0"), ("gradcheck", "--samples", "-2")]


@pytest.mark.parametrize("args", EMPTY_CHECKS)
def test_an_empty_gradient_check_is_an_error(args):
    code, out, err = cli(*args)
    user_error(code, err, "--samples")
    assert "agree" not in out


def test_an_empty_check_never_passes_in_the_library():
    from minitransformer.engine.gradcheck import CheckRow, sample_positions
    from minitransformer.errors import ConfigError
    assert not CheckRow("w", (3,), 0, 0.0, 1e-6, 0.0).ok        # nothing checked: no pass
    assert not CheckRow("w", (3,), 3, float("nan"), 1e-6, float("nan")).ok
    for n in (0, -1, 2.5, True):
        with pytest.raises(ConfigError):
            sample_positions(10, n, np.random.default_rng(0))


def EMPTY_PATHS(runs, tmp):
    return [("train", "--out", ""), ("train", "--resume", ""),
            ("import-gpt2", HF_TINY, "--out", ""), ("export-gpt2", runs / "gpt", "--out", ""),
            ("plot", runs / "gpt", "--out", ""), ("plot", runs / "gpt", "--out", " "),
            ("inspect", "landscape", runs / "gpt", "--plot", "")]


def test_empty_output_paths_are_refused(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for args in EMPTY_PATHS(runs, tmp_path):
        code, _, err = cli(*args)
        user_error(code, err, "is empty")
    assert list(tmp_path.iterdir()) == []                   # nothing landed in the current folder


# ---------------------------------------------------------------------------------------------
# Class 7: non-finite weights are named by every command that reads weights; NaN is never "ok"

NAN_READERS = [("sample",), ("inspect", "spectra"), ("inspect", "sharpness", "--iters", "2"),
               ("inspect", "landscape", "--points", "3"), ("inspect", "grad"), ("export-gpt2",),
               ("inspect", "telemetry")]
NAN_KINDS = [("NaN", np.nan), ("inf", np.inf), ("-inf", -np.inf)]


@pytest.mark.parametrize("kind,value", NAN_KINDS)
def test_non_finite_weights_are_named(runs, tmp_path, kind, value):
    folder = copy(runs, "gpt", tmp_path)
    ck = dict(np.load(folder / "checkpoint.npz"))
    ck["wte.weight"][2, 3] = value
    ck["h.0.mlp.c_proj.weight"][:] = value
    np.savez(folder / "checkpoint.npz", **ck)
    for reader in NAN_READERS:
        code, out, err = cli(*_reader_args(reader, folder, tmp_path))
        user_error(code, err, "checkpoint.npz", "wte.weight", "h.0.mlp.c_proj.weight",
                   "1 NaN" if kind == "NaN" else "1 inf")
    for f in ("telemetry.jsonl", "sharpness.jsonl"):           # (fewer figures: faster)
        (folder / f).unlink()
    code, out, err = cli("plot", folder, "--out", tmp_path / "p")   # curves yes, weights no
    assert code == 0 and "wte.weight" in err and "no weight figures" in err
    assert "loss.png" in out and "spectra.png" not in out


def test_non_finite_adam_state_is_named(runs, tmp_path):
    folder = copy(runs, "gpt", tmp_path)
    ck = dict(np.load(folder / "checkpoint.npz"))
    ck["opt.v.wpe.weight"][0, 0] = np.nan
    np.savez(folder / "checkpoint.npz", **ck)
    code, _, err = cli("inspect", "sharpness", folder, "--iters", "2", "--restarts", "1", "--adam")
    user_error(code, err, "opt.v.wpe.weight")


def test_nan_is_never_below_a_threshold(runs):
    """With NaN inside the model (past the load check), the comparisons say 'not finite'."""
    from minitransformer.analysis.inspect_grad import inspect_grad, format_result
    from minitransformer.analysis.snapshot import load_snapshot
    from minitransformer.measure.sharpness import inspect_sharpness, top_eigenvalue
    from minitransformer.cli.inspect import _format_sharpness
    snap = load_snapshot(runs / "gpt")
    snap.model.params["ln_f.weight"][0] = np.nan
    res = inspect_sharpness(snap, iters=2, restarts=1)
    assert res["above_2_over_lr"] is None and "NOT FINITE" in _format_sharpness(res)
    g = inspect_grad(snap, "wte.weight", (0, 0))
    assert g["finite"] is False and g["rel_error"] is None and "NOT FINITE" in format_result(g)
    # a NaN restart is not dropped by max(): the top eigenvalue is NaN, not the other restart's
    m64 = snap.model_as("float64")
    x, y = snap.batch()
    assert np.isnan(top_eigenvalue(m64, x, y, iters=2, restarts=2)["lambda_max"])


# ---------------------------------------------------------------------------------------------
# Class 10: sample streams and keeps its text on Ctrl-C; long instruments show progress on a TTY

def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1",
                NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")


def _read_pty(fd, until, timeout=60.0):
    """Bytes from a pty master until until(bytes) is true, EOF or timeout."""
    import select
    got, end = b"", time.monotonic() + timeout
    while time.monotonic() < end and not until(got):
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:                            # EIO: the child closed the terminal
                break
            if not chunk:
                break
            got += chunk
    return got


def test_sample_streams_on_a_terminal_and_keeps_its_text_on_ctrl_c(runs):
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "sample", str(runs / "gpt"),
                          "--prompt", "ab", "--max-new-tokens", "10000000"],
                         stdout=slave, stderr=subprocess.PIPE, env=_env())
    os.close(slave)
    try:
        early = _read_pty(master, lambda b: len(b) >= 40)      # text appears while it is made
        assert len(early) >= 40 and p.poll() is None, early
        p.send_signal(signal.SIGINT)
        rest = _read_pty(master, lambda b: False, timeout=30)
        code = p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
        os.close(master)
    text = (early + rest).decode("utf-8", "replace").replace("\r\n", "\n")
    text = text.replace("\x1b[0m", "")                         # a terminal reset at exit
    err = p.stderr.read().decode()
    p.stderr.close()
    assert code == 130, (err, text)
    kept = int(err.split("kept the ")[1].split(" of")[0])
    assert text.startswith("ab") and text.endswith("\n"), (err, text)
    assert len(text) - len("ab\n") == kept >= 20, (err, text)  # every token made was printed


def test_write_stream_keeps_what_was_made_when_interrupted():
    """Off a terminal (piped), the text made before Ctrl-C is still written."""
    import io
    from minitransformer.analysis.sample import write_stream

    def pieces():
        yield from "hello"
        raise KeyboardInterrupt
    out = io.StringIO()
    assert write_stream("> ", pieces(), out) == (5, signal.SIGINT)
    assert out.getvalue() == "> hello\n"


def test_sharpness_shows_progress_on_a_real_terminal(runs):
    args = [sys.executable, str(ROOT / "cli.py"), "inspect", "sharpness", str(runs / "gpt"),
            "--iters", "6", "--restarts", "2", "--tol", "1e-12"]
    master, slave = pty.openpty()
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=slave, env=_env())
    os.close(slave)
    try:
        shown = _read_pty(master, lambda b: False, timeout=120).decode()
        out = p.communicate(timeout=60)[0].decode()
    finally:
        os.close(master)
    assert p.returncode == 0
    assert "\r\x1b[Ksharpness  " in shown and "ETA" in shown
    assert shown.replace("\x1b[0m", "").endswith("\r\x1b[K")     # the line is erased at the end
    assert "ETA" not in out and "lambda_max" in out              # stdout keeps only the result


class _Terminal:
    """A text stream that says it is a terminal (or not), for the progress line."""

    def __init__(self, tty):
        import io
        self.buf, self.tty = io.StringIO(), tty

    def write(self, text):
        return self.buf.write(text)

    def flush(self):
        pass

    def isatty(self):
        return self.tty


PROGRESS_COMMANDS = [("sharpness", "--iters", "4", "--restarts", "2", "--tol", "1e-12"),
                     ("landscape", "--points", "3", "--mode", "interp,1d,2d"),
                     ("spectra",)]


@pytest.mark.parametrize("command", PROGRESS_COMMANDS, ids=[c[0] for c in PROGRESS_COMMANDS])
@pytest.mark.parametrize("tty", [True, False])
def test_long_instruments_show_progress_on_a_terminal_only(runs, monkeypatch, command, tty):
    from minitransformer.analysis import progress
    monkeypatch.setattr(progress.time, "monotonic", iter(range(0, 10**6, 1)).__next__)
    err = _Terminal(tty)
    monkeypatch.setattr(sys, "stderr", err)
    import contextlib
    import io
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["inspect", command[0], str(runs / "gpt"), *command[1:]])
    shown = err.buf.getvalue()
    if tty:
        assert f"\r\x1b[K{command[0]}  " in shown and "ETA" in shown
        assert shown.endswith("\r\x1b[K") and "ETA" not in out.getvalue()
    else:
        assert shown == ""                                      # nothing off a terminal


# ---------------------------------------------------------------------------------------------
# Class 11 (analysis): plots of 1-step and diverged runs

def _visible(ax):
    """Something with data is drawn: an image, or a line of two points or with markers."""
    if ax.images or ax.collections or ax.patches:
        return True
    return any(len(line.get_xdata()) >= 2 or line.get_marker() not in (None, "None", "", " ")
               for line in ax.lines)


def test_plots_of_a_one_step_run_are_drawn_without_warnings(runs, tmp_path, monkeypatch):
    from matplotlib.figure import Figure
    empty = []
    orig = Figure.savefig

    def savefig(self, path, *a, **k):
        for ax in self.axes:
            if ax.get_label() != "<colorbar>" and not _visible(ax):
                empty.append((Path(path).name, ax.get_title()))
        return orig(self, path, *a, **k)
    monkeypatch.setattr(Figure, "savefig", savefig)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = cli("plot", runs / "one", "--out", tmp_path / "p")
    assert code == 0, err
    assert {"loss.png", "lr.png", "telemetry.png", "activations.png", "sharpness.png",
            "update_ratio.png", "spectra.png"} <= {Path(p).name for p in out.split()}
    assert empty == []
    assert [str(w.message) for w in caught if w.category is not ResourceWarning] == []


def test_divergence_label_is_inside_the_axes(runs, tmp_path, monkeypatch):
    from matplotlib.figure import Figure
    from matplotlib.text import Annotation
    boxes = []
    orig = Figure.savefig

    def savefig(self, path, *a, **k):
        if Path(path).name == "loss.png":
            r = self.canvas.get_renderer()
            self.canvas.draw()
            for ax in self.axes:
                for t in ax.texts:
                    if isinstance(t, Annotation):
                        boxes.append((t.get_text(), t.get_window_extent(r),
                                      ax.get_window_extent(r)))
        return orig(self, path, *a, **k)
    monkeypatch.setattr(Figure, "savefig", savefig)
    from minitransformer.analysis.plots import plot_loss
    plot_loss([runs / "div", runs / "one"], tmp_path / "loss.png")
    assert [b[0] for b in boxes] == ["diverged at step 1"]
    _, label, axes = boxes[0]
    assert axes.x0 <= label.x0 and label.x1 <= axes.x1 and axes.y0 <= label.y0 <= label.y1 <= \
        axes.y1


# ---------------------------------------------------------------------------------------------

def test_count_hostile_inputs(runs, tmp_path):
    """How many hostile inputs each class tries here (printed with -s; the report quotes it)."""
    counts = {
        "6 (served or named)": 2 + len(IMPORTED_PROMPTS) + 2 + 1 + len(VOCAB_DAMAGE)
        * len(CONFIG_READERS) + len(EMPTY_CHECKS) + 6 + len(EMPTY_PATHS(runs, tmp_path)),
        "7 (non-finite)": len(NAN_KINDS) * (len(NAN_READERS) + 1) + 1 + 3,
        "9 (named errors)": len(CONFIG_DAMAGE) * len(CONFIG_READERS) + len(LOG_DAMAGE)
        + len(HF_DAMAGE),
        "10 (long work)": 1 + 1 + 1 + len(PROGRESS_COMMANDS) * 2,
        "11 (plots)": 2,
    }
    print(counts)
    assert all(v > 0 for v in counts.values())


def test_bpe_tokens_stream_whole_characters():
    """A byte-level token may end inside a UTF-8 character: the stream holds it back."""
    from minitransformer.analysis.sample import _bpe_text

    class Bytes:                                        # id = one byte
        def decode(self, ids):
            return bytes(ids).decode("utf-8", "replace")
    ids = list("aé€".encode())                          # 1 + 2 + 3 bytes
    assert list(_bpe_text(iter(ids), Bytes())) == ["a", "é", "€"]
