"""Connector retries are bounded without a limit on a statement's run time (warehouse/retries.py).

The connector cancels every statement that runs longer than ``network_timeout`` when it is set
(its "timebomb"): with 20 s on the embedded server, a 10M-event ingestion batch failed under
`kedro run` with "InterruptException". These tests pin that no session sets it, that the retries
end by the backoff policy, and, against a real server, that a statement longer than the retry
budget completes while a dead server fails within seconds.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from customer_segmentation import warehouse
from customer_segmentation.warehouse import embedded, retries
from customer_segmentation.warehouse.config import WarehouseSettings
from customer_segmentation.warehouse.session import snowflake_connection_parameters
from tests.conftest import wait_gone


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_first_draw_is_the_connectors_first_sleep_and_checks_nothing() -> None:
    calls = []
    policy = retries.retry_policy(5, alive=lambda: calls.append(1) or False)
    assert next(policy()) == retries.BASE_SECONDS
    assert calls == []  # the request has not failed yet: a dead server is found on the first retry


def test_a_gone_server_ends_the_retries_at_the_first_one_with_its_message() -> None:
    policy = retries.retry_policy(60, alive=lambda: False, gone_message="the server (pid 7) has stopped")
    draws = policy()
    next(draws)
    with pytest.raises(retries.RetriesExhaustedError, match=r"not retried: the server \(pid 7\) has stopped"):
        next(draws)


def test_retries_back_off_with_jitter_until_the_budget_is_spent() -> None:
    clock = FakeClock()
    draws = retries.retry_policy(30, alive=lambda: True, clock=clock)()
    assert next(draws) == 1
    sleeps = []
    while clock.now - 100.0 <= 30:
        sleep = next(draws)
        assert 0 <= sleep <= retries.CAP_SECONDS
        sleeps.append(sleep)
        clock.now += 4
    with pytest.raises(retries.RetriesExhaustedError, match=r"after 30 s of retries"):
        next(draws)
    assert len(sleeps) == 8  # a retry at 0, 4, ..., 28 s after the first; none at 32 s


def test_every_request_gets_a_fresh_budget() -> None:
    clock = FakeClock()
    policy = retries.retry_policy(10, clock=clock)
    first = policy()
    next(first), next(first)
    clock.now += 11
    with pytest.raises(retries.RetriesExhaustedError):
        next(first)
    second = policy()  # the connector creates one generator per request
    next(second), next(second)


def test_a_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        retries.retry_policy(0)


def test_embedded_server_parameters_set_no_statement_limit() -> None:
    handle = embedded.ServerHandle(Path("/tmp/wh"), "127.0.0.1", 1, os.getpid(), {"secret": "s"})
    params = embedded.server_connection_parameters(handle, "DB", "PUBLIC")
    assert "network_timeout" not in params  # the connector's statement timer stays off
    assert params["socket_timeout"] == embedded.STATEMENT_WAIT_SECONDS == 2 * 24 * 3600
    assert params["login_timeout"] == embedded.SERVER_RETRY_SECONDS
    draws = params["backoff_policy"]()
    next(draws)
    with pytest.raises(retries.RetriesExhaustedError, match=r"server \(pid \d+\) has stopped"):
        next(draws)  # no server.json in /tmp/wh: not the folder's current server


def test_snowflake_parameters_set_no_statement_limit_unless_configured() -> None:
    settings = WarehouseSettings(database="DB", schema="S", connection={"account": "a", "user": "u"})
    params = snowflake_connection_parameters(settings)
    assert "network_timeout" not in params and callable(params["backoff_policy"])
    assert params["login_timeout"] == 60 and params["application"] == "customer_segmentation_kedro"
    own = WarehouseSettings(database="DB", schema="S", connection={"account": "a", "network_timeout": 30})
    assert snowflake_connection_parameters(own)["network_timeout"] == 30  # the user's choice is kept


#: A statement of a few seconds (3.1 s on a 2-core machine here): 6M MD5s, counted distinct.
SLOW_SQL = "SELECT COUNT(DISTINCT MD5(TO_VARCHAR(SEQ8()))) AS N FROM TABLE(GENERATOR(ROWCOUNT => 6000000))"


def test_a_statement_longer_than_the_retry_budget_completes(folder: Path, monkeypatch: Any) -> None:
    # with the old parameters (network_timeout = the retry budget) the connector cancelled it after 1 s
    # ("InterruptException"); the connector takes whole seconds
    monkeypatch.setattr(embedded, "SERVER_RETRY_SECONDS", 1)
    warehouse.configure(WarehouseSettings.from_credentials({}, folder, idle_timeout_seconds=60))
    session = warehouse.get_session()
    started = time.monotonic()
    rows = session.sql(SLOW_SQL).collect()
    elapsed = time.monotonic() - started
    assert rows[0][0] == 6_000_000
    if elapsed < 1.5:  # pragma: no cover - a machine this fast cannot show the difference
        pytest.skip(f"the statement took {elapsed:.2f} s, too little above the 1 s budget to show anything")


def test_a_dead_server_fails_the_next_statement_within_seconds(folder: Path) -> None:
    warehouse.configure(WarehouseSettings.from_credentials({}, folder, idle_timeout_seconds=60))
    session = warehouse.get_session()
    assert session.sql("SELECT 1 AS ONE").collect()[0][0] == 1
    pid = embedded.read_record(folder)["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid, timeout=10)
    started = time.monotonic()
    with pytest.raises(Exception, match=rf"server \(pid {pid}\) has stopped") as caught:
        session.sql("SELECT 2 AS TWO").collect()
    assert time.monotonic() - started < 10, caught.value  # one ~1 s back-off, not the 20 s budget
