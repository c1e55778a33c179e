"""Chart nodes: plotly figures of the k selection and of the trained model (plotly imported inside each)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from customer_segmentation.model import SegmentationModel
from customer_segmentation.pipelines.customer_value.params import CustomerValueParams
from customer_segmentation.pipelines.training.params import TrainingParams


def plot_elbow(k_selection: pd.DataFrame, k_choice: dict[str, Any]) -> Any:
    """Inertia by k with the chosen k marked."""
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Scatter(x=k_selection["k"], y=k_selection["inertia"], mode="lines+markers", name="inertia")
    )
    chosen = k_selection[k_selection["k"] == k_choice["k"]]
    if len(chosen):
        fig.add_trace(
            go.Scatter(
                x=chosen["k"],
                y=chosen["inertia"],
                mode="markers",
                marker={"size": 16, "symbol": "star"},
                name=f"chosen k={k_choice['k']} ({k_choice['source']})",
            )
        )
    fig.update_layout(
        title="Elbow: KMeans inertia by number of segments", xaxis_title="k", yaxis_title="inertia"
    )
    return fig


def plot_silhouette(k_selection: pd.DataFrame, k_choice: dict[str, Any]) -> Any:
    """Silhouette (higher is better) and Davies-Bouldin (lower is better) by k."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_trace(go.Bar(x=k_selection["k"], y=k_selection["silhouette"], name="silhouette"))
    fig.add_trace(
        go.Scatter(x=k_selection["k"], y=k_selection["davies_bouldin"], name="Davies-Bouldin", yaxis="y2")
    )
    fig.add_vline(x=k_choice["k"], line_dash="dash", annotation_text=f"chosen k={k_choice['k']}")
    fig.update_layout(
        title="Silhouette and Davies-Bouldin by k",
        xaxis_title="k",
        yaxis={"title": "silhouette"},
        yaxis2={"title": "Davies-Bouldin", "overlaying": "y", "side": "right"},
    )
    return fig


def plot_segment_profiles(model: SegmentationModel) -> Any:
    """Heatmap of the centroids (scaled feature means per segment)."""
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Heatmap(
            z=model.centroids,
            x=model.features,
            y=model.labels,
            colorscale="RdBu",
            zmid=0,
            text=np.round(model.centroids, 2),
            texttemplate="%{text}",
        )
    )
    fig.update_layout(
        title="Segment profiles: feature means per segment (standardised)", height=180 + 40 * model.k
    )
    return fig


def plot_rfm_scatter(sample: pd.DataFrame, model: SegmentationModel, params: TrainingParams) -> Any:
    """3-D recency / frequency / monetary scatter of a sample, coloured by segment.

    One trace per segment (in order of first appearance), as plotly.express draws it, built with graph
    objects: plotly.express's first figure of a process costs ~0.15-0.3 s more.
    """
    import plotly.colors
    import plotly.graph_objects as go

    n = min(params.scatter_sample_size, len(sample))
    points = sample.sample(n=n, random_state=params.random_state) if n < len(sample) else sample
    segments = pd.Series(model.label_of(model.predict(points)), index=points.index)
    palette = plotly.colors.qualitative.Plotly
    fig = go.Figure()
    for i, label in enumerate(pd.unique(segments)):
        part = points[segments == label]
        fig.add_trace(
            go.Scatter3d(
                x=part["RECENCY_DAYS"],
                y=part["FREQUENCY"],
                z=part["MONETARY"],
                mode="markers",
                name=str(label),
                legendgroup=str(label),
                marker={"size": 3, "opacity": 0.6, "color": palette[i % len(palette)]},
                hovertemplate=f"SEGMENT={label}<br>RECENCY_DAYS=%{{x}}<br>FREQUENCY=%{{y}}<br>"
                "MONETARY=%{z}<extra></extra>",
            )
        )
    fig.update_layout(
        title=f"Customers in recency / frequency / monetary space ({n} sampled)",
        legend_title_text="SEGMENT",
        scene={
            "xaxis": {"title": {"text": "RECENCY_DAYS"}},
            "yaxis": {"title": {"text": "FREQUENCY"}, "type": "log"},
            "zaxis": {"title": {"text": "MONETARY"}},
        },
    )
    return fig


# --- customer value: the holdout evidence of the active value model (docs/customer-value.md) --------


