"""Typed parameters: one model per section, its defaults equal to conf/base, and Kedro refusing a bad
value before anything runs (no demo seeding, no warehouse write), naming the parameter."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kedro.validation import ParameterValidationError, TypeExtractor

from customer_segmentation.demo.params import DemoDataParams
from customer_segmentation.errors import InvalidParametersError
from customer_segmentation.parameters import Parameters
from customer_segmentation.pipeline_registry import register_pipelines
from customer_segmentation.pipelines.check_source.params import CheckSourceParams
from customer_segmentation.pipelines.customer_value.params import CustomerValueParams
from customer_segmentation.pipelines.export_segments.params import ExportSegmentsParams
from customer_segmentation.pipelines.ingestion.params import IngestionParams
from customer_segmentation.pipelines.load_events.params import LoadEventsParams
from customer_segmentation.pipelines.monitoring.params import DriftThresholds, MonitoringParams
from customer_segmentation.pipelines.prediction.params import PredictionParams
from customer_segmentation.pipelines.rfm_features.params import RfmFeaturesParams
from customer_segmentation.pipelines.simulate_days.params import SimulateDaysParams
from customer_segmentation.pipelines.training.params import TrainingParams
from tests.conftest import PROJECT_ROOT, make_project_copy, run_pipeline, warehouse_rows

MODELS: dict[str, type[Parameters]] = {
    "demo_data": DemoDataParams,
    "ingestion": IngestionParams,
    "rfm_features": RfmFeaturesParams,
    "training": TrainingParams,
    "prediction": PredictionParams,
    "monitoring": MonitoringParams,
    "export_segments": ExportSegmentsParams,
    "load_events": LoadEventsParams,
    "simulate_days": SimulateDaysParams,
    "check_source": CheckSourceParams,
    "customer_value": CustomerValueParams,
}


def configured() -> dict:
    """Every section of conf/base/parameters*.yml, merged as Kedro merges them."""
    merged: dict = {}
    for path in sorted((PROJECT_ROOT / "conf" / "base").glob("parameters*.yml")):
        merged.update(yaml.safe_load(path.read_text()) or {})
    return merged


def test_every_pipeline_section_is_typed_and_found_by_kedro() -> None:
    found = TypeExtractor(register_pipelines()).extract_types_from_pipelines()
    assert found == MODELS
    assert all(model.section == name for name, model in MODELS.items())


@pytest.mark.parametrize("section", sorted(MODELS))
def test_defaults_are_the_configured_values(section: str) -> None:
    model = MODELS[section]
    from_yaml = model.model_validate(configured()[section])
    if section == "monitoring":  # the playbook is marketing's text: it lives in the YAML only
        assert from_yaml.model_copy(update={"playbook": {}}) == model()
        assert from_yaml.playbook["default"]
    else:
        assert from_yaml == model()


@pytest.mark.parametrize(
    ("model", "values", "named"),
    [
        (IngestionParams, {"max_rejection_rate": -0.1}, "ingestion.max_rejection_rate"),
        (RfmFeaturesParams, {"reference_date": "31/10/2026"}, "rfm_features.reference_date"),
        (RfmFeaturesParams, {"trend_window_days": 0}, "rfm_features.trend_window_days"),
        (PredictionParams, {"model_versoin": "x"}, "prediction.model_versoin: Extra inputs"),
        (MonitoringParams, {"profile_top_features": -1}, "monitoring.profile_top_features"),
        (
            MonitoringParams,
            {"drift_thresholds": {"psi_watch": 0.5, "psi_retrain": 0.2}},
            "monitoring.drift_thresholds.psi_watch (0.5) must not exceed",
        ),
        (MonitoringParams, {"drift_thresholds": {"psi": 1}}, "monitoring.drift_thresholds.psi: Extra"),
        (ExportSegmentsParams, {"snapshot_date": "yesterday"}, "export_segments.snapshot_date"),
        (LoadEventsParams, {"csv_delimiter": ";;"}, "load_events.csv_delimiter"),
        (LoadEventsParams, {"decimal": ";"}, "load_events.decimal"),
        (CheckSourceParams, {"preview_rows": 0}, "check_source.preview_rows"),
        (
            LoadEventsParams,
            {"format": "xml"},
            "load_events.format: Input should be 'csv', 'jsonl', 'parquet' or 'xlsx'",
        ),
        (SimulateDaysParams, {"arrival_multiplier": -1}, "simulate_days.arrival_multiplier"),
        (DemoDataParams, {"defect_rate": 2}, "demo_data.defect_rate"),
        (CustomerValueParams, {"horizon_days": 0}, "customer_value.horizon_days"),
        (CustomerValueParams, {"horizon_days": 365.5}, "customer_value.horizon_days"),
        (CustomerValueParams, {"annual_discount_rate": -0.1}, "customer_value.annual_discount_rate"),
        (CustomerValueParams, {"margin": 0}, "customer_value.margin"),
        (CustomerValueParams, {"holdout_days": 3}, "customer_value.holdout_days"),
        (CustomerValueParams, {"sample_size": 10}, "customer_value.sample_size"),
        (CustomerValueParams, {"horizon": 365}, "customer_value.horizon: Extra inputs"),
        (DemoDataParams, {"end_date": "soon"}, "demo_data.end_date"),
    ],
)
def test_errors_name_the_parameter(model: type[Parameters], values: dict, named: str) -> None:
    with pytest.raises(InvalidParametersError, match="^" + named.replace("(", r"\(").replace(")", r"\)")):
        model.of(values)


def test_values_are_parsed_once_into_their_types() -> None:
    assert PredictionParams.of(model_version=20261101).model_version == "20261101"
    assert PredictionParams.of(model_version="").model_version is None
    assert CustomerValueParams.of(model_version=20261101).model_version == "20261101"
    assert CustomerValueParams.of(model_version="").model_version is None
    assert str(RfmFeaturesParams.of(reference_date="2026-10-31").reference_date) == "2026-10-31"
    assert IngestionParams.of(as_of="2026-11-01").as_of.isoformat() == "2026-11-01T00:00:00"
    assert MonitoringParams.of(drift_thresholds={"psi_watch": 0.2}).drift_thresholds == DriftThresholds(
        psi_watch=0.2
    )
    rule = TrainingParams.of(retrain_policy={"max_age_days": 7, "on_drift": True}).retrain_rule()
    assert rule == (True, 7) and TrainingParams.of(retrain_policy=None).retrain_rule() == (False, None)


def _tables(project: Path) -> list[tuple]:
    """(table, rows) of every table in the project's embedded warehouse, read with DuckDB directly."""
    names = warehouse_rows(
        project,
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_type = 'BASE TABLE' AND table_schema = 'PUBLIC' ORDER BY 1, 2",
    )
    return [
        (schema, name, warehouse_rows(project, f'SELECT COUNT(*) FROM "{schema}"."{name}"')[0][0])
        for schema, name in names
    ]


