"""Segment files for a CRM: CSVs in a folder of the project, or unloaded to a Snowflake stage.

Re-exporting the same snapshot gives byte-identical files: rows sorted by customer id, fixed
float formatting (2 decimals), ``\\n`` line ends, UTF-8, and nothing that depends on when the
export ran. Files land in ``<folder>/<snapshot date>/``; earlier ``segment_*.csv`` files of that
snapshot folder are replaced, so a segment that no longer exists leaves no stale file.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset
from kedro.io.core import DatasetError

from customer_segmentation import warehouse
from customer_segmentation.errors import InvalidParametersError

logger = logging.getLogger(__name__)

_STAGE = re.compile(r"^@?[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*){0,2}(/[A-Za-z0-9_\-./]*)?$")


@dataclass
class SegmentExport:
    """What ``export_segments`` hands to the dataset: one Snowpark frame per file name."""

    snapshot_date: str
    files: dict[str, Any] = field(default_factory=dict)
    folder: str | None = None
    stage: str | None = None
    allow_outside_project: bool = False


def resolve_export_folder(project_dir: Path, folder: str | os.PathLike, allow_outside: bool = False) -> Path:
    """The absolute export folder; outside the project only when explicitly allowed."""
    project_dir = Path(project_dir).resolve()
    path = Path(folder).expanduser()
    path = (path if path.is_absolute() else project_dir / path).resolve()
    if not allow_outside and not path.is_relative_to(project_dir):
        raise InvalidParametersError(
            f"export_segments.folder {str(folder)!r} is outside the project ({project_dir}). Export inside it, "
            "or allow it explicitly with --params=export_segments.allow_outside_project=true."
        )
    return path


def csv_bytes(frame: Any) -> bytes:
    """Deterministic CSV text of an export frame: sorted rows, 2-decimal floats, \\n line ends."""
    frame = frame.sort_values("CUSTOMER_ID", kind="stable").reset_index(drop=True)
    return frame.to_csv(index=False, float_format="%.2f", lineterminator="\n").encode("utf-8")


class SegmentExportDataset(AbstractDataset):
    """Write-only: the files of a ``SegmentExport`` (``filepath`` is the project folder, the anchor)."""

    def __init__(
        self,
        *,
        filepath: str,
        default_folder: str = "data/09_export/segments",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._project_dir = Path(filepath)
        self._default_folder = default_folder
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"project_dir": str(self._project_dir), "default_folder": self._default_folder}

    def load(self) -> Any:
        raise DatasetError("segment_export is write-only: read the CSV files it wrote.")

    def save(self, data: SegmentExport) -> None:
        if data.stage:
            self._unload_to_stage(data)
            return
        root = resolve_export_folder(
            self._project_dir, data.folder or self._default_folder, data.allow_outside_project
        )
        target = root / data.snapshot_date
        target.mkdir(parents=True, exist_ok=True)
        contents = {name: csv_bytes(frame.to_pandas()) for name, frame in data.files.items()}
        for stale in target.glob("segment_*.csv"):
            if stale.name not in contents:
                stale.unlink()
        for name, payload in contents.items():
            tmp = target / f".{name}.tmp"
            tmp.write_bytes(payload)
            os.replace(tmp, target / name)  # atomic: a reader never sees half a file
        logger.info("Wrote %s segment file(s) to %s", len(contents), target)

    def _unload_to_stage(self, data: SegmentExport) -> None:
        """COPY INTO @stage/<snapshot>/<file> (one file each, header, overwrite); Snowflake only."""
        if warehouse.current_settings().is_embedded:
            raise InvalidParametersError(
                "export_segments.stage unloads to a Snowflake stage, which the embedded warehouse does not have: "
                "leave it null to write files to export_segments.folder."
            )
        stage = str(data.stage)
        if not _STAGE.match(stage):
            raise InvalidParametersError(
                f"export_segments.stage {stage!r} is not a stage name like @MY_DB.MY_SCHEMA.EXPORTS."
            )
        stage = stage if stage.startswith("@") else "@" + stage
        for name, frame in data.files.items():
            # COPY INTO <location> with SINGLE = TRUE writes one file under the exact path given,
            # HEADER = TRUE writes the column names, OVERWRITE = TRUE replaces a previous export
            # (docs.snowflake.com/en/sql-reference/sql/copy-into-location).
            # fixed 2-decimal text for money, as in the local files (a DOUBLE may unload in E notation)
            frame = frame.with_column("MONETARY", frame["MONETARY"].cast("NUMBER(38,2)"))
            frame.sort("CUSTOMER_ID").write.copy_into_location(
                f"{stage.rstrip('/')}/{data.snapshot_date}/{name}",
                file_format_type="csv",
                format_type_options={"COMPRESSION": "NONE", "FIELD_OPTIONALLY_ENCLOSED_BY": '"'},
                header=True,
                overwrite=True,
                single=True,
            )
        logger.info("Unloaded %s segment file(s) to %s/%s", len(data.files), stage, data.snapshot_date)
