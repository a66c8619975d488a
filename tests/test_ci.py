"""What CI runs: the reference extra is installed, a skip under CI=true fails the run, the kernel
tests run again without JIT. Each check runs the real files (conftest.py, .ci/run, pyproject)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SKIPPING = '''
import pytest

def test_runs():
    pass

def test_needs_a_reference():
    pytest.importorskip("no_such_reference_module")
'''


def _pytest_in(folder, ci):
    """Start pytest on folder (CI unset, or set to `ci`); returns the running process."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(ROOT)
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"        # no third-party plugins: a faster start
    if ci is not None:
        env["CI"] = ci
    return subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "."],
                            cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def test_a_skip_fails_the_run_only_in_ci(tmp_path):
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    local, ci = _pytest_in(tmp_path, None), _pytest_in(tmp_path, "true")   # both at once
    local_out, ci_out = local.communicate(timeout=120)[0], ci.communicate(timeout=120)[0]
    assert local.returncode == 0 and "1 passed, 1 skipped" in local_out, local_out
    assert ci.returncode == 1, ci_out
    assert "CI: 1 test(s) skipped, which fails the run" in ci_out
    assert "test_needs_a_reference" in ci_out and "no_such_reference_module" in ci_out


def test_ci_installs_the_references_and_runs_the_kernels_without_jit():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    lines = [ln.strip() for ln in ci.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert "export CI=true" in lines
    assert 'python -m pip install -q -e ".[test,ref]" || exit 1' in lines
    assert "pytest_step python -m pytest -q || exit $?" in lines
    nojit = [ln for ln in lines if ln.startswith("NUMBA_DISABLE_JIT=1 ")]
    assert len(nojit) == 1 and "tests/test_kernels.py" in nojit[0]
    assert "-eq 5" in ci                                      # "no tests ran" is a failure


def test_the_ref_extra_pins_cpu_torch_and_transformers():
    tomllib = pytest.importorskip("tomllib")                 # Python 3.11+
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert "torch==2.13.0" in extras["ref"]                   # the CPU wheel on CI's disk
    versions = (ROOT / "tests" / "fixtures" / "hf_gpt2_tiny" / "VERSIONS.txt").read_text()
    pinned = [r for r in extras["ref"] if r.startswith("transformers==")]
    assert len(pinned) == 1 and f"transformers {pinned[0].split('==')[1]}" in versions
    assert not any(r.startswith(("torch", "transformers")) for r in extras["test"])
    for name in (ROOT / "minitransformer").rglob("*.py"):     # references, never dependencies
        text = name.read_text(encoding="utf-8")
        assert "import torch" not in text and "import transformers" not in text, name
