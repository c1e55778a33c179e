"""The explorer's plotly figures, built from the small frames of ``queries`` (no warehouse access here).

plotly.js ships inside Streamlit's frontend: nothing is loaded from outside, as Streamlit in
Snowflake's content security policy requires.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
import plotly.graph_objects as go

HEIGHT = 360
_LAYOUT = {"height": HEIGHT, "margin": {"t": 40, "l": 10, "r": 10, "b": 10}}
STATUS_COLOURS = {"ok": "#2e7d32", "watch": "#f9a825", "retrain_recommended": "#c62828"}


def segment_trend(trend: pd.DataFrame, label: str) -> go.Figure:
    """Customers (bars) and share of net revenue (line, right axis) of one segment over snapshots."""
    fig = go.Figure()
    fig.add_bar(x=trend["SNAPSHOT_DATE"], y=trend["CUSTOMERS"], name="customers", marker_color="#4c78a8")
    fig.add_scatter(
        x=trend["SNAPSHOT_DATE"],
        y=trend["REVENUE_SHARE"],
        name="share of net revenue",
        yaxis="y2",
        mode="lines+markers",
        line={"color": "#f58518"},
    )
    fig.update_layout(
        title=f"{label}: size and revenue share by snapshot",
        yaxis={"title": "customers"},
        yaxis2={"title": "share of net revenue", "overlaying": "y", "side": "right", "tickformat": ".0%"},
        legend={"orientation": "h", "y": -0.2},
        **_LAYOUT,
    )
    return fig


def shares(cards: pd.DataFrame) -> go.Figure:
    """Each segment's share of customers, of net revenue and (once it exists) of expected revenue."""
    fig = go.Figure()
    labels = cards["SEGMENT_LABEL"].astype(str)
    for column, name, colour in (
        ("CUSTOMER_SHARE", "customers", "#4c78a8"),
        ("REVENUE_SHARE", "net revenue", "#f58518"),
        ("EXPECTED_REVENUE_SHARE", "expected revenue (CLV)", "#54a24b"),
    ):
        if column in cards:
            fig.add_bar(x=labels, y=cards[column], name=name, marker_color=colour)
    fig.update_layout(
        title="Segments at a glance: share of customers and of revenue",
        barmode="group",
        yaxis={"tickformat": ".0%"},
        legend={"orientation": "h", "y": -0.2},
        **_LAYOUT,
    )
    return fig


def contrast(frame: pd.DataFrame, label: str, top: int = 12) -> go.Figure:
    """Standardised difference of the segment's mean from all customers', per feature (largest first)."""
    shown = frame.dropna(subset=["SD_DIFF"]).head(top).iloc[::-1]
    colours = ["#2e7d32" if v > 0 else "#c62828" for v in shown["SD_DIFF"]]
    fig = go.Figure(go.Bar(x=shown["SD_DIFF"], y=shown["FEATURE"], orientation="h", marker_color=colours))
    fig.update_layout(
        title=f"What sets {label} apart (segment mean vs all customers, in standard deviations)",
        xaxis={"title": "standard deviations from all customers' mean", "zeroline": True},
        **_LAYOUT,
    )
    return fig


#: Segment colours (the same segment has the same colour on both sides of a Sankey).
PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d", "#eeca3b")
OUTSIDE = "#bab0ac"  # "new" and "gone"


