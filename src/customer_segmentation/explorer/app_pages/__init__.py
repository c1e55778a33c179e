"""The segment explorer's pages: Streamlit runs each file by path (streamlit_app.py, snowflake.yml); a package so that setuptools installs them as such."""
