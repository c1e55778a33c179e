"""The project's configuration read outside a Kedro run (CLI commands, notebooks, the explorer).

A run gets its config loader from Kedro (``settings.CONFIG_LOADER_ARGS``); the commands and helpers
that read ``conf/`` on their own read it here, the same way.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

#: Kedro 1.7 calls an omegaconf API that omegaconf 2.4 deprecates, when it builds a loader and when
#: it reads a section: nothing for users to act on (settings.py filters it for runs; these reads
#: happen without settings.py, e.g. `python -m customer_segmentation.warehouse stop` or a notebook).
OMEGACONF_DEPRECATION = r"register_new_resolver\(\) is deprecated"


def read_conf(project: Path, env: str | None, *sections: str) -> tuple[dict[str, Any], ...]:
    """``sections`` (e.g. "parameters", "credentials") of ``project/conf``, base + ``local`` or ``env``,
    as a run reads them; a section that is absent or empty is ``{}``."""
    from kedro.config import OmegaConfigLoader

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=OMEGACONF_DEPRECATION)
        loader = OmegaConfigLoader(
            conf_source=str(Path(project) / "conf"), base_env="base", default_run_env="local", env=env
        )
        return tuple(dict(loader[section] or {}) for section in sections)
