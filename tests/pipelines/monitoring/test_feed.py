"""The activation feed: differences from what was last published, each sent exactly once.

Snapshots are written to a history table as the monitoring pipeline writes them (replacing a
same-date snapshot), then published through the pipeline's node and the feed dataset. The feed
is checked against an independent replay of the documented rule in plain Python (state per
customer, one row per label change, CHANGE_ID = MD5 of its parts).
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from customer_segmentation.datasets.monitoring import (
    ActivationFeedDataset,
    SnapshotWrite,
    WarehouseTableDataset,
)
from customer_segmentation.pipelines.monitoring.nodes import segment_changes

FEED_COLUMNS = (
    "CHANGE_ID, CUSTOMER_ID, CHANGE_SEQ, FROM_SEGMENT, TO_SEGMENT, SNAPSHOT_DATE, PREVIOUS_SNAPSHOT_DATE"
)


class Feed:
    """A history table, the feed dataset, and the independent replay of what the feed must hold."""

    def __init__(self, session: Any) -> None:
        self.session = session
        tag = uuid.uuid4().hex[:8].upper()  # one warehouse for the module: tables of their own
        self.h, self.f, self.p = f"H_{tag}", f"FEED_{tag}", f"PUBLISHED_{tag}"
        self.history = WarehouseTableDataset(
            table_name=self.h, save_args={"mode": "replace_snapshot", "snapshot_column": "SNAPSHOT_DATE"}
        )
        self.feed = ActivationFeedDataset(table_name=self.f, state_table=self.p, history_table=self.h)
        self.state: dict[str, tuple[str, int, date]] = {}  # customer -> (label, seq, published snapshot)
        self.expected: list[tuple] = []
        self.runs = 0

    def snapshot(self, day: date, labels: dict[str, str]) -> None:
        """Write (or replace) the history snapshot of ``day``, as snapshot_segment_history does."""
        self.history.save(
            SnapshotWrite(
                pd.DataFrame(
                    {
                        "SNAPSHOT_DATE": [day] * len(labels),
                        "CUSTOMER_ID": list(labels),
                        "RUN_ID": ["r"] * len(labels),
                        "MODEL_VERSION": ["v1"] * len(labels),
                        "SEGMENT_ID": [ord(label[0]) - 64 for label in labels.values()],
                        "SEGMENT_LABEL": list(labels.values()),
                        "RFM_SEGMENT": ["Champions"] * len(labels),
                    }
                )
            )
        )

    def publish(self, day: date, labels: dict[str, str], replay: bool = True) -> None:
        """One monitoring run: the snapshot, then the feed node and dataset."""
        self.runs += 1
        self.snapshot(day, labels)
        info = {"snapshot_date": day.isoformat(), "run_id": f"r{self.runs}", "keep_after": None}
        metadata = {"run_id": f"r{self.runs}", "started_at": f"{day.isoformat()}T07:00:{self.runs % 60:02d}"}
        self.feed.save(segment_changes(self.session.table(self.h), info, metadata))
        if replay:
            self.replay(day, labels)

    def replay(self, day: date, labels: dict[str, str]) -> None:
        """The documented rule, independently: publish what differs from the last published label."""
        if self.state and max(s[2] for s in self.state.values()) > day:
            return  # an older snapshot publishes nothing
        for customer, label in labels.items():
            if customer not in self.state:
                self.state[customer] = (label, 0, day)
                continue
            before, seq, since = self.state[customer]
            if before == label:
                continue
            seq += 1
            change_id = hashlib.md5(
                f"{customer}|{seq}|{before}|{label}|{day.isoformat()}".encode()
            ).hexdigest()
            self.expected.append((change_id, customer, seq, before, label, day, since))
            self.state[customer] = (label, seq, day)

    def rows(self) -> list[tuple]:
        got = self.session.sql(f"SELECT {FEED_COLUMNS} FROM {self.f}").collect()
        return sorted((r[0], r[1], int(r[2]), r[3], r[4], r[5], r[6]) for r in got)

    def published(self) -> dict[str, str]:
        return {
            r[0]: r[1] for r in self.session.sql(f"SELECT CUSTOMER_ID, SEGMENT_LABEL FROM {self.p}").collect()
        }


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One embedded warehouse for the module (each test has its own tables)."""
    from customer_segmentation import warehouse
    from customer_segmentation.warehouse import embedded
    from customer_segmentation.warehouse.config import WarehouseSettings

    folder = tmp_path_factory.mktemp("feed") / "warehouse"
    warehouse.configure(WarehouseSettings.from_credentials({}, folder))
    try:
        yield warehouse.get_session()
    finally:
        warehouse.close()
        embedded.stop_server(folder, wait=False)


