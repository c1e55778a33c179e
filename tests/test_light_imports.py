"""Every `kedro run` imports all pipeline modules (the registry lists them): none may load the heavy
training and charting libraries at import time, so that `kedro run --pipeline prediction` stays light."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("sklearn", "kneed", "plotly", "scipy")


def test_registering_the_pipelines_loads_no_training_or_chart_library() -> None:
    code = (
        "import sys\n"
        "from customer_segmentation.pipeline_registry import register_pipelines\n"
        "register_pipelines()\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
