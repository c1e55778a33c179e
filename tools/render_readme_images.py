"""Regenerate the README chart images from the latest pipeline outputs, offline, with headless Chromium.

    kedro run                                   # once, so that data/08_reporting holds the charts
    python tools/render_readme_images.py [--project PATH] [--out docs/images]

Reads the latest versions of the plotly charts the pipelines saved under data/08_reporting/
(segment_sizes, elbow), writes each into a self-contained HTML page (plotly.js inline: no
network) and screenshots it with `chromium --headless`. Does not touch the warehouse.
The browser is $CHROMIUM if set, else the first of chromium, chromium-browser, google-chrome
found on PATH. With --kedro-viz it also writes the kedro-viz pictures (kedro-viz*.png), taken by
the browser test of tests/test_viz.py on a throw-away project copy; with --explorer the segment
explorer's Overview (explorer-overview.png), taken by tests/explorer/test_browser.py.
A docs tool: not part of the package, not run by `kedro run`.
"""

from __future__ import annotations

import argparse
import os
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
    """$CHROMIUM, else the first Chromium-like browser on PATH."""
    wanted = os.environ.get("CHROMIUM")
    for candidate in [wanted] if wanted else ["chromium", "chromium-browser", "google-chrome"]:
        found = shutil.which(candidate)
        if found:
            return found
    raise SystemExit(
        f"{'$CHROMIUM=' + wanted if wanted else 'Chromium'} not found: apt-get install chromium, "
        "or set CHROMIUM to the browser's path"
    )


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
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={workdir / 'chromium-profile'}",
        f"--screenshot={png}",
        f"--window-size={WIDTH},{HEIGHT}",
        "--virtual-time-budget=10000",
        html.as_uri(),
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


def render_kedro_viz(out: Path) -> int:
    """The kedro-viz pictures: the browser test that drives kedro-viz, copying its screenshots to ``out``.

    That test already starts `kedro viz run` on a freshly run project copy and waits for each view
    to render; running it (rather than a second copy of its browser code) keeps one way to do it.
    """
    test = "tests/test_viz.py::test_browser_shows_table_and_chart_previews"
    env = {**os.environ, "README_IMAGES_DIR": str(out)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "browser", "-p", "no:cacheprovider", test]
    return subprocess.run(cmd, cwd=REPO_ROOT, env=env).returncode


def render_explorer(out: Path) -> int:
    """The segment explorer's Overview: the browser test that serves `kedro explorer` on the demo."""
    test = "tests/explorer/test_browser.py::test_overview_shows_every_segment"
    env = {**os.environ, "README_IMAGES_DIR": str(out)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "browser", "-p", "no:cacheprovider", test]
    return subprocess.run(cmd, cwd=REPO_ROOT, env=env).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--project", type=Path, default=REPO_ROOT, help="Kedro project (default: the repository)"
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "images", help="output folder")
    parser.add_argument(
        "--kedro-viz",
        action="store_true",
        help="also the kedro-viz pictures (runs the pipelines on a project copy; needs requirements-dev.txt)",
    )
    parser.add_argument(
        "--explorer",
        action="store_true",
        help="also the segment explorer's Overview (runs the pipelines on a project copy; needs the explorer extra)",
    )
    args = parser.parse_args(argv)
    for png in render(args.project.resolve(), args.out.resolve()):
        print(f"wrote {png} ({png.stat().st_size} bytes)")
    code = 0
    if args.kedro_viz:
        code = render_kedro_viz(args.out.resolve()) or code
    if args.explorer:
        code = render_explorer(args.out.resolve()) or code
    return code


if __name__ == "__main__":
    sys.exit(main())
