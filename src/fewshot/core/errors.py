"""The one exception a user can cause, and the entry-point wrapper that prints it as one line."""

from __future__ import annotations

import functools
import sys
from typing import Callable


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
