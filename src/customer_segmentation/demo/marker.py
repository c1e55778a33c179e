"""How demo rows are recognised: their ``SOURCE_FILE`` starts with ``demo://`` (no heavy imports here)."""

#: SOURCE_FILE of every demo row starts with this (a file path or NULL never does).
DEMO_SOURCE_PREFIX = "demo://"
