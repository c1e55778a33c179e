"""Project settings. See https://docs.kedro.org/en/stable/configure/configuration_basics/"""

import warnings

from customer_segmentation.hooks import WarehouseHooks
from customer_segmentation.log_output import plain_logs_off_terminal
from customer_segmentation.project_conf import OMEGACONF_DEPRECATION

# Kedro 1.7 calls an omegaconf API that omegaconf 2.4 deprecates; nothing for users to act on.
warnings.filterwarnings("ignore", message=OMEGACONF_DEPRECATION)

# Kedro configured logging (conf/logging.yml) before importing these settings: off a terminal
# (a cloud job, the scheduled workflow, a log file), one plain line per record (log_output.py).
plain_logs_off_terminal()

# One warehouse session per run: opened once, shared by every Snowpark dataset, closed at the end.
HOOKS = (WarehouseHooks(),)

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # declared sources (docs/sources.md): conf/base/sources.yml, one entry per source; an entry of
    # the same name in conf/local/sources.yml replaces it
    "config_patterns": {"sources": ["sources*", "sources*/**"]},
}
