"""Every study at --size smoke through the real sweep engine: report.md, the figures,
results.csv and verdict.json exist and agree with each other and with the run folders; an
interrupted experiment resumes to the same report; `experiment report` rebuilds it; bad input is
one line and exit status 2."""
import csv
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minitransformer.cli import main
from minitransformer.studies.experiments import registry
from minitransformer.studies.experiments.runner import report_experiment, run_experiment

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="1")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """Every study run once at smoke size (shared by the tests of this module)."""
    root = tmp_path_factory.mktemp("experiments")
    docs = {name: run_experiment(name, "smoke", out=root / name, workers=2, progress=False)
            for name in registry.STUDIES}
    return root, docs


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("name", list(registry.STUDIES))
def test_smoke_files_agree(smoke, name):
    root, docs = smoke
    out = root / name
    doc = json.loads((out / "verdict.json").read_text())
    assert doc == json.loads(json.dumps(docs[name]))           # what run_experiment returned
    report = (out / "report.md").read_text()
    verdict_lines = [line for line in report.splitlines() if line.startswith("Verdict: ")]
    assert verdict_lines == [f"Verdict: {doc['verdict']}"]
    assert doc["study"] == name and doc["rule"] in report and doc["claim"] in report
    assert f"python cli.py experiment run {name} --size smoke" in report
    # every figure the report shows is a PNG in the folder, and there is at least one
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert figures
    for fig in figures:
        assert (out / fig).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # results.csv: one line per run, statuses counted as verdict.json says, numbers as the runs
    rows = read_csv(out / "results.csv")
    assert len(rows) == doc["n_runs"] > 0
    assert sum(r["status"] == "completed" for r in rows) == doc["n_completed"]
    assert sum(r["status"] == "diverged" for r in rows) == doc["n_diverged"]
    for r in rows:
        summary = json.loads((out / "sweeps" / r["part"] / r["run"] / "summary.json").read_text())
        assert summary["status"] == r["status"]
        if r["status"] == "completed":
            assert float(r["final_val_loss"]) == summary["final_val_loss"]
    # the table's first mean is the mean of its runs in results.csv (symmetry and warmup: loss)
    if name in ("symmetry", "warmup", "scale-lr"):
        first = rows[0]
        keys = [k for k in ("init", "norm", "warmup_iters", "init_scale", "lr") if k in first]
        same = [float(r["final_val_loss"]) for r in rows
                if all(r[k] == first[k] for k in keys)]
        assert f"{sum(same) / len(same):.3f} ± " in report


def cli(capsys, *args):
    """`python cli.py experiment ...` in-process: (exit status, stdout, stderr)."""
    try:
        main(["experiment", *args])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


def test_list_names_every_study_with_sizes(capsys):
    code, out, err = cli(capsys, "list")
    assert code == 0, err
    for name in registry.STUDIES:
        assert re.search(rf"^{re.escape(name)}$", out, re.M)
    assert out.count("smoke ~") == out.count("full ~") == len(registry.STUDIES)
    assert out.count("claim: ") == out.count("paper: ") == len(registry.STUDIES)


def test_report_rebuilds_the_same_files(smoke):
    root, _ = smoke
    out = root / "warmup"
    before = {f: (out / f).read_bytes() for f in ("report.md", "results.csv", "verdict.json")}
    (out / "report.md").unlink()
    report_experiment(out)
    assert {f: (out / f).read_bytes() for f in before} == before


def test_interrupted_experiment_resumes_to_the_same_report(smoke, tmp_path):
    """Kill the experiment (SIGKILL to its process group) once its first run has finished, run
    it again: the files equal those of the uninterrupted run (apart from the --out path)."""
    root, _ = smoke
    out = tmp_path / "symmetry"
    proc = subprocess.Popen([sys.executable, "cli.py", "experiment", "run", "symmetry",
                             "--out", str(out), "--workers", "1"], cwd=ROOT, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 60
    while not list(out.glob("sweeps/main/runs/*/summary.json")) and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "report.md").exists()                 # it was stopped half-way
    run_experiment("symmetry", "smoke", out=out, workers=2, progress=False)
    for f in ("report.md", "results.csv", "verdict.json"):
        ours = (out / f).read_text().replace(str(out), "OUT")
        ref = (root / "symmetry" / f).read_text().replace(str(root / "symmetry"), "OUT")
        assert ours == ref, f


@pytest.mark.parametrize("args, message", [
    (["run", "nonsense"], "unknown experiment 'nonsense'"),
    (["run", "symmetry", "--size", "huge"], "unknown size 'huge'"),
    (["run", "symmetry", "--seeds", "0"], "--seeds must be a positive integer"),
    (["run", "symmetry", "--workers", "2", "--scheduler", "tcp://x:1"], "not both"),
    (["report", "nowhere"], "not an experiment folder"),
])
def test_bad_input_is_one_line_exit_2(capsys, args, message, tmp_path):
    code, _, err = cli(capsys, *[a if a != "nowhere" else str(tmp_path / "nowhere") for a in args])
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_out_holding_another_study_is_refused_untouched(capsys, smoke):
    root, _ = smoke
    out = root / "symmetry"
    before = sorted(str(p) for p in out.rglob("*"))
    code, _, err = cli(capsys, "run", "warmup", "--out", str(out))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "holds the experiment 'symmetry'" in err
    assert sorted(str(p) for p in out.rglob("*")) == before


def test_out_holding_other_files_or_another_size_is_refused(capsys, smoke, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    code, _, err = cli(capsys, "run", "symmetry", "--out", str(tmp_path))
    assert code == 2 and "holds no experiment" in err
    root, _ = smoke
    code, _, err = cli(capsys, "run", "symmetry", "--size", "full", "--out",
                       str(root / "symmetry"))
    assert code == 2 and "rerun it with --size smoke --seeds 1" in err


def test_verdicts_are_valid_and_numbers_finite_or_marked(smoke):
    _, docs = smoke
    for doc in docs.values():
        assert doc["verdict"] in ("SUPPORTED", "NOT SUPPORTED", "INCONCLUSIVE")
        text = json.dumps(doc)                     # inf is written as "inf", never as Infinity
        assert "Infinity" not in text and "NaN" not in text
        assert not any(isinstance(v, float) and not math.isfinite(v) for v in doc.values())


def test_sweep_reruns_runs_recorded_by_older_code(tmp_path):
    """A finished run whose config.json predates a TrainConfig field, or holds the text path as
    given rather than resolved, is the same sweep point (the full experiments of docs/ were run
    so); another lr is not."""
    from minitransformer.errors import RunFolderError
    from minitransformer.studies.task import _check_same_config
    from minitransformer.training.config import TrainConfig
    cfg = TrainConfig.for_model(max_iters=5, lr=1e-3).to_dict()
    old = {k: v for k, v in cfg.items() if k != "classes"}        # a field it did not have
    (tmp_path / "config.json").write_text(json.dumps({"train": old, "model": {}}))
    _check_same_config(tmp_path, cfg)
    with pytest.raises(RunFolderError, match="other settings"):
        _check_same_config(tmp_path, dict(cfg, lr=2e-3))
