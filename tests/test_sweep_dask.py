"""Sweeps on a Dask cluster: a LocalCluster(n_workers=2, threads_per_worker=1) on loopback gives
the same results, bit for bit, as the local pool; a worker killed during a task is replaced and
the sweep still completes correctly; without a shared file system the client writes the small
files each task returns. Skipped only when dask.distributed is not installed (the test extra
installs it, so CI runs these)."""
import os
import signal
import threading
import time

import pytest

from minitransformer.studies import cluster as dask_backend
from minitransformer.studies.sweep import sweep

distributed = pytest.importorskip("distributed")

from test_sweep import SPEC, results, run_files   # noqa: E402  the grid and its comparisons


@pytest.fixture(scope="module")
def local_cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                  worker_dashboard_address=None) as lc:
        with distributed.Client(lc, set_as_default=False) as client:
            yield lc, client


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same grid on the local pool with one worker."""
    out = tmp_path_factory.mktemp("ref") / "w1"
    sweep(SPEC, out, workers=1, progress=False)
    return out


def test_dask_results_equal_local_pool(local_cluster, reference, tmp_path):
    lc, _ = local_cluster
    out = tmp_path / "dask"
    rows = sweep(SPEC, out, scheduler=lc.scheduler_address, progress=False)
    assert [r["status"] for r in rows] == ["completed"] * 4
    assert results(out) == results(reference)
    assert run_files(out) == run_files(reference)


def test_worker_killed_during_a_task_still_completes(local_cluster, reference, tmp_path):
    lc, client = local_cluster
    out = tmp_path / "killed"
    box = {}
    worker = threading.Thread(target=lambda: box.update(
        rows=sweep(SPEC, out, scheduler=client, progress=False)))
    worker.start()
    victim, deadline = None, time.monotonic() + 60
    while victim is None and worker.is_alive() and time.monotonic() < deadline:
        busy = [r for r in (out / "runs").glob("*") if (r / "checkpoint.npz").exists()
                and not (r / "summary.json").exists()] if (out / "runs").is_dir() else []
        if busy:                                   # a run past its first checkpoint
            pids = client.run(os.getpid)
            who = [w for w, keys in client.processing().items()
                   if any(busy[0].name in str(k) for k in keys)]
            if who:
                victim = pids[who[0]]
                os.kill(victim, signal.SIGKILL)
        time.sleep(0.002)
    worker.join(120)
    assert victim is not None, "no task could be caught mid-run"
    assert [r["status"] for r in box["rows"]] == ["completed"] * 4
    assert results(out) == results(reference)
    assert run_files(out) == run_files(reference)
    client.wait_for_workers(2, timeout=30)         # the nanny restarted the killed worker


def test_without_shared_folder_the_client_writes_returned_files(reference, tmp_path,
                                                                monkeypatch):
    """A worker that does not see the sweep folder trains in its scratch folder and returns the
    small files; the client writes them, and the row is the same as the reference's."""
    monkeypatch.setattr(dask_backend.tempfile, "gettempdir", lambda: str(tmp_path / "worker"))
    import json
    import numba
    from minitransformer import runtime
    # dask_task is a worker's entry point: it calls runtime.setup(threads=1). Run here, in the
    # test process, that would leave one thread (and one shard) to every later test.
    monkeypatch.setattr(runtime, "_done", dict(runtime._done))
    threads = numba.get_num_threads()
    name = "lr=0.01,seed=1"
    train = json.loads((reference / "runs" / name / "config.json").read_text())["train"]
    run_dir = tmp_path / "client" / "runs" / name
    try:
        result = dask_backend.dask_task(train, str(run_dir), str(tmp_path / "client"), "abc123")
    finally:
        numba.set_num_threads(threads)
    assert result["in_place"] is False and not run_dir.exists()
    assert (tmp_path / "worker" / "minitransformer-sweeps" / "abc123" / name /
            "checkpoint.npz").is_file()
    dask_backend.write_returned(run_dir, result["files"])
    ref_dir = reference / "runs" / name
    for f in ("config.json", "metrics.jsonl", "telemetry.jsonl"):
        assert (run_dir / f).read_bytes() == (ref_dir / f).read_bytes(), f
    summary = json.loads((run_dir / "summary.json").read_text())
    ref = json.loads((ref_dir / "summary.json").read_text())
    assert summary["final_val_loss"] == ref["final_val_loss"]
    assert summary["val_acc"] == ref["val_acc"]


def test_bad_scheduler_is_one_line_and_writes_nothing(tmp_path):
    from minitransformer.errors import ConfigError
    with pytest.raises(ConfigError, match="--scheduler tcp://127.0.0.1:9: cannot connect"):
        dask_backend.connect("tcp://127.0.0.1:9", timeout=1)
    with pytest.raises(ConfigError, match="address like tcp://"):
        sweep(SPEC, tmp_path / "s", scheduler="localhost")
    assert not (tmp_path / "s").exists()
