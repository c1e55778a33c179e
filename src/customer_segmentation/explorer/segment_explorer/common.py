"""What every page shares: the session, reads cached on the data's version, settings, messages.

The session: Streamlit in Snowflake's active one (``get_active_session()``); without one (a local
``kedro explorer``), the project's connection through ``local_session`` (imported only then).

Caching: every read is cached under the warehouse's data version (``queries.data_version``:
row counts, run ids, snapshots; LAST_ALTERED on Snowflake), itself re-checked every
``VERSION_TTL_SECONDS``. A ``kedro run`` that writes new rows changes the version, so the next
page view reads the new data without restarting the app; an unchanged warehouse is not queried
again.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from . import queries

logger = logging.getLogger("segment_explorer")

#: How often the data version is re-checked (one small query): a run's results show within this.
VERSION_TTL_SECONDS = 5
SEGMENT_KEY = "explorer.segment_id"
CUSTOMER_KEY = "explorer.customer_id"
#: Pages, by file (relative to streamlit_app.py): st.switch_page targets.
SEGMENT_PAGE = "app_pages/segment.py"
CUSTOMER_PAGE = "app_pages/customer.py"
EXPORT_HINT = (
    "{count:,} rows match, more than explorer.max_download_rows ({limit:,}) allows in the browser: "
    "export them with `kedro run --pipelines export_segments` (one CSV per segment of the latest "
    "snapshot, in data/09_export/segments/), or narrow the filters."
)


@dataclass(frozen=True)
class Settings:
    """The app's settings: ``kedro explorer`` passes the project's ``explorer`` parameters as
    SEGMENT_EXPLORER_* variables; in Streamlit in Snowflake the defaults apply."""

    max_download_rows: int = 100_000
    table_rows: int = 500
    location: str | None = None  # DATABASE.SCHEMA of the tables; None = the session's current schema
    pinned_model: str | None = None  # prediction.model_version as configured, when known
    psi_watch: float = 0.1
    psi_retrain: float = 0.25


def _env_number(name: str, default: float, kind: type = int) -> Any:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        logger.warning("Ignoring %s=%r (not a number)", name, text)
        return default
    return value if value > 0 else default


def settings() -> Settings:
    """The settings from the environment (read at every page view: cheap, and tests can change them)."""
    return Settings(
        max_download_rows=_env_number("SEGMENT_EXPLORER_MAX_DOWNLOAD_ROWS", Settings.max_download_rows),
        table_rows=_env_number("SEGMENT_EXPLORER_TABLE_ROWS", Settings.table_rows),
        location=os.environ.get("SEGMENT_EXPLORER_SCHEMA", "").strip() or None,
        pinned_model=os.environ.get("SEGMENT_EXPLORER_PINNED_MODEL", "").strip() or None,
        psi_watch=_env_number("SEGMENT_EXPLORER_PSI_WATCH", Settings.psi_watch, float),
        psi_retrain=_env_number("SEGMENT_EXPLORER_PSI_RETRAIN", Settings.psi_retrain, float),
    )


# --- the session -------------------------------------------------------------------------------------

_LOCAL: dict[str, bool] = {"used": False}


def session() -> Any:
    """Streamlit in Snowflake's session, or (no active session) the project's local one."""
    if not _LOCAL["used"]:
        try:
            from snowflake.snowpark.context import get_active_session

            return get_active_session()
        except Exception:  # noqa: BLE001 - Snowpark raises when no session is active: not in Snowflake
            pass
    from . import local_session  # the one import of the project, and only here

    _LOCAL["used"] = True  # from now on the project's module keeps its session current (reconnects)
    return local_session.get_session()


# --- cached reads ------------------------------------------------------------------------------------


@st.cache_data(ttl=VERSION_TTL_SECONDS, max_entries=16, show_spinner=False)
def _version(location: str, _session: Any) -> str:
    return queries.data_version(_session, location or None)


@st.cache_data(ttl=3600, max_entries=16, show_spinner=False)
def _catalog(version: str, location: str, _session: Any) -> queries.Catalog:
    return queries.read_catalog(_session, location or None)


@st.cache_data(ttl=3600, max_entries=1024, show_spinner=False)
def _read(name: str, version: str, key: str, _session: Any, _catalog: Any, _args: Any, _kwargs: Any) -> Any:
    return getattr(queries, name)(_session, _catalog, *_args, **_kwargs)


@dataclass(frozen=True)
class Data:
    """One page view's access to the warehouse: session, catalog and the data version reads are cached on."""

    session: Any
    catalog: queries.Catalog
    version: str
    settings: Settings

    def read(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``queries.<name>(session, catalog, *args, **kwargs)``, cached until the data changes."""
        key = repr((args, sorted(kwargs.items())))  # args are plain values, dates and frozen dataclasses
        return _read(
            name, self.version, key, _session=self.session, _catalog=self.catalog, _args=args, _kwargs=kwargs
        )


def connect() -> Data:
    """The session, the data version and the catalog of this page view."""
    config = settings()
    current = session()
    location = config.location or ""
    version = _version(location, _session=current)
    return Data(current, _catalog(version, location, _session=current), version, config)


def reload_data() -> None:
    """Forget every cached read (the sidebar's button; new runs are picked up without it)."""
    st.cache_data.clear()


# --- page frame ---------------------------------------------------------------------------------------


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 600 else text[:600] + " ..."


def show_error(exc: BaseException) -> None:
    """An unexpected failure as one readable message (the traceback goes to the server log only)."""
    logger.exception("Segment explorer page failed")
    st.error(
        f"The page could not be built: {_short(exc)}\n\n"
        "Check that the warehouse is reachable (`kedro warehouse status` for the embedded one) and "
        "that `kedro run` has completed; the server log has the details."
    )


#: The sidebar's last line once a page is complete (the benchmark's browser waits for it).
BUILT = "{title} built in {seconds:.2f} s"


def page(title: str, render: Callable[[Data], None]) -> None:
    """Render a page: title, sidebar status, content; empty states and failures explained in the page."""
    started = time.perf_counter()
    st.title(title)
    try:
        data = connect()
    except queries.ExplorerError as exc:
        st.warning(str(exc))
        return
    except Exception as exc:  # noqa: BLE001 - connection failures: explained, never a traceback
        show_error(exc)
        return
    sidebar(data)
    try:
        render(data)
    except queries.EmptyState as exc:
        st.info(str(exc))
    except queries.ExplorerError as exc:
        st.warning(str(exc))
    except Exception as exc:  # noqa: BLE001 - see show_error
        show_error(exc)
    st.sidebar.caption(BUILT.format(title=title, seconds=time.perf_counter() - started))


def sidebar(data: Data) -> None:
    """Where the data comes from and how fresh it is, and a reload button."""
    with st.sidebar:
        st.caption(f"Warehouse: {data.catalog.location}")
        try:
            scoring = data.read("latest_scoring")
            dates = data.read("snapshots")
        except Exception as exc:  # noqa: BLE001 - the status line must never take the page down
            logger.warning("Sidebar status unavailable: %s", exc)
            scoring, dates = {}, []
        if dates:
            st.caption(f"Latest snapshot: {dates[0]} ({len(dates)} in the history)")
        if scoring:
            st.caption(f"Latest run: {scoring['run_id']}")
        st.caption(f"Checked at {time.strftime('%H:%M:%S')}; refreshed after every run.")
        if st.button("Reload data", key="explorer.reload"):
            reload_data()
            st.rerun()


# --- formatting -----------------------------------------------------------------------------------------


def missing(value: Any) -> bool:
    try:
        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def num(value: Any, digits: int = 0) -> str:
    """A number with thousands separators ("-" when missing)."""
    if missing(value):
        return "-"
    value = float(value)
    if math.isinf(value):
        return "-"
    return f"{value:,.{digits}f}"


def pct(value: Any, digits: int = 0) -> str:
    return "-" if missing(value) else f"{float(value):.{digits}%}"


#: Characters that make markdown (or Streamlit's :color[...] and :emoji: extensions) out of plain text.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~$:])")
_LIST_MARKER = re.compile(r"^(\d+)([.)])|^([-+])")


def escape(text: Any, limit: int = 120) -> str:
    """User or data text shown inside markdown as plain characters, on one line, cut to ``limit``."""
    shown = " ".join(str(text).split())
    shown = shown if len(shown) <= limit else shown[:limit] + "..."
    shown = _MARKDOWN_SPECIAL.sub(r"\\\1", shown)
    return _LIST_MARKER.sub(lambda m: f"{m[1]}\\{m[2]}" if m[1] else f"\\{m[3]}", shown)


def code(text: Any, limit: int = 120) -> str:
    """User text (an id) shown verbatim in markdown: an inline code span, on one line, cut to ``limit``.

    Inside a code span nothing is markdown (no links, no emphasis, no typographic dashes); the
    delimiter is one backtick longer than the longest run of backticks in the text (CommonMark).
    """
    shown = " ".join(str(text).split())
    shown = shown if len(shown) <= limit else shown[:limit] + "..."
    fence = "`" * (max((len(run) for run in re.findall(r"`+", shown)), default=0) + 1)
    return (
        f"{fence} {shown} {fence}"
        if shown.startswith("`") or shown.endswith("`")
        else f"{fence}{shown}{fence}"
    )


def words(feature: str) -> str:
    """A feature name as words (RECENCY_DAYS -> recency days)."""
    return str(feature).lower().replace("_", " ")


# --- downloads ------------------------------------------------------------------------------------------

#: Decimals in CSV downloads: money with two (as the export_segments files), probabilities with four.
CSV_DECIMALS = {
    "MONETARY": 2,
    "AVG_ORDER_VALUE": 2,
    "CLV": 2,
    "NET_REVENUE": 2,
    "EXPECTED_ORDER_VALUE": 2,
    "P_ALIVE": 4,
    "EXPECTED_PURCHASES": 4,
}


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """A frame as UTF-8 CSV (header, ``\\n`` line ends, ISO dates), as the export_segments files are."""
    rounded = frame.round({c: d for c, d in CSV_DECIMALS.items() if c in frame})
    return rounded.to_csv(index=False, lineterminator="\n").encode("utf-8")


def download(
    data: Data,
    *,
    key: str,
    signature: str,
    file_name: str,
    count: int,
    shown: pd.DataFrame,
    load_all: Callable[[], pd.DataFrame],
    too_many: str,
) -> None:
    """A CSV download of a filtered list: at once when the table holds every row, else prepared on request.

    Over ``max_download_rows`` the page points to the export instead (``too_many``), so that a
    large list never freezes the browser (Streamlit sends a download's bytes with the page).
    """
    limit = data.settings.max_download_rows
    if count <= 0:
        return
    if count > limit:
        st.warning(too_many.format(count=count, limit=limit))
        return
    if len(shown) >= count:
        st.download_button(
            f"Download CSV ({count:,} rows)",
            data=csv_bytes(shown),
            file_name=file_name,
            mime="text/csv",
            key=f"download:{key}",
            on_click="ignore",
        )
        return
    state_key = f"explorer.csv:{key}"
    signature_now = (data.version, signature, count)
    prepared = st.session_state.get(state_key)
    if prepared is None or prepared[0] != signature_now:
        if not st.button(f"Prepare CSV ({count:,} rows)", key=f"prepare:{key}"):
            return
        with st.spinner(f"Reading {count:,} rows from the warehouse ..."):
            prepared = (signature_now, csv_bytes(load_all()))
        st.session_state[state_key] = prepared
    st.download_button(
        f"Download CSV ({count:,} rows)",
        data=prepared[1],
        file_name=file_name,
        mime="text/csv",
        key=f"download:{key}",
        on_click="ignore",
    )


def slug(text: str) -> str:
    """A file-name-safe form of a label."""
    cleaned = "".join(ch if ch.isalnum() else "_" for ch in str(text)).strip("_")
    return "_".join(part for part in cleaned.split("_") if part)[:60] or "segment"
