"""Hostile tests of the run folder's promises (issue 9, training side; README "Reliability").

One section per class of the issue: 1 concurrent writers (real processes), 2 damaged history,
3 changed inputs on resume, 4 finished runs, 5 impossible sizes and half-made folders,
8 leftovers and signals (real SIGTERM / SIGINT; SIGKILL in test_train.py), 11 small ones.
"""
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minitransformer.analysis.replay import record_run
from minitransformer.cli import main
from minitransformer.errors import ConfigError, DataError, RunFolderError
from minitransformer.training import loop, step as step_module
from minitransformer.training.checkpoint import load_checkpoint, load_run
from minitransformer.training.config import TrainConfig
from minitransformer.training.data import load_text
from minitransformer.training.loop import resume, run
from minitransformer.training.preflight import check_memory, memory_estimate
from minitransformer.training.lock import lock_folder

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
           OMP_NUM_THREADS="1")
TINY = dict(n_layer=1, n_head=2, n_embd=32, block_size=16, batch_size=8, max_iters=40,
            warmup_iters=5, lr=3e-3, eval_interval=10, eval_iters=3, log_interval=3,
            checkpoint_interval=15)
TINY_ARGS = ["--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--block-size", "16",
             "--batch-size", "8", "--warmup-iters", "5", "--eval-iters", "2", "--log-interval",
             "1", "--quiet"]


def tiny(**kw):
    return TrainConfig.for_model(**dict(TINY, **kw))


def one_line_error(code, err, *words):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], lines[0]


def snapshot_files(run_dir):
    """{name: (bytes, mtime_ns)} of every file of a run folder."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in Path(run_dir).iterdir()}


def start(args, out):
    return subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "train", *args, "--out",
                             str(out)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for_step(out, step, proc, timeout=60):
    """Until metrics.jsonl of out holds a complete line of a step >= `step`."""
    deadline = time.monotonic() + timeout
    metrics = Path(out) / "metrics.jsonl"
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.exists():
            lines = metrics.read_text().splitlines()
            if lines and lines[-1].endswith("}") and json.loads(lines[-1])["step"] >= step:
                return
        time.sleep(0.005)
    raise AssertionError(f"never reached step {step}: {proc.poll()} "
                         f"{proc.stderr.read() if proc.poll() is not None else ''}")


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "full"
    return out, run(tiny(), out, progress=False)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A run stopped (KeyboardInterrupt) at step 22: checkpoint at 15, log lines up to 21."""
    out = tmp_path_factory.mktemp("int") / "run"
    calls, real = [0], step_module.clip_grad_norm

    def stop_at_22(grads, max_norm):
        calls[0] += 1
        if calls[0] == 23:
            raise KeyboardInterrupt
        return real(grads, max_norm)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(step_module, "clip_grad_norm", stop_at_22)
        with pytest.raises(KeyboardInterrupt):
            run(tiny(), out, progress=False)
    assert int(load_checkpoint(out / "checkpoint.npz")["step"]) == 15
    return out


def copy_of(src, tmp_path, name="copy"):
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------------------ 1 concurrency

def test_concurrent_writers_one_wins_the_rest_name_it(tmp_path, run_cli):
    """Three `train` processes on one --out at the same moment: one trains, the other two get
    one line naming its PID; --resume and a new run on the live folder too; kill -9 frees it."""
    out = tmp_path / "race"
    args = [*TINY_ARGS, "--max-iters", "100000", "--eval-interval", "0",
            "--checkpoint-interval", "50"]
    procs = [start(args, out) for _ in range(3)]
    try:
        deadline = time.monotonic() + 90
        while sum(p.poll() is not None for p in procs) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        live = [p for p in procs if p.poll() is None]
        assert len(live) == 1, [p.returncode for p in procs]
        winner = live[0]
        for p in procs:
            if p is not winner:
                err = p.stderr.read()
                assert p.returncode == 2, err
                assert err.strip().splitlines() == [err.strip()] and \
                    f"in use by process {winner.pid}" in err, err
        wait_for_step(out, 60, winner)
        code, _, err = run_cli("train", "--resume", out)
        one_line_error(code, err, f"in use by process {winner.pid}")
        code, _, err = run_cli("train", *TINY_ARGS, "--max-iters", "5", "--out", out)
        one_line_error(code, err, f"in use by process {winner.pid}")
        with pytest.raises(RunFolderError, match=f"process {winner.pid}"):
            lock_folder(out)                                   # the library call, in-process
        with pytest.raises(RunFolderError, match=f"process {winner.pid}"):
            record_run(out)                                    # the telemetry replay writes too
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
            p.wait()
    assert winner.returncode == -signal.SIGKILL
    lock_folder(out).release()                                 # the kernel let go of it
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()
             if line.endswith("}")]
    assert steps == list(range(len(steps)))                    # every step once, in order
    cfg, model, info = load_run(out)                           # config and checkpoint agree
    assert info["step"] >= 50 and cfg.max_iters == 100000


