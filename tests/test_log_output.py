"""Plain one-line log records off a terminal; Kedro's rich handler kept on one (log_output.py)."""

from __future__ import annotations

import io
import logging
import re

import pytest
from kedro.logging import RichHandler
from rich.console import Console

from customer_segmentation.log_output import PLAIN_FORMAT, plain_logs_off_terminal

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - kedro\.io\.data_catalog - INFO - (.*)$")


@pytest.fixture
def logger() -> logging.Logger:
    log = logging.getLogger("test_log_output")
    log.handlers.clear()
    log.propagate = False
    log.setLevel(logging.INFO)
    yield log
    log.handlers.clear()


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("kedro.io.data_catalog", logging.INFO, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


def test_off_a_terminal_each_record_is_one_plain_line(logger: logging.Logger) -> None:
    out = io.StringIO()
    rich = RichHandler(console=Console(file=out, width=80), level=logging.INFO)
    rich.addFilter(lambda record: "secret" not in record.getMessage())
    other = logging.StreamHandler(io.StringIO())
    logger.addHandler(rich)
    logger.addHandler(other)

    before = [h for h in logger.handlers if h not in (rich, other)]  # pytest's own capture, if any
    assert plain_logs_off_terminal(logger) == 1
    assert rich not in logger.handlers and other in logger.handlers
    (plain,) = [h for h in logger.handlers if h is not other and h not in before]
    assert plain.level == logging.INFO and plain.stream is out
    assert plain.formatter is not None and plain.formatter._fmt == PLAIN_FORMAT

    long = "Loading data from %s (%s)..." + " with a message far longer than eighty columns" * 3
    # Kedro marks some arguments up for rich (extra rich_format): plain text here
    plain.handle(_record(long, "customer_features", "SnowparkTableDataset", rich_format=["dark_orange"]))
    plain.handle(_record("the secret is out"))  # the rich handler's filter still applies
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, lines
    message = LINE.match(lines[0])
    assert message, lines[0]
    assert message.group(1).startswith("Loading data from customer_features (SnowparkTableDataset)...")
    assert "[dark_orange]" not in lines[0]


def test_rich_wraps_the_same_record_over_several_lines(logger: logging.Logger) -> None:
    """What the plain handler replaces: rich's layout at 80 columns off a terminal."""
    out = io.StringIO()
    rich = RichHandler(console=Console(file=out, width=80))
    rich.handle(_record("Loading data from %s" + " and more words" * 10, "customer_features"))
    assert len(out.getvalue().splitlines()) > 1


@pytest.mark.parametrize(
    "console",
    [
        lambda: Console(file=io.StringIO(), force_terminal=True),  # a terminal, or FORCE_COLOR
        lambda: Console(file=io.StringIO(), force_jupyter=True),  # a notebook
    ],
)
def test_a_terminal_or_a_notebook_keeps_rich(logger: logging.Logger, console: object) -> None:
    rich = RichHandler(console=console())
    logger.addHandler(rich)
    assert plain_logs_off_terminal(logger) == 0
    assert rich in logger.handlers
    assert not any(type(h) is logging.StreamHandler for h in logger.handlers)


def test_nothing_to_replace(logger: logging.Logger) -> None:
    assert plain_logs_off_terminal(logger) == 0
    null = logging.NullHandler()
    logger.addHandler(null)
    assert plain_logs_off_terminal(logger) == 0 and null in logger.handlers


def test_the_plain_handler_follows_a_swapped_stdout(
    logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As rich's console does: a handler made while one stdout was current writes to the next one."""
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdout", first)
    logger.addHandler(RichHandler(console=Console(width=80)))  # no file: sys.stdout at each write
    assert plain_logs_off_terminal(logger) == 1
    logger.info("to the first")
    monkeypatch.setattr("sys.stdout", second)
    first.close()  # a closed capture must not be written to
    logger.info("to the second")
    assert "to the second" in second.getvalue() and len(second.getvalue().splitlines()) == 1


def test_collect_records_keeps_collecting_when_a_run_reconfigures_logging() -> None:
    """tests/conftest.py's collect_records: a dictConfig inside the block (what Kedro's
    set_project_logging does on some runs) empties the handlers of loggers below a configured one;
    the records are still collected. In a fresh interpreter: dictConfig closes every handler."""
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    script = textwrap.dedent(
        """
        import logging, logging.config, sys
        sys.path.insert(0, sys.argv[1])
        from tests.conftest import collect_records
        config = {"version": 1, "disable_existing_loggers": False,
                  "loggers": {"customer_segmentation": {"level": "INFO"}}}
        logging.config.dictConfig(config)
        log = logging.getLogger("customer_segmentation.demo.purge")
        with collect_records("customer_segmentation.demo.purge") as seen:
            logging.config.dictConfig(config)  # the run's reconfiguration
            log.info("Removed the demo")
            log.debug("not at INFO")
        log.info("after the block")
        print([r.getMessage() for r in seen])
        """
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", script, str(root)], capture_output=True, text=True, timeout=120, cwd=root
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "['Removed the demo']"
