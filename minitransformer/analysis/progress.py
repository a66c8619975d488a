"""Progress of a long instrument (sharpness, landscape, spectra) on a terminal:

    with InstrumentProgress("sharpness") as show:
        top_eigenvalue(model, x, y, progress=show)     # calls show(done, total, note)

One line on stderr, rewritten in place at most ten times a second: "sharpness  12/300  4%
restart 1/3  ETA 0:00:31". Only when stderr is a terminal: piped or redirected output (and
--json documents on stdout) stay exactly as they were. The line is erased when the work ends.
"""
import sys
import time

from ..training.progress import hms


class InstrumentProgress:
    def __init__(self, label, stream=None):
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.monotonic()
        self.last_draw = 0.0
        self.drawn = False

    def __call__(self, done, total, note=""):
        if not self.tty:
            return
        now = time.monotonic()
        if now - self.last_draw < 0.1:
            return
        frac = done / total if total else 1.0
        eta = (now - self.start) * (1 - frac) / frac if frac > 0 else 0.0
        self.stream.write(f"\r\033[K{self.label}  {done}/{total}  {frac:.0%}  {note}  "
                          f"ETA {hms(eta)}")
        self.stream.flush()
        self.last_draw, self.drawn = now, True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
        return False

