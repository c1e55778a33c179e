"""Segment explorer: the latest segments, their history, their members and the model's health.

Run locally with ``kedro explorer`` (the project's warehouse: embedded, or Snowflake with the
SNOWFLAKE_* variables) or deploy to Streamlit in Snowflake with ``snow streamlit deploy``
(snowflake.yml next to this file). The pages only read the warehouse.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

# The pages import the app's own folder (segment_explorer/) by name, wherever the app runs:
# `streamlit run`, Streamlit in Snowflake (the stage's root) and streamlit.testing's AppTest.
APP_DIR = str(Path(__file__).resolve().parent)
if APP_DIR not in sys.path:
    sys.path.insert(0, APP_DIR)

# layout only: Streamlit in Snowflake does not support page_title, page_icon or menu_items
st.set_page_config(layout="wide")

PAGES = [
    st.Page("app_pages/overview.py", title="Overview", default=True),
    st.Page("app_pages/segment.py", title="Segment"),
    st.Page("app_pages/movements.py", title="Movements"),
    st.Page("app_pages/customer.py", title="Customer"),
    st.Page("app_pages/model_health.py", title="Model health"),
]
st.navigation(PAGES).run()
