"""Shared test setup. The test session is an entry point, so it applies the process settings the
CLI applies (runtime.setup); the package itself never does that on import."""
from minitransformer import runtime


def pytest_configure(config):
    runtime.setup()
