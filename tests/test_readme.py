"""README promises that can go stale: the reading-order line counts and the two quickstart
commands."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_reading_order_table_matches_the_files():
    r = subprocess.run([sys.executable, "scripts/readme_table.py", "--check"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + r.stdout


def test_quickstart_has_the_train_and_test_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    quick = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```\n(.*?)```", quick, re.S)
    assert len(blocks) == 2, blocks
    assert "python cli.py train" in blocks[0] and "pip install" in blocks[0]
    assert "pytest" in blocks[1] and '.[test]' in blocks[1]
    assert 'pip install -e ".[test]" && python -m pytest -q' in blocks[1]
    # .ci/run runs the same pytest command after installing the test extra plus the reference
    # extra (torch, transformers), so that the reference tests run there (tests/test_ci.py)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert 'pip install -q -e ".[test,ref]"' in ci and "python -m pytest -q" in ci
    assert ".ci/run` runs the second command with `.[test,ref]`" in " ".join(text.split())


def test_claims_table_names_existing_tests():
    """README's "What the tests measure" table: every row names at least one test, and every
    named test exists (a `def test_...` in that file)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### What the tests measure", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in section.splitlines() if ln.startswith("| ") and not ln.startswith("| what")]
    assert len(rows) >= 20, rows
    for row in rows:
        named = re.findall(r"`(tests/test_\w+\.py)::(test_\w+)`", row.rstrip(" |").rsplit(" | ", 1)[-1])
        assert named, row
        for path, name in named:
            source = (ROOT / path).read_text(encoding="utf-8")
            assert re.search(rf"^def {name}\(", source, re.M), f"{path}::{name} does not exist"
