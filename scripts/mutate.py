"""A small mutation check: does the test suite catch realistic bugs?

    python scripts/mutate.py              # every mutant; prints a table (2.5 minutes on 2 cores)
    python scripts/mutate.py --list       # the mutants, and whether each one's code is still there
    python scripts/mutate.py --only adamw-bias-m,hvp-scale
    python scripts/mutate.py --markdown   # the table as docs/testing.md shows it

Each mutant is one small edit a person could plausibly make: a wrong constant, a missing term, an
off-by-one, a swapped axis. The script copies the repository's files to a temporary folder, runs
the mutants' tests once unchanged (they must pass), then for each mutant: plants the edit in the
copy, runs the tests that should notice it (`python -m pytest -q -x` on the files listed), and
restores the file. A mutant is CAUGHT when pytest fails (or times out) and SURVIVED when every
test passes. The working tree is never touched.

A mutant finds its site by an exact piece of code, searched in every file of the package: the
piece must occur exactly `count` times, all in one file. When the code has moved or changed, the
script stops before running anything and names the mutants whose code it cannot find, so a stale
mutant never passes for a caught one. Not part of CI (a run takes minutes); docs/testing.md has
the table of the last run, and every survivor there has been closed by a test.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "minitransformer"


class Mutant(NamedTuple):
    id: str
    family: str          # engine, optimizer, schedule, init, instrument, run folder, lottery
    what: str            # the bug, in words
    find: str            # exact code to replace
    replace: str
    tests: tuple         # test files (or node ids) expected to catch it
    count: int = 1       # how many times `find` occurs (all are replaced)


MUTANTS = [
    # ---------------------------------------------------------------- engine
    Mutant("linear-db-mean", "engine", "linear backward: bias gradient averaged over rows",
           "    db = kernels.col_sum(np.ascontiguousarray(d2))     # sum over rows\n",
           "    db = kernels.col_sum(np.ascontiguousarray(d2)) / d2.shape[0]\n",
           ("tests/test_layers.py",)),
    Mutant("wpe-grad-first-row", "engine", "position embedding gradient from the first sequence only",
           "    dwpe[:T] = dout.sum(axis=0)\n", "    dwpe[:T] = dout[0]\n",
           ("tests/test_layers.py",)),
    Mutant("gelu-constant", "engine", "tanh-GELU constant 0.04715 instead of 0.044715",
           "_GELU_K = 0.044715\n", "_GELU_K = 0.04715\n",
           ("tests/test_kernels.py",)),
    Mutant("attn-scale", "engine", "attention scores scaled by 1/HS instead of 1/sqrt(HS)",
           "else 1.0 / math.sqrt(self.head_size)", "else 1.0 / self.head_size",
           ("tests/test_torch_reference.py", "tests/test_layers.py", "tests/test_known_values.py")),
    Mutant("causal-mask-diagonal", "engine", "causal mask also hides the next token (k=2)",
           "np.triu(np.full((T, T), -np.inf, dtype=dtype), k=1)",
           "np.triu(np.full((T, T), -np.inf, dtype=dtype), k=2)",
           ("tests/test_kernels.py", "tests/test_layers.py")),
    Mutant("xent-grad-not-mean", "engine", "cross-entropy gradient of the sum, loss of the mean",
           "    z /= (tot[:, None] * R).astype(z.dtype)\n    z[rows, y] -= 1.0 / R\n",
           "    z /= tot[:, None].astype(z.dtype)\n    z[rows, y] -= 1.0\n",
           ("tests/test_kernels.py", "tests/test_layers.py")),
    Mutant("softmax-bwd-scale", "engine", "softmax backward (Numba) forgets the score scale",
           "            dp[r, j] = scale * p[r, j] * (dp[r, j] - dot)\n",
           "            dp[r, j] = p[r, j] * (dp[r, j] - dot)\n",
           ("tests/test_kernels.py",)),
    Mutant("layernorm-bwd-dw", "engine", "LayerNorm backward (Numba): weight gradient without xhat",
           "            dw[j] += dyi[j] * xh\n", "            dw[j] += dyi[j]\n",
           ("tests/test_kernels.py",)),
    Mutant("exp32-taylor-term", "engine", "float32 exp: a wrong Taylor coefficient (1/700 for 1/720)",
           "        p = p * f + np.float32(1.0 / 720.0)\n", "        p = p * f + np.float32(1.0 / 700.0)\n",
           ("tests/test_kernels.py",)),
    Mutant("erf32-constant", "engine", "float32 erf: Abramowitz & Stegun's p rounded to 0.3276",
           "ERF_P = 0.3275911\n", "ERF_P = 0.3276\n",
           ("tests/test_kernels.py",)),
    Mutant("tanh32-exp-of-u", "engine", "float32 tanh-GELU (Numba): exp(u) where tanh needs exp(2u)",
           "np.float32(2.0 * _SQRT_2_OVER_PI) * (v +", "np.float32(_SQRT_2_OVER_PI) * (v +",
           ("tests/test_kernels.py",)),
    Mutant("xent32-no-onehot", "engine", "float32 cross-entropy (Numba) forgets the one-hot term",
           "            d[t] -= np.float32(1.0 / R)\n", "            d[t] -= np.float32(0.0)\n",
           ("tests/test_kernels.py",)),
    Mutant("residual-mult-backward", "engine", "skip multiplier missing from the second residual's backward",
           "    dx += dx1 if r == 1.0 else r * dx1\n", "    dx += dx1\n",
           ("tests/test_layers.py", "tests/test_models.py")),
    # ---------------------------------------------------------------- optimizer
    Mutant("adamw-bias-m", "optimizer", "AdamW (Numba kernel) without m's bias correction",
           "    step_size = dt(lr / (1.0 - beta1 ** tf))\n    bc2_sqrt = dt(math.sqrt(1.0 - beta2 ** tf))\n    decay = ",
           "    step_size = dt(lr)\n    bc2_sqrt = dt(math.sqrt(1.0 - beta2 ** tf))\n    decay = ",
           ("tests/test_optim.py",)),
    Mutant("mup-decay-base-lr", "optimizer", "AdamW decays with the base lr, not the tensor's lr_eff (muP)",
           "            wd = self.weight_decay if self.decay[name] else 0.0\n            m, v =",
           "            wd = (self.weight_decay / self.lr_mult[name]) if self.decay[name] else 0.0\n            m, v =",
           ("tests/test_optim.py", "tests/test_known_values.py")),
    Mutant("decay-vectors", "optimizer", "weight decay on biases and LayerNorm too",
           "    return {name: p.ndim >= 2 for name, p in params.items()}",
           "    return {name: p.ndim >= 1 for name, p in params.items()}",
           ("tests/test_optim.py",)),
    Mutant("clip-squared-norm", "optimizer", "clipping divides by the squared norm",
           "    coef = max_norm / (norm + 1e-6)\n", "    coef = max_norm / (total + 1e-6)\n",
           ("tests/test_optim.py",)),
    Mutant("sgd-momentum-decay-order", "optimizer", "SGD momentum buffer damped by (1 - momentum)",
           "            buf *= self.momentum\n            buf += g\n",
           "            buf *= self.momentum\n            buf += (1 - self.momentum) * g\n",
           ("tests/test_optim.py",)),
    # ---------------------------------------------------------------- schedules
    Mutant("warmup-starts-at-zero", "schedule", "warmup lr*k/W: step 0 gets lr 0",
           "        return lr * (step + 1) / (warmup_iters + 1)\n",
           "        return lr * step / warmup_iters\n",
           ("tests/test_optim.py",)),
    Mutant("cosine-no-floor", "schedule", "cosine decays to 0 instead of min_lr",
           "        return min_lr + 0.5 * (1.0 + math.cos(math.pi * r)) * (lr - min_lr)\n",
           "        return 0.5 * (1.0 + math.cos(math.pi * r)) * lr\n",
           ("tests/test_optim.py",)),
    Mutant("noam-unnormalized", "schedule", "inverse-sqrt without the sqrt(W+1) normalization",
           "lr * math.sqrt(warmup_iters + 1) / math.sqrt(step + 1)",
           "lr / math.sqrt(step + 1)",
           ("tests/test_optim.py",)),
    Mutant("loop-lr-off-by-one", "schedule", "the training loop steps with the next step's lr",
           "train_step(r.model, r.opt, x, y, cfg.lr_at(step),",
           "train_step(r.model, r.opt, x, y, cfg.lr_at(step + 1),",
           ("tests/test_train.py",)),
    # ---------------------------------------------------------------- init formulas
    Mutant("gpt2-residual-scale", "init", "GPT-2 residual writers 0.02/sqrt(L) instead of 0.02/sqrt(2L)",
           "normal(0.02 / math.sqrt(2 * cfg.n_layer)", "normal(0.02 / math.sqrt(cfg.n_layer)",
           ("tests/test_init.py", "tests/test_init_numbers.py")),
    Mutant("xavier-uniform-bound", "init", "Xavier-uniform bound sqrt(2/(fi+fo)) (the std, not the bound)",
           "uniform(math.sqrt(6.0 / (fan_in + fan_out))", "uniform(math.sqrt(2.0 / (fan_in + fan_out))",
           ("tests/test_init.py", "tests/test_init_numbers.py")),
    Mutant("kaiming-uniform-gain", "init", "Kaiming-uniform without the ReLU gain: U(+-sqrt(3/fan_in))",
           "uniform(math.sqrt(6.0 / fi), \"sqrt(2/fan_in)\")",
           "uniform(math.sqrt(3.0 / fi), \"sqrt(2/fan_in)\")",
           ("tests/test_init.py", "tests/test_init_numbers.py")),
    Mutant("qkv-fans", "init", "fans of the fused qkv taken as (C, 3C)",
           "        return shape[0], shape[1] // 3\n", "        return shape[0], shape[1]\n",
           ("tests/test_init.py", "tests/test_init_numbers.py")),
    Mutant("t-fixup-exponent", "init", "T-Fixup block factor 0.67 L^-1/2 instead of L^-1/4",
           "block, emb = 0.67 * L ** -0.25,", "block, emb = 0.67 * L ** -0.5,",
           ("tests/test_init.py", "tests/test_init_numbers.py")),
    Mutant("deepnet-beta", "init", "DeepNet beta (2L)^-1/4 (alpha's constant) instead of (8L)^-1/4",
           "beta = (8 * cfg.n_layer) ** -0.25", "beta = (2 * cfg.n_layer) ** -0.25",
           ("tests/test_init.py", "tests/test_init_numbers.py")),
    Mutant("admin-omega", "init", "Admin omega without the -1",
           "return math.sqrt((n + 1) / math.log(n + 1) - 1)", "return math.sqrt((n + 1) / math.log(n + 1))",
           ("tests/test_init.py", "tests/test_init_numbers.py")),
    Mutant("mup-lr-sqrt", "init", "muP hidden Adam LR / sqrt(m) instead of / m",
           "return 1.0 / m if role(name) in HIDDEN else 1.0", "return 1.0 / math.sqrt(m) if role(name) in HIDDEN else 1.0",
           ("tests/test_init.py", "tests/test_init_numbers.py")),
    Mutant("mup-attn-scale", "init", "muP attention 1/sqrt(HS) instead of 1/HS",
           "attn_scale=1.0 / cfg.head_size,", "attn_scale=1.0 / math.sqrt(cfg.head_size),",
           ("tests/test_init.py", "tests/test_init_numbers.py")),
    # ---------------------------------------------------------------- instruments
    Mutant("hvp-scale", "instrument", "Hessian-vector product divided by eps instead of 2 eps",
           "return (gp - gm) * (nv / (2 * eps))", "return (gp - gm) * (nv / eps)",
           ("tests/test_sharpness.py", "tests/test_instrument_references.py")),
    Mutant("preconditioner-sqrt", "instrument", "preconditioned sharpness with D instead of D^1/2 on each side",
           "else np.sqrt(np.asarray(preconditioner, dtype=np.float64))",
           "else np.asarray(preconditioner, dtype=np.float64)",
           ("tests/test_sharpness.py", "tests/test_instrument_references.py")),
    Mutant("adam-preconditioner-bias", "instrument", "Adam preconditioner without v's bias correction",
           "    vhat = v / (1.0 - beta2 ** t)\n    return lr_mult / (np.sqrt(vhat) + eps)",
           "    vhat = v\n    return lr_mult / (np.sqrt(vhat) + eps)",
           ("tests/test_sharpness.py", "tests/test_instrument_references.py")),
    Mutant("mp-edge", "instrument", "MP upper edge sigma^2 (1 + q)^2 instead of (1 + sqrt q)^2",
           "sigma2 * (1 + math.sqrt(q)) ** 2", "sigma2 * (1 + q) ** 2",
           ("tests/test_spectra.py", "tests/test_instrument_references.py")),
    Mutant("spectra-normalize-n", "instrument", "eigenvalues of the Gram matrix divided by n instead of m",
           "eigs = np.clip(np.linalg.eigvalsh(gram), 0.0, None) / m",
           "eigs = np.clip(np.linalg.eigvalsh(gram), 0.0, None) / n",
           ("tests/test_spectra.py", "tests/test_instrument_references.py")),
    Mutant("filter-axis", "instrument", "filter normalization by columns for embedding tables too",
           "axis = 1 if role(name) in TABLES else 0", "axis = 0",
           ("tests/test_landscape.py", "tests/test_instrument_references.py")),
    Mutant("telemetry-grad-norm-clipped", "instrument", "telemetry reports the clipped gradient norm",
           "\"grad_norm\": _norm(grads[name]) / clip_coef,", "\"grad_norm\": _norm(grads[name]),",
           ("tests/test_telemetry.py", "tests/test_instrument_references.py")),
    Mutant("telemetry-adam-bias", "instrument", "Adam's v-hat without bias correction (telemetry's Adam step)",
           "    return m / (1.0 - beta1 ** t), v / (1.0 - beta2 ** t)\n",
           "    return m / (1.0 - beta1 ** t), v\n",
           ("tests/test_telemetry.py", "tests/test_instrument_references.py")),
    Mutant("attention-entropy-mean", "instrument", "attention entropy averaged over keys, not summed",
           "    return total / R\n", "    return total / (R * T)\n",
           ("tests/test_telemetry.py",)),
    Mutant("coordcheck-slope-linear", "instrument", "coordinate-check slope of log values against widths",
           "lw, lv = np.log(np.asarray(widths, float)), np.log(np.asarray(values, float))",
           "lw, lv = np.asarray(widths, float), np.log(np.asarray(values, float))",
           ("tests/test_coordcheck.py", "tests/test_known_values.py")),
    # ---------------------------------------------------------------- run folder
    Mutant("truncate-keeps-checkpoint-step", "run folder", "resume keeps the metrics line of the checkpoint's step",
           "        if s is not None and s >= step:\n",
           "        if s is not None and s > step:\n",
           ("tests/test_train.py",)),
    Mutant("rng-not-restored", "run folder", "resume does not restore the generators' states",
           "            _set_rng(rng, ckpt[f\"rng.{name}\"], name, path)\n",
           "            pass\n",
           ("tests/test_train.py",)),
    Mutant("train-state-not-restored", "run folder", "resume forgets best val loss and the divergence reference",
           "            state[name] = None if math.isnan(v) else v\n",
           "            pass\n",
           ("tests/test_train.py",)),
    Mutant("checkpoint-allows-pickle", "run folder", "checkpoints loaded with allow_pickle=True",
           "with np.load(path, allow_pickle=False) as npz:", "with np.load(path, allow_pickle=True) as npz:",
           ("tests/test_train.py",)),
    Mutant("write-not-atomic", "run folder", "run-folder files written in place, not via a temporary file",
           "    with atomic_path(path) as tmp:\n        with open(tmp, \"wb\") as f:\n            write(f)\n",
           "    with open(path, \"wb\") as f:\n        write(f)\n",
           ("tests/test_train.py",)),
    Mutant("lottery-fresh-keeps-t", "lottery", "--optimizer-state fresh zeroes the moments but keeps AdamW's step count",
           'k.startswith(moments)] + ["opt.t"]:', 'k.startswith(moments)]:',
           ("tests/test_lottery.py",)),
    Mutant("lottery-moments-unmasked", "lottery", "a branch starts with the step-K moments of its pruned weights",
           "                start[moment + name] = start[moment + name] * m\n",
           "                start[moment + name] = start[moment + name]\n",
           ("tests/test_lottery.py",)),
]


def package_files(root):
    return sorted((root / PACKAGE).rglob("*.py"))


def locate(mutant, root):
    """(path, text) of the one file holding mutant.find exactly mutant.count times; raises
    LookupError saying what is wrong otherwise."""
    hits = [(p, p.read_text(encoding="utf-8")) for p in package_files(root)]
    hits = [(p, t) for p, t in hits if mutant.find in t]
    if not hits:
        raise LookupError("code not found in the package (moved or changed?)")
    if len(hits) > 1:
        raise LookupError("code found in several files: " + ", ".join(
            str(p.relative_to(root)) for p, _ in hits))
    path, text = hits[0]
    n = text.count(mutant.find)
    if n != mutant.count:
        raise LookupError(f"code found {n} times in {path.relative_to(root)}, expected "
                          f"{mutant.count}")
    return path, text


def check_sites(mutants, root, skip_missing=False):
    """{id: relative path}; exits with status 2 naming every mutant whose code is missing
    (with skip_missing, those mutants are only named and left out)."""
    sites, bad = {}, []
    for m in mutants:
        try:
            sites[m.id] = locate(m, root)[0].relative_to(root)
        except LookupError as e:
            bad.append(f"  {m.id}: {e}")
    if bad and skip_missing:
        print("mutate.py: left out (code not found):\n" + "\n".join(bad), file=sys.stderr)
    elif bad:
        print("mutate.py: these mutants no longer match the code; update MUTANTS:",
              file=sys.stderr)
        print("\n".join(bad), file=sys.stderr)
        sys.exit(2)
    return sites


def copy_tree(root, dest):
    """The repository's files as git sees them (tracked and untracked, not ignored)."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=root,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    for rel in out:
        src = root / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