# ------------------------------------------------------------------------------ 2 damaged history

DAMAGE = [b'{"step": 3, "loss": 4.1', b"\xff\xfe binary \x00", b"[1, 2, 3]", b'{"loss": 1.0}',
          b'{"step": "6", "loss": 1.0}', b""]


@pytest.mark.parametrize("damage", DAMAGE, ids=["cut-json", "binary", "array", "no-step",
                                                "string-step", "empty-line"])
def test_damaged_line_before_the_checkpoint_refuses_resume(interrupted, tmp_path, run_cli, damage):
    out = copy_of(interrupted, tmp_path)
    lines = (out / "metrics.jsonl").read_bytes().split(b"\n")
    lines[2] = damage                                          # line 3 (step 3), before step 15
    (out / "metrics.jsonl").write_bytes(b"\n".join(lines))
    before = snapshot_files(out)
    code, _, err = run_cli("train", "--resume", out)
    one_line_error(code, err, "metrics.jsonl line 3", "damaged", "step 15")
    after = snapshot_files(out)
    assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}


def test_damaged_telemetry_refuses_and_changes_no_file(interrupted, tmp_path):
    out = copy_of(interrupted, tmp_path)
    tel = (out / "telemetry.jsonl").read_bytes().split(b"\n")
    tel[1] = b"garbage"
    (out / "telemetry.jsonl").write_bytes(b"\n".join(tel))
    metrics = (out / "metrics.jsonl").read_bytes()
    with pytest.raises(RunFolderError, match="telemetry.jsonl line 2"):
        resume(out, progress=False)
    assert (out / "metrics.jsonl").read_bytes() == metrics    # not cut before the refusal


def test_damage_after_the_checkpoint_and_a_cut_last_line_are_dropped(interrupted, full, tmp_path):
    """What a killed process leaves (lines past the checkpoint, a last line cut short, even a
    damaged one among them) is dropped, and the resumed run is bit-identical."""
    ref, _ = full
    out = copy_of(interrupted, tmp_path)
    with open(out / "metrics.jsonl", "ab") as f:
        f.write(b"\xff not json\n" + b'{"step": 21, "lo')
    resume(out, progress=False)
    assert (out / "metrics.jsonl").read_bytes() == (ref / "metrics.jsonl").read_bytes()
    assert (out / "telemetry.jsonl").read_bytes() == (ref / "telemetry.jsonl").read_bytes()


# ------------------------------------------------------------------------------ 3 changed inputs

def _text_run(tmp_path, run_cli, text="abcdefgh\nijklmnop\n" * 400):
    data = tmp_path / "text.txt"
    data.write_text(text)
    out = tmp_path / "textrun"
    code, _, err = run_cli("train", *TINY_ARGS, "--data", data, "--max-iters", "8",
                           "--eval-interval", "0", "--checkpoint-interval", "4", "--out", out)
    assert code == 0, err
    (out / "summary.json").unlink()                            # as if stopped before the end
    return data, out


def test_changed_data_refuses_resume_unless_allowed(tmp_path, run_cli):
    data, out = _text_run(tmp_path, run_cli)
    data.write_text("ijklmnop\nabcdefgh\n" * 400)              # same characters, other text
    before = snapshot_files(out)
    code, _, err = run_cli("train", "--resume", out)
    one_line_error(code, err, str(data.resolve()), "has changed", "--allow-data-change")
    assert snapshot_files(out) == before
    code, _, err = run_cli("train", "--resume", out, "--allow-data-change")
    assert code == 0 and "warning:" in err, err
    saved = json.loads((out / "config.json").read_text())
    assert saved["data_changes"][0]["at_step"] == 8          # the checkpoint it went on from
    assert saved["data_changes"][0]["before"]["sha256"] != saved["data_hash"]["sha256"]
    data.write_text("xyz\n" * 400)                             # new characters: never
    (out / "summary.json").unlink()
    code, _, err = run_cli("train", "--resume", out, "--allow-data-change")
    one_line_error(code, err, "vocabulary differs")
    data.unlink()
    code, _, err = run_cli("train", "--resume", out)
    one_line_error(code, err, "not found", "text.txt")


