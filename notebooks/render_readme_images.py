"""Render the README chart images from the latest pipeline outputs, offline, with headless Chromium.

    python notebooks/render_readme_images.py [--project PATH] [--out docs/images]

Reads the latest versions of the plotly charts the pipelines saved under data/08_reporting/
(segment_sizes, elbow), writes each into a self-contained HTML page (plotly.js inline: no
network) and screenshots it with `chromium --headless`. Does not touch the warehouse.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
#: README image name -> the chart's file under data/08_reporting (versioned: <name>.json/<version>/<name>.json)
CHARTS = {"segments": "segment_sizes", "elbow": "elbow"}
WIDTH, HEIGHT = 1100, 600


def find_chromium() -> str:
    for candidate in ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(candidate)
        if found:
            return found
    raise SystemExit("Chromium not found: apt-get install chromium (or set PATH)")


def latest_chart(project: Path, name: str) -> Path:
    """The newest saved version of a plotly JSON chart (or the unversioned file)."""
    base = project / "data" / "08_reporting" / f"{name}.json"
    if base.is_file():
        return base
    versions = sorted(p for p in base.glob(f"*/{name}.json") if p.is_file())
    if not versions:
        raise SystemExit(f"No {base}: run `kedro run` in {project} first.")
    return versions[-1]  # version folders are UTC timestamps, so they sort in time order


def screenshot(chromium: str, html: Path, png: Path, workdir: Path) -> None:
    cmd = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--no-first-run", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
        f"--user-data-dir={workdir / 'chromium-profile'}", f"--screenshot={png}",
        f"--window-size={WIDTH},{HEIGHT}", "--virtual-time-budget=10000", html.as_uri(),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    if not png.is_file():
        raise RuntimeError(f"Chromium wrote no screenshot ({result.returncode}): {result.stderr[-2000:]}")


def render(project: Path, out: Path) -> list[Path]:
    import plotly.io as pio

    chromium = find_chromium()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for image, chart in CHARTS.items():
            fig = pio.read_json(latest_chart(project, chart))
            fig.update_layout(width=WIDTH, height=HEIGHT, margin={"t": 70, "l": 60, "r": 30, "b": 60})
            html = workdir / f"{image}.html"
            fig.write_html(html, include_plotlyjs=True, full_html=True, config={"displayModeBar": False})
            png = out / f"{image}.png"
            screenshot(chromium, html, png, workdir)
            written.append(png)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=REPO_ROOT, help="Kedro project (default: the repository)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "images", help="output folder")
    args = parser.parse_args(argv)
    for png in render(args.project.resolve(), args.out.resolve()):
        print(f"wrote {png} ({png.stat().st_size} bytes)")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
