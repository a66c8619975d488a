"""What a run shows on stderr while it trains: step, loss, lr, ms/iter and ETA."""
import sys
import time


class Progress:
    """Step, loss, lr, ms/iter and ETA on stderr: one line rewritten in place on a terminal,
    plain lines at every log step otherwise. ms/iter is a moving average of the training steps
    (evaluation and checkpoint time excluded). message(..., always=True) prints even when the
    display is off (warnings, divergence, interruption)."""

    def __init__(self, enabled, total, stream=None):
        self.enabled, self.total = enabled, total
        self.stream = stream or sys.stderr
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.ms = None
        self.last_draw = 0.0
        self.open_line = False

    def message(self, text, always=False):
        if not (self.enabled or always):
            return
        if self.open_line:
            self.stream.write("\r\033[K")
            self.open_line = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def step(self, step, loss, lr, seconds, logged):
        ms = seconds * 1e3
        self.ms = ms if self.ms is None else 0.9 * self.ms + 0.1 * ms
        if not self.enabled:
            return
        eta = hms((self.total - step - 1) * self.ms / 1e3)
        line = (f"step {step:>{len(str(self.total))}}/{self.total}  loss {loss:.4f}  lr {lr:.2e}"
                f"  {self.ms:6.1f} ms/iter  ETA {eta}")
        now = time.monotonic()
        if self.tty and (now - self.last_draw > 0.1 or step == self.total - 1):
            self.stream.write("\r\033[K" + line)
            self.stream.flush()
            self.open_line, self.last_draw = True, now
        elif not self.tty and logged:
            self.message(line)


def hms(seconds):
    """'h:mm:ss' of a number of seconds."""
    seconds = int(round(max(seconds, 0)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