@pytest.fixture
def feed(session: Any) -> Feed:
    return Feed(session)


D1, D2, D3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)


def test_first_publication_sends_nothing_and_records_everyone(feed: Feed) -> None:
    feed.publish(D1, {"A": "X", "B": "Y"})
    assert feed.rows() == [] and feed.published() == {"A": "X", "B": "Y"}


def test_same_day_rerun_and_back_dated_daily_send_each_change_once(feed: Feed) -> None:
    feed.publish(D1, {"A": "X", "B": "Y", "C": "Z"})
    feed.publish(D2, {"A": "Y", "B": "Y", "C": "Z"})  # A moved
    assert [(r[1], r[3], r[4]) for r in feed.rows()] == [("A", "X", "Y")]
    feed.publish(D2, {"A": "Y", "B": "Y", "C": "Z"})  # the same day again (a rerun, a retrain)
    # a daily with back-dated events only: same reference date, so the same snapshot key; it moved C
    feed.publish(D2, {"A": "Y", "B": "Y", "C": "X", "D": "Z"})
    assert sorted((r[1], r[3], r[4], r[5], r[6]) for r in feed.rows()) == [
        ("A", "X", "Y", D2, D1),
        ("C", "Z", "X", D2, D1),  # C only: A's change, already sent, is not sent again
    ]
    assert feed.rows() == sorted(feed.expected)
    assert feed.published() == {"A": "Y", "B": "Y", "C": "X", "D": "Z"}  # D entered, without a row


def test_flip_and_flip_back_across_two_days_are_two_rows_with_their_own_ids(feed: Feed) -> None:
    feed.publish(D1, {"A": "Y"})
    feed.publish(D2, {"A": "X"})
    feed.publish(D3, {"A": "Y"})
    rows = feed.rows()
    assert sorted((r[2], r[3], r[4]) for r in rows) == [(1, "Y", "X"), (2, "X", "Y")]
    assert len({r[0] for r in rows}) == 2 and rows == sorted(feed.expected)
    assert feed.published() == {"A": "Y"}  # a CRM that applied both rows ends where the customer is
    # and a move and a move back on one day (a rerun that undoes a retrain) are two rows too
    feed.publish(D3, {"A": "X"})
    feed.publish(D3, {"A": "Y"})
    assert [r[2] for r in sorted(feed.rows(), key=lambda r: r[2])] == [1, 2, 3, 4]


def test_an_older_snapshot_publishes_nothing(feed: Feed) -> None:
    feed.publish(D2, {"A": "X"})
    feed.publish(D1, {"A": "Y"})  # e.g. rfm_features.reference_date set to an earlier day
    assert feed.rows() == [] and feed.published() == {"A": "X"}


def test_the_feed_equals_an_independent_replay_of_the_rule(feed: Feed) -> None:
    rng = random.Random(7)
    labels = {f"C{i:02d}": rng.choice("XYZ") for i in range(25)}
    day = D1
    for step in range(12):
        if step and rng.random() < 0.6:
            day += timedelta(days=rng.choice([1, 1, 2]))  # else: the same snapshot date again
        for customer in rng.sample(sorted(labels), 6):
            labels[customer] = rng.choice("XYZ")  # moves, and moves back
        if rng.random() < 0.3:
            labels[f"N{step:02d}"] = rng.choice("XYZ")  # a newcomer
        feed.publish(day, dict(labels))
    assert feed.rows() == sorted(feed.expected) and len(feed.expected) > 20
    assert feed.published() == labels
    ids = [r[0] for r in feed.rows()]
    assert len(ids) == len(set(ids))


