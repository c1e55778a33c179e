"""The segment explorer: a Streamlit app over the warehouse tables (``kedro explorer``; README).

This folder is the app as Streamlit in Snowflake receives it (snowflake.yml): ``streamlit_app.py``,
``app_pages/`` and ``segment_explorer/``, which import only Streamlit, Snowpark, pandas and plotly.
Only ``segment_explorer/local_session.py`` reaches the project, for a local session. This file
imports nothing: the package exists so that the app's files are installed with the project.
"""