def _rgba(colour: str, alpha: float) -> str:
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def sankey(moves: pd.DataFrame, before: date, after: date) -> go.Figure:
    """Customers from each segment at ``before`` (left) to each segment at ``after`` (right)."""
    left = sorted(set(moves["FROM_SEGMENT"].astype(str)))
    right = sorted(set(moves["TO_SEGMENT"].astype(str)))
    segments = sorted((set(left) | set(right)) - {"new", "gone"})
    colour = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(segments)} | {
        "new": OUTSIDE,
        "gone": OUTSIDE,
    }
    labels = [f"{s} ({before})" for s in left] + [f"{s} ({after})" for s in right]
    fig = go.Figure(
        go.Sankey(
            node={
                "label": labels,
                "pad": 14,
                "color": [colour[s] for s in left] + [colour[s] for s in right],
            },
            link={
                "source": [left.index(str(s)) for s in moves["FROM_SEGMENT"]],
                "target": [len(left) + right.index(str(s)) for s in moves["TO_SEGMENT"]],
                "value": moves["CUSTOMERS"].astype(int).tolist(),
                "color": [_rgba(colour[str(s)], 0.35) for s in moves["FROM_SEGMENT"]],
            },
            textfont={"color": "#1f1f1f", "size": 12},
        )
    )
    fig.update_layout(title=f"Customers between {before} and {after}", height=480, margin=_LAYOUT["margin"])
    return fig


def elbow(ks: pd.DataFrame) -> go.Figure:
    """Inertia by k (elbow) with the silhouette on the right axis; the chosen k marked."""
    fig = go.Figure()
    if "INERTIA" in ks:
        fig.add_scatter(x=ks["K"], y=ks["INERTIA"], name="inertia", mode="lines+markers")
    if "SILHOUETTE" in ks:
        fig.add_scatter(x=ks["K"], y=ks["SILHOUETTE"], name="silhouette", mode="lines+markers", yaxis="y2")
    if "IS_CHOSEN" in ks:
        chosen = ks[ks["IS_CHOSEN"].astype(bool)]
        for k in chosen["K"]:
            fig.add_vline(x=float(k), line_dash="dash", annotation_text=f"chosen k = {int(k)}")
    fig.update_layout(
        title="How k was chosen",
        xaxis={"title": "k", "dtick": 1},
        yaxis={"title": "inertia"},
        yaxis2={"title": "silhouette", "overlaying": "y", "side": "right"},
        legend={"orientation": "h", "y": -0.2},
        **_LAYOUT,
    )
    return fig


def faithfulness(frame: pd.DataFrame, column: str = "FAITHFUL_SHARE") -> go.Figure:
    """Share of each segment's members whose classic RFM segment matches the segment's name."""
    labels = frame["SEGMENT_LABEL"] if "SEGMENT_LABEL" in frame else frame["LABEL"]
    fig = go.Figure(go.Bar(x=labels.astype(str), y=frame[column], marker_color="#4c78a8"))
    fig.update_layout(
        title="Faithfulness: members whose classic RFM segment matches the name",
        yaxis={"tickformat": ".0%", "range": [0, 1]},
        **_LAYOUT,
    )
    return fig


def psi(long: pd.DataFrame, thresholds: tuple[float, float] = (0.1, 0.25)) -> go.Figure:
    """Population stability index of every model feature over the monitored runs."""
    fig = go.Figure()
    for feature, rows in long.groupby("FEATURE", sort=True):
        fig.add_scatter(x=rows["MEASURED_AT"], y=rows["PSI"], name=str(feature), mode="lines+markers")
    for value, name in zip(thresholds, ("watch", "retrain"), strict=True):
        fig.add_hline(y=value, line_dash="dot", annotation_text=f"{name} ({value:g})")
    fig.update_layout(
        title="Drift: PSI per feature against the training sample",
        yaxis={"title": "PSI"},
        legend={"orientation": "h", "y": -0.25},
        **_LAYOUT,
    )
    return fig


def series(points: Any, x: str, ys: list[str], title: str) -> go.Figure | None:
    """A line chart of a list of records (a holdout series), or None when the records lack the keys."""
    frame = pd.DataFrame(points) if isinstance(points, list) else pd.DataFrame()
    if frame.empty or x not in frame or not any(y in frame for y in ys):
        return None
    fig = go.Figure()
    for y in ys:
        if y in frame:
            fig.add_scatter(x=frame[x], y=frame[y], name=y.replace("_", " "), mode="lines+markers")
    fig.update_layout(title=title, legend={"orientation": "h", "y": -0.2}, **_LAYOUT)
    return fig