def test_retention_drops_old_feed_rows_only(feed: Feed, session: Any) -> None:
    feed.publish(D1, {"A": "X", "B": "X"})
    feed.publish(D2, {"A": "Y", "B": "X"})
    feed.publish(D3, {"A": "Y", "B": "Y"})
    feed.snapshot(D3, {"A": "Y", "B": "Y"})
    info = {"snapshot_date": D3.isoformat(), "run_id": "r9", "keep_after": D3.isoformat()}
    feed.feed.save(segment_changes(session.table(feed.h), info, {"started_at": "2026-03-03T08:00:00"}))
    assert [(r[1], r[5]) for r in feed.rows()] == [("B", D3)]
    assert feed.published() == {"A": "Y", "B": "Y"}


def test_a_former_feed_is_kept_and_what_it_sent_counts_as_published(feed: Feed, session: Any) -> None:
    feed.snapshot(D1, {"A": "X", "B": "X", "C": "X"})
    feed.snapshot(D2, {"A": "Y", "B": "X", "C": "X"})
    # the former feed: the changes of the latest snapshot, overwritten by every run
    WarehouseTableDataset(table_name=feed.f, save_args={"mode": "overwrite"}).save(
        pd.DataFrame(
            {
                "CUSTOMER_ID": ["A"],
                "FROM_SEGMENT_ID": [24],
                "FROM_SEGMENT": ["X"],
                "TO_SEGMENT_ID": [25],
                "TO_SEGMENT": ["Y"],
                "FROM_RFM_SEGMENT": ["Champions"],
                "TO_RFM_SEGMENT": ["Champions"],
                "SNAPSHOT_DATE": [D2],
                "PREVIOUS_SNAPSHOT_DATE": [D1],
                "MODEL_VERSION": ["v1"],
            }
        )
    )
    # the upgrade's first run reruns D2, where B moved too: only B is sent, A was sent already
    feed.publish(D2, {"A": "Y", "B": "Z", "C": "X"}, replay=False)
    assert [(r[1], r[3], r[4]) for r in feed.rows()] == [("B", "X", "Z")]
    legacy = session.sql(f"SELECT CUSTOMER_ID, TO_SEGMENT FROM {feed.f}_LEGACY").collect()
    assert [tuple(r) for r in legacy] == [("A", "Y")]
    assert feed.published() == {"A": "Y", "B": "Z", "C": "X"}


def test_the_published_state_records_when_and_by_which_run(feed: Feed, session: Any) -> None:
    feed.publish(D1, {"A": "X"})
    feed.publish(D2, {"A": "Y"})
    row = session.sql(
        f"SELECT SEGMENT_LABEL, SNAPSHOT_DATE, LAST_CHANGE_SEQ, LAST_CHANGE_ID, RUN_ID, PUBLISHED_AT FROM {feed.p}"
    ).collect()[0]
    change = feed.rows()[0]
    assert tuple(row)[:5] == ("Y", D2, 1, change[0], "r2")
    assert row[5] == datetime(2026, 3, 2, 7, 0, 2)


def test_todays_segments_are_read_in_place_and_other_frames_through_a_scratch_table(
    feed: Feed, session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain query over the history goes into the difference as a subquery (no copy of today's rows);
    a frame that is not one plain query (a temporary table to create first, a bound value) is copied to
    a scratch table first. The same feed either way."""
    import customer_segmentation.datasets.monitoring as monitoring

    feed.publish(D1, {"C1": "A", "C2": "B"})
    with session.query_history() as sent:
        feed.publish(D2, {"C1": "B", "C2": "B", "C3": "A"})
    texts = [q.sql_text.upper() for q in sent.queries]
    assert not any("__TODAY_" in t for t in texts), texts
    assert any("__DIFF_" in t for t in texts)
    assert monitoring.single_query_sql(session.sql("SELECT 1 AS A WHERE 1 = ?", params=[1])) is None
    # D3 as if today's frame were not one plain query: staged, then dropped
    monkeypatch.setattr(monitoring, "single_query_sql", lambda frame: None)
    labels = {"C1": "A", "C2": "B", "C3": "A", "C4": "C"}
    with session.query_history() as sent:
        feed.publish(D3, labels)
    texts = [q.sql_text.upper() for q in sent.queries]
    assert any("__TODAY_" in t and t.lstrip().startswith("CREATE") for t in texts), texts
    assert any("__TODAY_" in t and t.lstrip().startswith("DROP") for t in texts), texts
    assert feed.rows() == sorted(feed.expected)
    assert feed.published() == labels