def test_relative_data_is_stored_resolved_and_resumes_from_elsewhere(tmp_path, run_cli,
                                                                    monkeypatch):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    (home / "t.txt").write_text("the quick brown fox jumps over the lazy dog\n" * 100)
    monkeypatch.chdir(home)
    code, _, err = run_cli("train", *TINY_ARGS, "--data", "t.txt", "--max-iters", "6",
                           "--eval-interval", "0", "--checkpoint-interval", "3", "--out", "r")
    assert code == 0, err
    saved = json.loads((home / "r" / "config.json").read_text())
    assert saved["train"]["data"] == str(home / "t.txt")
    (home / "r" / "summary.json").unlink()
    monkeypatch.chdir(elsewhere)
    code, _, err = run_cli("train", "--resume", home / "r")
    assert code == 0, err


# ------------------------------------------------------------------------------ 4 finished runs

def test_finished_run_is_never_changed_by_resume(full, tmp_path, run_cli):
    out = copy_of(full[0], tmp_path)
    before = snapshot_files(out)
    code, _, err = run_cli("train", "--resume", out)
    assert code == 0 and "is complete" in err and "nothing to do" in err
    assert snapshot_files(out) == before                       # bytes and modification times
    code, _, err = run_cli("train", "--resume", out, "--max-iters", "60")
    one_line_error(code, err, "--max-iters", "--extend")
    code, _, err = run_cli("train", "--resume", out, "--extend")
    one_line_error(code, err, "--extend needs --max-iters")
    code, _, err = run_cli("train", "--resume", out, "--extend", "--max-iters", "40")
    one_line_error(code, err, "must be larger than the run's max_iters (40)")
    code, _, err = run_cli("train", *TINY_ARGS, "--extend", "--out", tmp_path / "x")
    one_line_error(code, err, "--extend only applies with --resume")
    assert snapshot_files(out) == before


def test_extend_trains_on_with_the_same_early_learning_rates(full, tmp_path, run_cli):
    ref, ref_summary = full
    out = copy_of(ref, tmp_path)
    code, _, err = run_cli("train", "--resume", out, "--extend", "--max-iters", "46")
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["step"] == 46 and summary["max_iters"] == 46
    saved = json.loads((out / "config.json").read_text())
    assert saved["extended"][0]["from_max_iters"] == 40
    assert saved["extended"][0]["summary"]["final_val_loss"] == ref_summary["final_val_loss"]
    assert saved["train"]["lr_decay_iters"] == 40              # the decay keeps its end
    old = (ref / "metrics.jsonl").read_bytes().splitlines()
    new = (out / "metrics.jsonl").read_bytes().splitlines()
    assert new[:len(old) - 1] == old[:-1]                      # every step before: unchanged
    assert all(json.loads(line)["lr"] == pytest.approx(1e-4) for line in new[len(old) - 1:-1]
               if b'"lr"' in line)                            # then min_lr


def test_diverged_run_is_left_alone(tmp_path, run_cli):
    out = tmp_path / "div"
    assert run(tiny(lr=50.0, warmup_iters=0), out, progress=False)["status"] == "diverged"
    before = snapshot_files(out)
    code, _, err = run_cli("train", "--resume", out)
    assert code == 1 and "diverged at step" in err and "nothing to resume" in err
    code, _, err = run_cli("train", "--resume", out, "--extend", "--max-iters", "80")
    one_line_error(code, err, "cannot be extended")
    assert snapshot_files(out) == before
    # class 11: a run that diverged before its first checkpoint interval can be inspected
    code, outp, err = run_cli("inspect", "spectra", out, "--json")
    assert code == 0 and json.loads(outp)["step"] == 0, err


# ------------------------------------------------------------------------------ 5 sizes, folders

@pytest.mark.parametrize("args", [["--block-size", "100000"],
                                  ["--n-embd", "65536", "--n-head", "1"],
                                  ["--batch-size", "10000000"],
                                  ["--n-layer", "20000", "--n-embd", "512"],
                                  ["--model", "vit", "--data", "digits", "--patch-size", "1",
                                   "--batch-size", "100000"]],
                         ids=["block", "width", "batch", "depth", "vit-batch"])
def test_impossible_sizes_are_refused_before_anything_is_written(tmp_path, run_cli, args):
    out = tmp_path / "a" / "big"
    code, _, err = run_cli("train", "--n-layer", "1", "--n-head", "2", "--n-embd", "32",
                           "--max-iters", "2", "--warmup-iters", "0", *args, "--out", out,
                           "--quiet")
    one_line_error(code, err, "needs about", "activations of one step", "available")
    assert not (tmp_path / "a").exists()


