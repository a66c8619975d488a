"""Peak memory of loading a text file for training: `python benchmarks/text_memory.py --mb 200`.

Writes a text file of about MB megabytes (Tiny Shakespeare repeated; --unicode replaces some
letters by non-ASCII ones so the UTF-8 decoding path is timed too), then loads it with
data.load_text in a fresh process and prints that process's peak resident memory (ru_maxrss)
before and after the load, and the increase per MB of text. A fresh process, because ru_maxrss
is a high-water mark that nothing in a running process can lower.
"""
import argparse
import json
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, resource, sys, time
from minitransformer.training.data import load_text
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss       # KiB on Linux
t0 = time.perf_counter()
ds = load_text(sys.argv[1])
seconds = time.perf_counter() - t0
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"chars": len(ds.train) + len(ds.val), "vocab": ds.vocab_size,
                  "dtype": str(ds.train.dtype), "rss_before_mb": before / 1024,
                  "rss_peak_mb": after / 1024, "seconds": seconds}))
"""


def write_text(path, mb, unicode=False):
    """About mb MB of Tiny Shakespeare, repeated; unicode: 'e' -> 'é' and 'o' -> 'ø'."""
    base = (ROOT / "data" / "tinyshakespeare.txt").read_text(encoding="utf-8")
    if unicode:
        base = base.replace("e", "é").replace("o", "ø")
    chunk = base.encode("utf-8")
    with open(path, "wb") as f:
        written = 0
        while written < mb * 2**20:
            part = chunk[:int(mb * 2**20) - written]
            if unicode:                                 # do not cut a character in two
                part = part.decode("utf-8", errors="ignore").encode("utf-8")
            f.write(part)
            written += len(part)
    return written


def measure(path, root=ROOT):
    """Load `path` in a fresh process that imports the package of `root`: the child's JSON
    report plus the file's size and the peak increase per MB of text."""
    env = dict(os.environ, PYTHONPATH=str(root))
    out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True,
                         text=True, check=True, env=env, cwd=Path(path).parent)
    res = json.loads(out.stdout)
    size_mb = Path(path).stat().st_size / 2**20
    res.update(file_mb=size_mb,
               increase_per_mb=(res["rss_peak_mb"] - res["rss_before_mb"]) / size_mb)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=200.0, help="Size of the text file in MB.")
    ap.add_argument("--unicode", action="store_true", help="Non-ASCII characters in the text.")
    ap.add_argument("--root", default=str(ROOT), help="Repository whose package is measured.")
    ap.add_argument("--json", action="store_true", help="Print one JSON document.")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "text.txt"
        t0 = time.perf_counter()
        write_text(path, args.mb, args.unicode)
        res = measure(path, args.root)
        res["write_seconds"] = time.perf_counter() - t0 - res["seconds"]
    if args.json:
        print(json.dumps(res))
        return
    print(f"text file {res['file_mb']:.1f} MB, {res['chars']:,} characters, vocabulary "
          f"{res['vocab']} -> ids {res['dtype']}, loaded in {res['seconds']:.2f} s")
    print(f"peak RSS {res['rss_before_mb']:.0f} MB after imports, {res['rss_peak_mb']:.0f} MB "
          f"after loading: {res['increase_per_mb']:.2f} MB per MB of text")


if __name__ == "__main__":
    main()
