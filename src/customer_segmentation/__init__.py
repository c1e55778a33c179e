"""Customer segmentation on Snowflake with Kedro."""

__version__ = "0.1.0"
