"""Log records as one plain line each when no one watches a terminal (cloud jobs, CI, files).

conf/logging.yml gives the root logger Kedro's rich handler, which lays out every record as a
table for a terminal. Off a terminal (a container's log, the scheduled workflow, ``kedro run >
file``) rich still lays it out, at 80 columns: a record wraps over several lines (the benchmark's
`daily` log: 313 records on 839 lines), so a log collector sees fragments, and each record costs
~1.2 ms of layout (~0.35 s of a 10M-event `daily` run). There, the rich handler is replaced by a
stream handler on the same output with the project's ``simple`` format (conf/logging.yml), one
line per record. A terminal or a notebook keeps rich; ``FORCE_COLOR`` or ``TTY_COMPATIBLE`` (rich's
own switches) make rich treat the output as a terminal, and so keep it too.

(Kedro 1.7 accepts only handler classes of ``logging`` and ``kedro.logging`` in logging.yml
unless ``KEDRO_LOGGING_MODULE_ALLOWLIST`` names more, so the choice is made here, at settings
import, rather than by a handler class named in the configuration.)
"""

from __future__ import annotations

import logging
from typing import Any

#: conf/logging.yml's ``simple`` formatter.
PLAIN_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"


class _ConsoleStreamHandler(logging.StreamHandler):
    """A stream handler that writes where a rich console writes: its own file if it was given one,
    else the ``sys.stdout`` of the moment (as rich does), so a swapped stdout (a test's capture, a
    notebook's) is followed rather than a closed stream kept."""

    def __init__(self, console: Any) -> None:
        super().__init__(console.file)
        self._console = console

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = self._console.file  # under the handler's lock (Handler.handle)
        super().emit(record)


def plain_logs_off_terminal(logger: logging.Logger | None = None) -> int:
    """Replace each rich handler of ``logger`` (default: root) whose console is not a terminal.

    The new handler writes where the console writes, at the same level, with the same filters. Returns
    the number of handlers replaced (0 on a terminal, in a notebook, or without rich handlers).
    """
    try:
        from rich.logging import RichHandler
    except ImportError:  # pragma: no cover - rich comes with Kedro
        return 0
    target = logger or logging.getLogger()
    replaced = 0
    for handler in list(target.handlers):
        if not isinstance(handler, RichHandler):
            continue
        console = handler.console
        if console.is_terminal or console.is_jupyter:
            continue
        plain = _ConsoleStreamHandler(console)
        plain.setLevel(handler.level)
        plain.setFormatter(logging.Formatter(PLAIN_FORMAT))
        for log_filter in handler.filters:
            plain.addFilter(log_filter)
        target.removeHandler(handler)
        target.addHandler(plain)
        replaced += 1
    return replaced