def test_memory_estimate_parts_and_refusal():
    cfg = tiny()
    from minitransformer.training.build import resolve_data, model_config
    data = resolve_data(cfg)
    mcfg, _ = model_config(cfg, data)
    est = memory_estimate(cfg, mcfg, data)
    n = 32 * 65 + 16 * 32 + 12 * 32 * 32 + 13 * 32 + 2 * 32       # the tiny GPT's parameters
    assert est["parameters"] == 4 * n and est["optimizer state"] == 8 * n
    assert est["encoded data"] == data.train.nbytes + data.val.nbytes
    with pytest.raises(ConfigError, match=r"but 1\.0 KB is available"):
        check_memory(cfg, mcfg, data, available=1024)


@pytest.mark.parametrize("where", ["open_folder", "step 0", "step 5"])
def test_no_half_made_folder_after_an_error(tmp_path, monkeypatch, where):
    """A bug or MemoryError before the run's first checkpoint past step 0 leaves nothing: not
    the run folder, not the parents it made; an existing empty --out stays, emptied."""
    real_one_step, real_open = loop.one_step, loop.open_folder

    def failing_step(r, step):
        if where == f"step {step}":
            raise MemoryError("simulated")
        return real_one_step(r, step)

    def failing_open(r):
        real_open(r)
        raise OSError(28, "No space left on device (simulated)")
    monkeypatch.setattr(loop, "one_step", failing_step)
    if where == "open_folder":
        monkeypatch.setattr(loop, "open_folder", failing_open)
    with pytest.raises((MemoryError, OSError)):
        run(tiny(), tmp_path / "p" / "q" / "run", progress=False)
    assert not (tmp_path / "p").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises((MemoryError, OSError)):
        run(tiny(), tmp_path / "empty", progress=False)
    assert list((tmp_path / "empty").iterdir()) == []


def test_half_made_cleanup_spares_a_neighbour_in_a_shared_parent(tmp_path, monkeypatch):
    """A sweep's runs share a parent this run created: failing, it removes only its own."""
    monkeypatch.setattr(loop, "one_step", lambda r, step: (_ for _ in ()).throw(MemoryError()))
    real_claim = loop.claim_folder

    def claim_then_neighbour(run_dir, new):
        lock, made = real_claim(run_dir, new)
        (Path(run_dir).parent / "neighbour").mkdir()          # another process's run meanwhile
        return lock, made
    monkeypatch.setattr(loop, "claim_folder", claim_then_neighbour)
    with pytest.raises(MemoryError):
        run(tiny(), tmp_path / "sweep" / "runs" / "a", progress=False)
    assert sorted(p.name for p in (tmp_path / "sweep" / "runs").iterdir()) == ["neighbour"]


# ------------------------------------------------------------------------------ 8 signals

SIG_ARGS = [*TINY_ARGS, "--max-iters", "400", "--eval-interval", "50", "--checkpoint-interval",
            "40"]