def _holdout(value_models: pd.DataFrame, params: CustomerValueParams) -> tuple[str, dict[str, Any]]:
    """The version the charts describe and its holdout report ({"skipped": why} when there is none).

    Without a READY version, the newest FAILED one (a fit that failed, stored with its reason) says why.
    """
    from customer_segmentation.value_model import active_value_model  # loads scipy: only when drawing

    model = active_value_model(value_models, params.model_version)
    if model is None:
        failed = _latest_failure(value_models)
        if failed is not None:
            return failed
        return "none", {"skipped": "no customer-value model yet: run `kedro run`"}
    report = model.metrics.get("holdout") if isinstance(model.metrics, dict) else None
    return model.version, report if isinstance(report, dict) else {"skipped": "no holdout report stored"}


def _latest_failure(value_models: pd.DataFrame) -> tuple[str, dict[str, Any]] | None:
    """(version, {"skipped": "the fit failed: <reason>"}) of the newest FAILED version, if any."""
    import json

    if value_models is None or not len(value_models):
        return None
    frame = value_models.rename(columns={c: str(c).upper() for c in value_models.columns})
    if "STATUS" not in frame.columns:
        return None
    failed = frame[frame["STATUS"].astype(str).str.upper() == "FAILED"]
    if not len(failed):
        return None
    row = failed.iloc[0]  # the table loads newest first
    metrics = row.get("METRICS")
    try:
        metrics = json.loads(metrics) if isinstance(metrics, str) else metrics
    except ValueError:
        metrics = None
    reason = metrics.get("failed") if isinstance(metrics, dict) else None
    return str(row["VERSION"]), {"skipped": f"the value model fit failed: {reason or 'no reason stored'}"}


def _value_chart(  # noqa: PLR0913 - the two charts differ in these only
    value_models: pd.DataFrame,
    params: CustomerValueParams,
    title: str,
    rows_key: str,
    x: str,
    actual: tuple[Any, dict[str, Any]],
    predicted: tuple[Any, dict[str, Any]],
) -> tuple[Any, tuple[str, dict[str, Any]] | None]:
    """A holdout chart's common part: the figure with the report's rows ``rows_key`` drawn as an
    "actual" and a "predicted" trace (each a plotly trace class and its style) over column ``x``, and
    (version, report); or an empty figure whose title says why there is nothing to draw, and None."""
    import plotly.graph_objects as go

    version, report = _holdout(value_models, params)
    rows = report.get(rows_key) or []
    fig = go.Figure()
    if report.get("skipped") or not rows:
        fig.update_layout(title=f"{title}: {report.get('skipped') or f'no {rows_key} rows in the report'}")
        return fig, None
    frame = pd.DataFrame(rows)
    for (trace, style), name in ((actual, "actual"), (predicted, "predicted")):
        fig.add_trace(trace(x=frame[x], y=frame[name], name=name, **style))
    return fig, (version, report)


def plot_value_tracking(customer_value_models: pd.DataFrame, params: CustomerValueParams) -> Any:
    """Cumulative repeat purchases, actual vs predicted, over the calibration and the holdout period."""
    import plotly.graph_objects as go

    title = "Customer value: cumulative repeat purchases, actual vs predicted"
    line = (go.Scatter, {"mode": "lines"})
    dashed = (go.Scatter, {"mode": "lines", "line": {"dash": "dash"}})
    fig, found = _value_chart(customer_value_models, params, title, "tracking", "day", line, dashed)
    if found is None:
        return fig
    version, report = found
    fig.add_vline(x=report["calibration_end"], line_dash="dot")
    fig.add_annotation(
        x=report["calibration_end"], y=1, yref="paper", text="holdout starts", showarrow=False, xanchor="left"
    )
    error = report.get("total_error")
    fig.update_layout(
        title=f"{title} (model {version}; holdout error {'n/a' if error is None else f'{error:+.1%}'})",
        xaxis_title="day",
        yaxis_title="cumulative repeat purchases (transaction days)",
    )
    return fig


def plot_value_by_frequency(customer_value_models: pd.DataFrame, params: CustomerValueParams) -> Any:
    """Mean holdout purchases per customer by calibration frequency, actual vs predicted (the conditional expectations)."""
    import plotly.graph_objects as go

    title = "Customer value: holdout purchases by calibration frequency"
    bars = (go.Bar, {})
    markers = (go.Scatter, {"mode": "lines+markers"})
    fig, found = _value_chart(
        customer_value_models, params, title, "by_frequency", "frequency", bars, markers
    )
    if found is None:
        return fig
    version, report = found
    fig.update_layout(
        title=f"{title} (model {version}, {report.get('holdout_days')} days after {report.get('calibration_end')})",
        xaxis_title="repeat purchases before the holdout (x)",
        yaxis_title="mean purchases in the holdout, per customer",
        xaxis={"type": "category"},
    )
    return fig
