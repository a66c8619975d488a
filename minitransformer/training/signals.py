"""Ctrl-C and SIGTERM during a run: finish the step, checkpoint, say how to resume, exit.

    catcher = SignalCatcher().install()      # in run(); restore() when it ends
    if catcher.signum is not None: ...       # the loop looks at every step boundary

Schedulers stop jobs with SIGTERM, users with Ctrl-C (SIGINT); both end a run the same way. The
first signal only sets `signum`: the loop sees it before its next step, writes a checkpoint there
(a step boundary, so resuming from it is bit-identical) and raises Interrupted. A second signal
raises Interrupted at once, wherever the program is (the last checkpoint is then the one to
resume from). The exit status is 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM.
Handlers can only be installed by the main thread; elsewhere (a thread of a sweep) install() does
nothing and signals keep their usual effect. `sample` uses the same catcher between tokens.
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


def interrupt_in(error):
    """The KeyboardInterrupt (an Interrupted among them) behind `error`, or None: the error
    itself, or the one a SystemError carries. A signal handler that raises runs wherever Python
    next checks for signals, and that can be inside a C extension's call: Numba's dispatcher then
    returns its kernel's result with the exception still set, and CPython reports "SystemError:
    ... returned a result with an exception set", the KeyboardInterrupt as its cause. Ctrl-C
    must not turn into an internal error that way (a pty test caught `sample` doing so)."""
    if isinstance(error, KeyboardInterrupt):
        return error
    if isinstance(error, SystemError):
        inner = error.__cause__ or error.__context__
        if isinstance(inner, KeyboardInterrupt):
            return inner
    return None


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
