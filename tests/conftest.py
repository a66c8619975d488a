"""Shared test setup. The test session is an entry point, so it applies the process settings the
CLI applies (runtime.setup); the package itself never does that on import.

In CI (environment variable CI set to true or 1, as .ci/run does) a skipped test fails the run:
CI installs every extra the tests need (`.[test,ref]`: matplotlib, torch, transformers), so a
skip there means a reference comparison silently did not happen. Without CI, tests whose
reference is missing (e.g. no torch) are skipped as usual (pytest.importorskip) and listed by
`-ra`. docs/testing.md says which tests need which extra.
"""
import os

import numba
import pytest

from minitransformer import runtime

_SKIPPED = []


def in_ci():
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def pytest_configure(config):
    runtime.setup()


# --------------------------------------------------------------------------------------------
# Fixtures shared by several test files.

@pytest.fixture(scope="module")
def one_numba_thread():
    """Finite differences call tiny kernels thousands of times; on a shared 2-core machine waking
    a second thread for each call costs more than the work. Results do not depend on it. A module
    uses it with `pytestmark = pytest.mark.usefixtures("one_numba_thread")`."""
    saved = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(saved)


@pytest.fixture
def run_cli(capsys):
    """The CLI in-process: run_cli("inspect", "spectra", run_dir) -> (exit status, stdout,
    stderr); arguments are turned into strings."""
    from minitransformer.cli import main

    def call(*args):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err
    return call


def _note(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _SKIPPED.append(f"{report.nodeid}: {reason}")


def pytest_runtest_logreport(report):
    _note(report)


def pytest_collectreport(report):
    _note(report)                                      # a module-level importorskip


def pytest_terminal_summary(terminalreporter):
    if in_ci() and _SKIPPED:
        terminalreporter.write_line(
            f"CI: {len(_SKIPPED)} test(s) skipped, which fails the run (install .[test,ref]):",
            red=True)
        for line in _SKIPPED:
            terminalreporter.write_line(f"  {line}", red=True)


def pytest_sessionfinish(session, exitstatus):
    if in_ci() and _SKIPPED and exitstatus == 0:
        session.exitstatus = 1