@pytest.mark.integration
def test_a_bad_parameter_stops_kedro_run_before_anything_runs(tmp_path: Path) -> None:
    # a brand-new project: the default run would seed the demo first; nothing may be created
    fresh = make_project_copy(tmp_path / "fresh")
    with pytest.raises(ParameterValidationError) as excinfo:
        run_pipeline(fresh, params={"training.k_min": 1})
    assert "training.k_min: Input should be greater than or equal to 2 (got 1)" in str(excinfo.value)
    # the embedded server may already be starting in the background (its log and lock files),
    # but no database file, hence no table, was created
    created = [p.name for p in (fresh / "data" / "warehouse").iterdir()]
    assert not [name for name in created if name != ".gitkeep" and not name.startswith("server.")], created
    assert not list((fresh / "data" / "08_reporting").iterdir())

    # an existing warehouse: a bad ingestion parameter leaves every table as it was
    project = make_project_copy(tmp_path / "loaded")
    run_pipeline(project, "ingestion")
    before = _tables(project)
    assert any(name == "TRANSFORMED_DATA" and rows > 0 for _, name, rows in before)
    for pipeline, params, named in (
        ("ingestion", {"ingestion.max_rejection_rate": 2}, "ingestion.max_rejection_rate"),
        ("ingestion", {"ingestion.full_refresh": "yes"}, "ingestion.full_refresh"),
        (None, {"monitoring.drift_thresholds.psi_watch": 9}, "monitoring.drift_thresholds.psi_watch"),
    ):
        with pytest.raises(ParameterValidationError, match=named.replace(".", r"\.")):
            run_pipeline(project, pipeline, params)
    assert _tables(project) == before


def test_validation_is_scoped_to_the_pipelines_that_run(tmp_path: Path) -> None:
    # a bad training value concerns training only: ingestion runs, the default run refuses it
    project = make_project_copy(tmp_path / "scoped")
    run_pipeline(project, "ingestion", {"training.k_min": 1})
    assert any(name == "TRANSFORMED_DATA" and rows > 0 for _, name, rows in _tables(project))
    with pytest.raises(ParameterValidationError, match=r"training\.k_min"):
        run_pipeline(project, None, {"training.k_min": 1})
