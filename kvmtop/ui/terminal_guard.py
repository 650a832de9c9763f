"""The terminal is given back as it was found, whatever ends the dashboard.

Textual restores the terminal when its app exits, but a signal's default action (SIGTERM
from ``kill``/``timeout``/a service manager, SIGHUP from a closing ssh session, SIGQUIT,
an external SIGINT) ends the process before it can: alternate screen, mouse reporting
and hidden cursor stay on, and under shells that do not reset it the tty stays raw.

``TerminalGuard`` (a context manager around ``App.run``):

* saves the tty's modes on entry;
* turns those signals into an orderly ``app.exit`` (status 128 + the signal number); a
  second signal, or an app that has not exited within ``grace_s``, gets the hard path:
  the escape sequences that undo what Textual switched on, the saved tty modes, and
  ``os._exit``;
* routes an uncaught exception in any other thread (the collector's included) to an
  orderly exit with one line instead of a traceback drawn over the screen;
* on the way out, always puts the saved tty modes back and shows the cursor.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import termios
import threading

SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGINT)
GRACE_S = 3.0

# Everything a Textual app may switch on, switched off: mouse modes, bracketed paste,
# focus events, the kitty keyboard protocol, line wrap back on, cursor shown.
RESET_MODES = ("\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?1015l\x1b[?2004l\x1b[?1004l"
               "\x1b[<u\x1b[?7h\x1b[?25h")
LEAVE_ALT_SCREEN = "\x1b[?1049l"


def _tty_fd(stream) -> int | None:
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    return fd if os.isatty(fd) else None


class TerminalGuard:
    """Restores the terminal on every exit path of ``app`` (see the module docstring)."""

    def __init__(self, app, grace_s: float = GRACE_S):
        self.app = app
        self.grace_s = grace_s
        self.signal: int | None = None  # the signal that ended the app, if one did
        self._in_fd = _tty_fd(sys.__stdin__)
        self._out_fd = _tty_fd(sys.__stderr__)  # where Textual draws
        self._modes: list | None = None
        self._old_handlers: dict[int, signal._HANDLER] = {}
        self._old_excepthook = threading.excepthook
        self._timer: threading.Timer | None = None
        self._main = threading.main_thread()

    # ------------------------------------------------------------------ context

    def __enter__(self) -> TerminalGuard:
        if self._in_fd is not None:
            try:
                self._modes = termios.tcgetattr(self._in_fd)
            except termios.error:
                self._modes = None
        if threading.current_thread() is self._main:  # signal handlers: main thread only
            for sig in SIGNALS:
                self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        self._old_excepthook = threading.excepthook
        threading.excepthook = self._on_thread_exception
        return self

    def __exit__(self, *exc) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for sig, old in self._old_handlers.items():
            signal.signal(sig, old)
        threading.excepthook = self._old_excepthook
        self.restore(leave_alt_screen=False)

    @property
    def exit_status(self) -> int | None:
        """128 + the signal that ended the app (the shell's convention), else None."""
        return 128 + self.signal if self.signal is not None else None

    # ------------------------------------------------------------------ restoring

    def restore(self, leave_alt_screen: bool) -> None:
        """Tty modes back and terminal modes off (idempotent). Leaving the alternate screen is
        only for the hard path: done twice, it would move the cursor back over later output."""
        seq = (LEAVE_ALT_SCREEN if leave_alt_screen else "") + RESET_MODES
        if self._out_fd is not None:
            with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP)
                os.write(self._out_fd, seq.encode())
        if self._modes is not None and self._in_fd is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(self._in_fd, termios.TCSADRAIN, self._modes)

    def _hard_exit(self) -> None:
        self.restore(leave_alt_screen=True)
        os._exit(self.exit_status or 1)

    # ------------------------------------------------------------------ events

    def _request_exit(self, return_code: int, message: str | None = None) -> bool:
        """Ask the app to exit from any thread (a signal handler included); False if it cannot."""
        loop = getattr(self.app, "_loop", None)
        if loop is None or loop.is_closed():
            return False
        try:
            loop.call_soon_threadsafe(self._exit_app, return_code, message)
        except RuntimeError:
            return False
        return True

    def _exit_app(self, return_code: int, message: str | None) -> None:
        from rich.text import Text

        self.app.exit(return_code=return_code, message=Text(message) if message else None)

    def _on_signal(self, signum: int, _frame) -> None:
        if self.signal is not None:  # a second signal: the user insists
            self._hard_exit()
        self.signal = signum
        if not self._request_exit(128 + signum):
            self._hard_exit()
        self._timer = threading.Timer(self.grace_s, self._hard_exit)
        self._timer.daemon = True
        self._timer.start()

    def _on_thread_exception(self, args) -> None:
        if args.exc_type is SystemExit:
            return
        line = f"{args.exc_type.__name__}: {args.exc_value}".splitlines()[0]
        name = args.thread.name if args.thread is not None else "a thread"
        if not self._request_exit(1, f"kvmtop: {name} failed: {line}"):
            self._old_excepthook(args)
