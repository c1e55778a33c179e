"""The session outside Streamlit in Snowflake: the project's own connection point.

The only file of the app that imports the project (``customer_segmentation.warehouse``), and only
when ``get_session()`` is called, which the app does only when Snowpark has no active session
(in Streamlit in Snowflake it always has one, so this file is never used there). The project's
warehouse module decides the target exactly as ``kedro run`` does: real Snowflake when
``SNOWFLAKE_ACCOUNT`` is set, otherwise the project's embedded warehouse, joining the shared local
server so that ``kedro run`` can write while the app is open. ``kedro explorer`` sets
``KEDRO_PROJECT_PATH`` (and ``KEDRO_ENV``) so that the project's configuration is found.
"""

from __future__ import annotations

from typing import Any

INSTALL_HINT = (
    "No Snowflake session is active and the customer_segmentation project is not importable: start "
    'the app with `kedro explorer` from the project folder (after `pip install -e ".[explorer]"`), '
    "or deploy it to Streamlit in Snowflake (snowflake.yml next to the app)."
)


def get_session() -> Any:
    """The project's warehouse session (opened on first use, reconnected if its server restarted)."""
    try:
        from customer_segmentation import warehouse
    except ImportError as exc:
        raise RuntimeError(f"{INSTALL_HINT} ({exc})") from None
    return warehouse.get_session()
