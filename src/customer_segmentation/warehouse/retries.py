"""How the connector retries a failed request, without a limit on how long a statement runs.

The Snowflake connector uses its ``network_timeout`` parameter for two things: the time it keeps
retrying a request that failed (connection refused or reset), and, when ``cursor.execute`` gets
no ``timeout`` of its own, a timer that cancels every statement still running after that many
seconds (``cursor.py``: ``real_timeout = timeout or network_timeout``; seen in the connector's
debug log as "started timebomb in 20s"). Snowpark passes no such ``timeout``, so a
``network_timeout`` of 20 s cancelled every statement of the embedded warehouse that ran longer
than 20 s (a 10M-event ingestion batch runs ~25 s: ``kedro run`` failed with "InterruptException"),
and Snowflake's 600 s cancelled any statement longer than ten minutes (the same trap:
https://github.com/PostHog/posthog/pull/70271).

So no connection sets ``network_timeout``: statements run until they end, as long as Snowflake's
own ``STATEMENT_TIMEOUT_IN_SECONDS`` allows (two days by default,
https://docs.snowflake.com/en/sql-reference/parameters#statement-timeout-in-seconds) or until
Ctrl-C cancels them. The retries are bounded instead by the connection's ``backoff_policy``
(a connector parameter: a generator function of the seconds to sleep before each retry): this
one sleeps like the connector's default (exponential, full jitter) and ends the retries with
:class:`RetriesExhaustedError` once ``budget_seconds`` have passed since the first retry, or at
once when ``alive()`` says the server is gone (the embedded server's process ended).

The connector draws one value when a request starts (before any retry: never checked) and one
after each failed attempt; it creates a new generator for every request.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator

from snowflake.connector.errors import OperationalError

#: The connector's default backoff: first sleep, factor and cap (snowflake.connector.backoff_policies).
BASE_SECONDS = 1
FACTOR = 2
CAP_SECONDS = 16


class RetriesExhaustedError(OperationalError):
    """A request kept failing (or its server is gone): the connector stops retrying it."""


def retry_policy(
    budget_seconds: float,
    alive: Callable[[], bool] | None = None,
    gone_message: str = "the server is gone",
    clock: Callable[[], float] = time.monotonic,
) -> Callable[[], Iterator[float]]:
    """A ``backoff_policy`` for the connector: retries for at most ``budget_seconds``, none once ``alive()`` is False."""
    if budget_seconds <= 0:
        raise ValueError(f"budget_seconds must be positive, got {budget_seconds!r}")

    def generator() -> Iterator[float]:
        sleep = BASE_SECONDS
        yield sleep  # drawn when the request starts: no retry yet
        first_retry = clock()
        while True:
            # drawn after a failed attempt, before the next one
            if alive is not None and not alive():
                raise RetriesExhaustedError(msg=f"Request failed and not retried: {gone_message}.")
            if clock() - first_retry > budget_seconds:
                raise RetriesExhaustedError(
                    msg=f"Request still failing after {budget_seconds:g} s of retries: the warehouse "
                    "could not be reached (network, or the service down). Run again when it is back."
                )
            sleep = min(CAP_SECONDS, sleep * FACTOR)
            yield random.randint(0, sleep)

    return generator
