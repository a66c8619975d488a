"""Ctrl-C and SIGTERM during a run: finish the step, checkpoint, say how to resume, exit.

    catcher = SignalCatcher().install()      # in run(); restore() when it ends
    if catcher.signum is not None: ...       # the loop looks at every step boundary

Schedulers stop jobs with SIGTERM, users with Ctrl-C (SIGINT); both end a run the same way. The
first signal only sets `signum`: the loop sees it before its next step, writes a checkpoint there
(a step boundary, so resuming from it is bit-identical) and raises Interrupted. A second signal
raises Interrupted at once, wherever the program is (the last checkpoint is then the one to
resume from). The exit status is 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM.
Handlers can only be installed by the main thread; elsewhere (a thread of a sweep) install() does
nothing and signals keep their usual effect.
"""
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal; `signum` says which (exit status 128 + signum)."""

    def __init__(self, signum, message=""):
        super().__init__(message)
        self.signum = signum

    @property
    def exit_status(self):
        return 128 + self.signum


class SignalCatcher:
    """Turns SIGINT and SIGTERM into a request the training loop honours at a step boundary."""

    def __init__(self):
        self.signum = None
        self.previous = {}

    def install(self):
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self.previous[sig] = signal.signal(sig, self.handle)
        return self

    def handle(self, signum, frame):
        if self.signum is not None:                 # asked twice: stop now
            raise Interrupted(signum)
        self.signum = signum

    def restore(self):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}

    @property
    def name(self):
        return signal.Signals(self.signum).name if self.signum is not None else None
