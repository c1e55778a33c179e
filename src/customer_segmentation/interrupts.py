"""Interrupted runs stop cleanly: Ctrl-C (SIGINT) and SIGTERM (a container stop) during ``kedro run``.

Python turns Ctrl-C into ``KeyboardInterrupt``; SIGTERM would end the process at once, without
``finally`` blocks, transaction rollbacks or the session's logout. While a run is in progress
(``interruptible_run``, wrapped around the ``run`` command in ``cli.py``), SIGTERM is handled
like Ctrl-C: a ``RunInterrupted`` (a ``KeyboardInterrupt``) is raised in the main thread, where
Kedro's ``SequentialRunner`` runs the nodes. When the Snowflake connector is waiting for a
statement, its own SIGINT handler is called first: it cancels the statement on the server
(``SYSTEM$CANCEL_QUERY``'s REST twin), then raises ``KeyboardInterrupt``.

The exception unwinds the run: an open transaction is rolled back (``warehouse/tables.py``
``transaction``), and nothing else is needed for consistency, since every step of the pipelines
is written to survive a crash at any point (a rerun resumes from the last committed step). Then
the warehouse session is closed (Snowflake drops its temporary tables; the embedded warehouse
does the same at logout) and the run lock released, without the INFO lines that would bury the
message, and one line says what happened. The exit code is 128 + the signal number (130 for
SIGINT, 143 for SIGTERM), as a shell reports a process ended by that signal.

A second signal during that cleanup ends the process at once (exit code as above): the kernel
releases the run lock, and the transaction of a session that was not logged out is rolled back
by the server (Snowflake rolls back the open transaction of a session that ends; the embedded
warehouse's DuckDB does the same when the connection closes).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

#: Exit code of a run ended by each signal (128 + the signal number, the shell's convention).
EXIT_CODES = {signal.SIGINT: 128 + signal.SIGINT, signal.SIGTERM: 128 + signal.SIGTERM}
SIGNAL_NAMES = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM"}


class RunInterrupted(KeyboardInterrupt):
    """SIGTERM during a run, raised where Ctrl-C raises ``KeyboardInterrupt`` (and handled alike)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by signal {signum}")
        self.signum = signum


def interruption_message(signum: int) -> str:
    """The one line printed when a run is interrupted."""
    return (
        f"Run interrupted by {SIGNAL_NAMES.get(signum, f'signal {signum}')}: the warehouse is consistent "
        "and its session closed; run the same command again to resume."
    )


def _close_warehouse_quietly() -> None:
    """Close the session and release the run lock, without the INFO lines of a normal close."""
    from customer_segmentation import warehouse

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # "Closing session", "Warehouse session closed", ...
    try:
        warehouse.close()
    except Exception:  # noqa: BLE001 - the process is ending; the server cleans up what remains
        pass
    finally:
        logging.disable(previous)


def _to_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


@contextmanager
def interruptible_run(echo: Callable[[str], Any] | None = None) -> Iterator[None]:
    """Run the block so that SIGINT and SIGTERM end it cleanly: one line, exit code 130 / 143.

    Outside the main thread (signals cannot be handled there) the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    write = echo or _to_stderr
    received: list[int] = []

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        current = signal.getsignal(signal.SIGINT)
        if callable(current) and current not in (on_sigint, signal.default_int_handler):
            # the Snowflake connector's handler while a statement runs: it cancels the statement
            # on the server, then raises KeyboardInterrupt
            current(signal.SIGINT, frame)
        raise RunInterrupted(signum)

    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, on_sigint),
        signal.SIGTERM: signal.signal(signal.SIGTERM, on_sigterm),
    }
    try:
        yield
    except KeyboardInterrupt as exc:
        signum = (
            exc.signum if isinstance(exc, RunInterrupted) else (received[0] if received else signal.SIGINT)
        )
        code = EXIT_CODES.get(signum, 128 + int(signum))

        def leave_now(_signum: int, _frame: FrameType | None) -> None:
            os._exit(code)

        signal.signal(signal.SIGINT, leave_now)
        signal.signal(signal.SIGTERM, leave_now)
        _close_warehouse_quietly()
        write(interruption_message(signum))
        raise SystemExit(code) from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