@pytest.fixture(scope="module")
def sig_ref(tmp_path_factory):
    out = tmp_path_factory.mktemp("sigref") / "ref"
    main(["train", *SIG_ARGS, "--out", str(out)])
    return out


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_checkpoints_prints_the_exact_resume_command_and_exits(tmp_path, sig_ref, sig,
                                                                      status):
    out = tmp_path / "sig"
    proc = start(SIG_ARGS, out)
    try:
        wait_for_step(out, 45, proc)                       # past the checkpoint at 40
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == status, err
    last = err.strip().splitlines()[-1]
    command = (shlex.join([sys.executable, str(ROOT / "cli.py"), "train"]) + " --resume "
               + shlex.quote(str(out)))
    assert last.endswith(f"continue with: {command}") and "(checkpoint saved)" in last, last
    stopped = int(load_checkpoint(out / "checkpoint.npz")["step"])
    assert stopped > 45 and f"at step {stopped} " in last      # a checkpoint where it stopped
    done = subprocess.run(shlex.split(command), env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for name in ("metrics.jsonl", "telemetry.jsonl"):
        assert (out / name).read_bytes() == (sig_ref / name).read_bytes(), name


def _kernel_interrupt(signum):
    """What CPython raises when a signal handler's exception is raised inside a C extension's
    call (Numba's dispatcher returns its result with the exception still set): a SystemError
    whose cause is the interrupt."""
    from minitransformer.training.signals import Interrupted
    try:
        raise Interrupted(signum)
    except Interrupted as inner:
        try:
            raise SystemError("CPUDispatcher(<function k>) returned a result with an exception "
                              "set") from inner
        except SystemError as outer:
            return outer


def test_interrupt_in_finds_the_interrupt_behind_a_systemerror():
    from minitransformer.training.signals import interrupt_in
    e = _kernel_interrupt(signal.SIGINT)
    assert interrupt_in(e) is e.__cause__ and interrupt_in(e.__cause__) is e.__cause__
    assert interrupt_in(SystemError("another")) is None and interrupt_in(ValueError()) is None


def test_a_second_ctrl_c_inside_a_kernel_is_an_interruption_not_a_bug(tmp_path, run_cli,
                                                                       monkeypatch):
    """A second Ctrl-C raises at once, wherever the program is; inside a Numba kernel that
    arrives as a SystemError. train must still keep the run and say how to resume (exit 130),
    and no other command may call it an internal error."""
    real = loop.one_step

    def one_step(r, step):
        if step == 20:                                     # past the checkpoint at 15
            raise _kernel_interrupt(signal.SIGINT)
        return real(r, step)
    monkeypatch.setattr(loop, "one_step", one_step)
    out = tmp_path / "run"
    code, _, err = run_cli("train", *TINY_ARGS, "--max-iters", "40", "--checkpoint-interval",
                           "15", "--out", out)
    assert code == 130, err
    assert "internal error" not in err and "continue from the checkpoint at step 15" in err
    assert int(load_checkpoint(out / "checkpoint.npz")["step"]) == 15
    monkeypatch.setattr("minitransformer.cli.train.train.callback",
                        lambda *a, **k: (_ for _ in ()).throw(_kernel_interrupt(signal.SIGINT)))
    code, _, err = run_cli("train", "--out", tmp_path / "other")
    assert code == 130 and err.strip() == "interrupted", err


# ------------------------------------------------------------------------------ 11 small ones

def test_byte_order_marks_and_utf16(tmp_path):
    text = "To be, or not to be\n" * 20
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert load_text(tmp_path / "bom.txt").vocab == load_text_of(tmp_path, text).vocab
    for enc, name in [("utf-16", "UTF-16 (little-endian, with"), ("utf-16-be", "UTF-16 (big"),
                      ("utf-16-le", "UTF-16 (little-endian, without"), ("utf-32", "UTF-32")]:
        (tmp_path / f"{enc}.txt").write_bytes(text.encode(enc))
        with pytest.raises(DataError, match=rf"{enc}\.txt is {name.replace('(', '[(]')}"):
            load_text(tmp_path / f"{enc}.txt")
    (tmp_path / "only_bom.txt").write_bytes(b"\xef\xbb\xbf")
    with pytest.raises(DataError, match="only a UTF-8 byte-order mark"):
        load_text(tmp_path / "only_bom.txt")


def load_text_of(tmp_path, text):
    (tmp_path / "plain.txt").write_text(text)
    return load_text(tmp_path / "plain.txt")


def test_warmup_longer_than_the_run_warns(tmp_path, run_cli):
    code, _, err = run_cli("train", *TINY_ARGS, "--warmup-iters", "100", "--max-iters", "3",
                           "--eval-interval", "0", "--out", tmp_path / "w")
    assert code == 0
    assert "warning: warmup_iters (100) is longer than max_iters (3)" in err


def test_bpe_text_drops_the_bom_and_names_utf16(tmp_path):
    from minitransformer.training.data import read_text
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbfabc\n")
    assert read_text(tmp_path / "bom.txt") == "abc\n"
    (tmp_path / "u16.txt").write_bytes("abc\n".encode("utf-16"))
    with pytest.raises(DataError, match="UTF-16"):
        read_text(tmp_path / "u16.txt")


def test_changed_tokenizer_files_refuse_resume(tmp_path, run_cli):
    pytest.importorskip("tokenizers")
    (tmp_path / "t.txt").write_text("the quick brown fox jumps over the lazy dog. " * 300)
    out = tmp_path / "bpe"
    code, _, err = run_cli("train", *TINY_ARGS, "--data", tmp_path / "t.txt", "--tokenizer",
                           "bpe", "--vocab-size", "280", "--max-iters", "4", "--eval-interval", "0",
                           "--checkpoint-interval", "2", "--out", out)
    assert code == 0, err
    saved = json.loads((out / "config.json").read_text())
    assert len(saved["data_hash"]["tokenizer_sha256"]) == 64
    (out / "summary.json").unlink()
    name = saved["tokenizer"]["files"][0]
    (out / name).write_bytes((out / name).read_bytes() + b"\n")   # still loads, other bytes
    code, _, err = run_cli("train", "--resume", out)
    one_line_error(code, err, "tokenizer files", "--allow-data-change")
