"""The dependency rule (docs/design.md#layers), read from the source with `ast`: every import of
every module (also those inside functions, relative ones resolved) goes to its own layer or a
lower one, nothing imports the cli, the engine opens no file, and no two modules import each
other in a cycle. A copy of the package with a planted forbidden import must fail the check.
Also: importing the package changes no process-wide state (runtime.setup() does that)."""
import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["errors", "runtime", "engine", "init", "measure", "training", "analysis", "studies",
          "cli"]
FILE_CALLS = {"open", "load", "save", "savez", "savez_compressed", "loadtxt", "savetxt",
              "read_text", "write_text", "read_bytes", "write_bytes", "fromfile", "tofile"}


def module_name(pkg_dir, path):
    rel = path.relative_to(pkg_dir.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module):
    """errors, runtime, engine, ...; the top-level facade minitransformer/__init__.py counts as
    part of the init layer (it re-exports build_model)."""
    parts = module.split(".")
    if len(parts) == 1:
        return "init"
    return parts[1]


def imports_of(pkg_dir, path, modules):
    """[(line, imported module)] of one file: every import statement anywhere in it, relative
    ones resolved; `from X import name` counts as importing X.name when that is a module."""
    name = module_name(pkg_dir, path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for a in node.names:
                sub = f"{target}.{a.name}"
                out.append((node.lineno, sub if sub in modules else target))
    return [(line, m) for line, m in out if m == "minitransformer" or
            m.startswith("minitransformer.")]


def opens_files(path):
    """Lines of calls that read or write files (open(...), np.load, Path.write_text, ...)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) \
                else None
            if name in FILE_CALLS:
                lines.append(node.lineno)
    return lines


def check(pkg_dir):
    """Every violation of the dependency rule in the package at pkg_dir, as readable lines."""
    pkg_dir = Path(pkg_dir)
    files = {module_name(pkg_dir, p): p for p in sorted(pkg_dir.rglob("*.py"))}
    problems, graph = [], {m: set() for m in files}
    for mod, path in files.items():
        if layer_of(mod) not in LAYERS:
            problems.append(f"{mod}: not in a known layer ({', '.join(LAYERS)})")
            continue
        for line, target in imports_of(pkg_dir, path, files):
            if target not in files:
                problems.append(f"{mod}:{line} imports {target}, which does not exist")
                continue
            graph[mod].add(target)
            src, dst = LAYERS.index(layer_of(mod)), LAYERS.index(layer_of(target))
            if dst > src:
                problems.append(f"{mod}:{line} imports {target}: layer {layer_of(mod)} may not "
                                f"import layer {layer_of(target)}")
        if layer_of(mod) == "engine":
            problems += [f"{mod}:{line} reads or writes a file (the engine opens no file)"
                         for line in opens_files(path)]
    problems += [f"import cycle: {' -> '.join(c)}" for c in cycles(graph)]
    return problems


def cycles(graph):
    """One cycle (as a list of modules ending where it starts) per strongly connected group of
    modules that import each other, found by depth-first search."""
    found, state, stack = [], {}, []

    def visit(m):                                      # 1 = on the stack, 2 = done
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                found.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return found


def test_the_package_follows_the_dependency_rule():
    problems = check(ROOT / "minitransformer")
    assert not problems, "\n".join(problems)


def test_a_planted_forbidden_import_fails_the_check(tmp_path):
    pkg = tmp_path / "minitransformer"
    shutil.copytree(ROOT / "minitransformer", pkg,
                    ignore=shutil.ignore_patterns("__pycache__"))
    assert check(pkg) == []
    engine = pkg / "engine" / "gpt.py"
    clean = engine.read_text(encoding="utf-8")
    engine.write_text(clean + "\n\ndef late():\n    from ..training import loop\n",
                      encoding="utf-8")
    problems = check(pkg)
    assert any("minitransformer.engine.gpt" in p and "layer engine may not import layer "
               "training" in p for p in problems), problems
    engine.write_text(clean + "\nfrom minitransformer import build_model\n", encoding="utf-8")
    assert any("engine may not import layer init" in p for p in check(pkg))
    engine.write_text(clean, encoding="utf-8")        # a cycle inside one layer
    (pkg / "engine" / "names.py").write_text(
        (pkg / "engine" / "names.py").read_text(encoding="utf-8") + "\nfrom . import gpt\n",
        encoding="utf-8")
    assert any(p.startswith("import cycle:") and "minitransformer.engine.gpt" in p
               for p in check(pkg))
    (pkg / "engine" / "kernels.py").write_text(
        (pkg / "engine" / "kernels.py").read_text(encoding="utf-8")
        + "\n\ndef dump(x):\n    with open('x.txt', 'w') as f:\n        f.write(str(x))\n",
        encoding="utf-8")
    assert any("engine opens no file" in p for p in check(pkg))


PROBE = r"""
import ctypes, json, os, sys
calls = []
real_cdll, real_umask = ctypes.CDLL, os.umask
class Spy:
    def __init__(self, *a, **k):
        calls.append(("CDLL", a[0] if a else None))
        self._lib = real_cdll(*a, **k)
    def __getattr__(self, name):
        calls.append(("libc", name))
        return getattr(self._lib, name)
ctypes.CDLL = Spy
os.umask = lambda *a: calls.append(("umask",) + a) or real_umask(*a)
import numba
layer = numba.config.THREADING_LAYER
import minitransformer, minitransformer.cli
import pkgutil, importlib
for m in pkgutil.walk_packages(minitransformer.__path__, "minitransformer."):
    importlib.import_module(m.name)
mask = real_umask(0o022); real_umask(mask)
print(json.dumps({"calls": calls, "layer_before": layer,
                  "layer_after": numba.config.THREADING_LAYER, "umask": mask}))
"""


def test_importing_the_package_changes_no_process_state():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                         check=True, cwd=ROOT)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert not [c for c in res["calls"] if c[0] == "umask" or c == ["libc", "mallopt"]], res
    assert res["layer_after"] == res["layer_before"], res
    # and the probe would see it: runtime.setup() does call mallopt and set the layer
    probe = PROBE.replace("import pkgutil, importlib",
                          "from minitransformer import runtime; runtime.setup()\n"
                          "import pkgutil, importlib")
    res = json.loads(subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                                    text=True, check=True, cwd=ROOT).stdout.splitlines()[-1])
    assert ["libc", "mallopt"] in res["calls"] and res["layer_after"] == "workqueue", res


def test_design_references_point_into_the_repository():
    """Docstrings and docs refer to docs/design.md#anchor (an existing heading), never to a design
    file outside the repository."""
    import re
    design = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", design, flags=re.M)}
    files = list((ROOT / "minitransformer").rglob("*.py")) + list((ROOT / "docs").glob("*.md")) \
        + [ROOT / "README.md"]
    used = set()
    for f in files:
        text = f.read_text(encoding="utf-8")
        assert "DESIGN.md" not in text, f"{f} refers to DESIGN.md, which is not in the repository"
        used |= {(f.name, a) for a in re.findall(r"design\.md#([a-z0-9-]+)", text)}
    assert used, "no docs/design.md#anchor references found"
    missing = sorted((f, a) for f, a in used if a not in anchors)
    assert not missing, f"anchors not in docs/design.md: {missing}"
