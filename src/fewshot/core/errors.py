"""The one exception a user can cause, the entry-point wrapper that prints it as one line, and
SIGTERM turned into the interrupt that wrapper reports."""

from __future__ import annotations

import functools
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Callable, Iterator


class UserError(Exception):
    """Bad input: the message names the bad value and what was expected."""


def one_line_errors(main: Callable[[], None]) -> Callable[[], None]:
    """Run `main`; a `UserError` becomes `error: <message>` on stderr and exit status 2.

    `-h`/`--help` prints the stage's module docstring (what it reads, writes and which params).
    """

    @functools.wraps(main)
    def wrapper() -> None:
        if any(arg in ("-h", "--help") for arg in sys.argv[1:]):
            print((sys.modules[main.__module__].__doc__ or "").strip())
            return
        try:
            main()
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM inside a tracked stage
            print("error: interrupted; outputs not written", file=sys.stderr)
            sys.exit(128 + int(getattr(stop, "signum", 2)))  # the shell's convention: 130, 143

    return wrapper


class Terminated(KeyboardInterrupt):
    """SIGTERM inside a stage: handled like Ctrl-C (the run ends KILLED), exit status 128 + 15."""

    signum = signal.SIGTERM


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (DVC's or a scheduler's stop) raises `Terminated`, so the run ends KILLED."""
    if threading.current_thread() is not threading.main_thread():  # only it may set handlers
        yield
        return

    def interrupt(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
