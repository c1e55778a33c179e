"""The explorer's shared code: queries (read-only SQL), charts (plotly) and the page frame (common)."""