HIDE = "raise ImportError('hidden by scripts/mutate.py --without-ref')\n"


def hide_references(folder):
    """A folder of stand-in torch and transformers packages that fail to import: put first on
    PYTHONPATH, the tests see a machine without the ref extra (their importorskip skips)."""
    for name in ("torch", "transformers"):
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(HIDE)
    return folder


def run_tests(copy, tests, timeout, hidden=None):
    """(status, detail): status "pass", "fail", "timeout", "error" (pytest could not run) or
    "no tests" (none of the files exists in this checkout)."""
    tests = [t for t in tests if (copy / t.split("::")[0]).exists()]
    if not tests:
        return "no tests", "none of its test files exists here"
    path = str(copy) if hidden is None else os.pathsep.join([str(hidden), str(copy)])
    env = dict(os.environ, PYTHONPATH=path, OPENBLAS_NUM_THREADS="1",
               NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    env.pop("CI", None)
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
    try:
        p = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", f"no result after {timeout} s"
    lines = p.stdout.splitlines()
    failed = [ln.split(" ", 1)[1].split(" - ")[0] for ln in lines if ln.startswith(("FAILED ", "ERROR "))]
    if p.returncode == 0:
        return "pass", lines[-1] if lines else ""
    if p.returncode in (1,) and failed:
        return "fail", failed[0]
    return "error", (lines[-1] if lines else p.stderr.strip()[-200:])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--list", action="store_true", help="list the mutants and check their sites")
    ap.add_argument("--only", help="comma-separated mutant ids")
    ap.add_argument("--markdown", action="store_true", help="print the result as a markdown table")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per mutant (default 900)")
    ap.add_argument("--root", type=Path, default=ROOT,
                    help="another checkout to test (e.g. an older commit, for comparison)")
    ap.add_argument("--without-ref", action="store_true",
                    help="hide torch and transformers, as on a machine without the ref extra")
    ap.add_argument("--skip-missing", action="store_true",
                    help="leave out mutants whose code is not found instead of stopping")
    args = ap.parse_args(argv)

    mutants = MUTANTS
    if args.only:
        want = set(args.only.split(","))
        unknown = want - {m.id for m in MUTANTS}
        if unknown:
            ap.error(f"unknown mutant(s): {', '.join(sorted(unknown))}")
        mutants = [m for m in MUTANTS if m.id in want]
    root = args.root.resolve()
    sites = check_sites(mutants, root, args.skip_missing)
    mutants = [m for m in mutants if m.id in sites]
    if args.list:
        for m in mutants:
            print(f"{m.id:<32} {m.family:<11} {str(sites[m.id]):<40} {m.what}")
        print(f"{len(mutants)} mutants, every site found")
        return 0

    with tempfile.TemporaryDirectory(prefix="mutate-") as tmp:
        copy = Path(tmp) / "repo"
        copy.mkdir()
        copy_tree(root, copy)
        hidden = hide_references(Path(tmp) / "hidden") if args.without_ref else None
        everything = sorted({t for m in mutants for t in m.tests if (copy / t).exists()})
        t0 = time.perf_counter()
        status, detail = run_tests(copy, everything, args.timeout, hidden)
        if status != "pass":
            print(f"mutate.py: the unmutated tests do not pass ({status}: {detail}); "
                  f"fix that first", file=sys.stderr)
            return 2
        print(f"baseline: {len(everything)} test files pass unmutated "
              f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
        results = []
        for i, m in enumerate(mutants, 1):
            path, text = locate(m, copy)
            path.write_text(text.replace(m.find, m.replace), encoding="utf-8")
            t0 = time.perf_counter()
            try:
                status, detail = run_tests(copy, list(m.tests), args.timeout, hidden)
            finally:
                path.write_text(text, encoding="utf-8")
            verdict = {"pass": "SURVIVED", "no tests": "SURVIVED"}.get(status, "caught")
            results.append((m, sites[m.id], verdict, status, detail))
            print(f"[{i}/{len(mutants)}] {m.id}: {verdict} ({status}: {detail}; "
                  f"{time.perf_counter() - t0:.0f} s)", file=sys.stderr)

    survivors = [r for r in results if r[2] == "SURVIVED"]
    if args.markdown:
        print("| mutant | family | file | the bug | result | first failing test |")
        print("|---|---|---|---|---|---|")
        for m, site, verdict, status, detail in results:
            shown = detail if status == "fail" else status
            print(f"| `{m.id}` | {m.family} | `{site}` | {m.what} | {verdict} | `{shown}` |")
    else:
        w = max(len(m.id) for m in mutants)
        for m, site, verdict, status, detail in results:
            print(f"{m.id:<{w}}  {m.family:<11} {verdict:<8}  {detail}")
    print(f"{len(results) - len(survivors)} of {len(results)} mutants caught"
          + (f"; survived: {', '.join(r[0].id for r in survivors)}" if survivors else ""))
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
