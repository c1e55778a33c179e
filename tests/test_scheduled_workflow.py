"""The scheduled workflow keeps no state on the runner and signs in to Snowflake with a key pair."""

from __future__ import annotations

import yaml

from tests.conftest import PROJECT_ROOT

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "scheduled-pipeline.yml"


def _steps() -> list[dict]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_no_cache_and_no_volume_between_runs() -> None:
    text = WORKFLOW.read_text()
    assert not [s for s in _steps() if "cache" in str(s.get("uses", ""))]
    assert "/app/data" not in text  # nothing of data/ is mounted: the state is in the warehouse


def test_private_key_is_a_600_file_mounted_read_only() -> None:
    steps = {s.get("name"): s for s in _steps()}
    write = steps["Write the Snowflake private key"]
    assert write["env"]["SNOWFLAKE_PRIVATE_KEY"] == "${{ secrets.SNOWFLAKE_PRIVATE_KEY }}"
    assert "umask 077" in write["run"] and "chmod 600" in write["run"]
    run = steps["Run the pipeline"]["run"]
    assert ":/run/secrets/snowflake_key.p8:ro" in run
    assert "SNOWFLAKE_PRIVATE_KEY_FILE=/run/secrets/snowflake_key.p8" in run
    # the key text itself never reaches the container's environment, only the file's path
    assert "${{ secrets.SNOWFLAKE_PRIVATE_KEY }}" not in steps["Run the pipeline"]["env"].values()
    cleanup = steps["Remove the private key file"]
    assert cleanup["if"] == "always()" and "rm -rf" in cleanup["run"]
