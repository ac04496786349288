"""What a reader sees, checked in headless Chromium (driven through tests/webdriver.py): the HTML
report opens from disk, draws its table and figures and fetches nothing; the MLflow UI lists our
runs with their task/arch/init tags. Without chromium and chromedriver these tests fail (never
skip), naming the install command. ARENA_SCREENSHOTS=<dir> keeps the screenshots there
(report.png, mlflow.png, mlflow-filtered.png, mlflow-run.png)."""
from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from matplotlib.figure import Figure as MplFigure

from components.report.document import Figure, Heading, Paragraph, Table
from components.report.html import to_html
from tests import webdriver

pytestmark = pytest.mark.slow

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def open_browser(tmp_path):
    """Starts headless Chromium when called, first thing in a test, so that a machine without it
    FAILS that test (not errors in setup, never skips) with the install command; closed at teardown."""
    with contextlib.ExitStack() as stack:
        def start() -> webdriver.Browser:
            why = webdriver.missing()
            if why:
                pytest.fail(why, pytrace=False)
            return stack.enter_context(webdriver.Browser(tmp_path))
        yield start


def screenshot(browser: webdriver.Browser, path: Path) -> bytes:
    """A PNG of the window, also copied to $ARENA_SCREENSHOTS when set."""
    png = browser.screenshot(path)
    assert png.startswith(PNG_MAGIC), f"{path} is not a PNG"
    if os.environ.get("ARENA_SCREENSHOTS"):
        keep = Path(os.environ["ARENA_SCREENSHOTS"])
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, keep / path.name)
    return png


def png_size(png: bytes) -> tuple[int, int]:
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")  # IHDR width, height


# the HTML report


def plot(width_in: float, height_in: float, dpi: int) -> bytes:
    fig = MplFigure(figsize=(width_in, height_in), dpi=dpi)
    fig.add_subplot().plot([0, 1, 2], [0.3, 0.5, 0.4])
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def test_report_page_renders_from_disk_and_fetches_nothing(open_browser, tmp_path):
    browser = open_browser()
    heatmap, curves = plot(4, 3, 50), plot(6, 2, 50)  # 200 x 150 and 300 x 100 pixels
    header = ["arch", "init", "test acc", "Δ vs scratch"]
    rows = [["s4d", "scratch", "59.60", "–"], ["s4d", "masked_spt", "61.20", "+1.60"],
            ["<script>window.pwned = 1</script>", "scratch", "36.40", "–"]]
    page = tmp_path / "grid.html"
    page.write_text(to_html([
        Heading("Comparison grid", 1),
        Paragraph("Test accuracy (%) of `listops`, **mean** over seeds; see [the paper](https://arxiv.org/abs/2310.02980)."),
        Heading("listops", 2),
        Table(header, rows, [False, False, True, True]),
        Figure("listops-heatmap", heatmap, "test accuracy per arch and init"),
        Figure("listops-curves", curves, "validation curves"),
    ], "Comparison grid"), encoding="utf-8")

    browser.get(page.as_uri())
    assert browser.title() == "Comparison grid"
    assert browser.execute("return document.getElementById('listops').tagName") == "H2"

    assert len(browser.find_all("table.grid tbody tr")) == 3
    assert [browser.text(th) for th in browser.find_all("table.grid thead th")] == header
    cells = browser.execute("return Array.from(document.querySelectorAll('table.grid tbody tr:nth-child(3) td'),"
                            " td => [td.textContent, getComputedStyle(td).textAlign])")
    assert cells == [[rows[2][0], "start"], ["scratch", "start"], ["36.40", "right"], ["–", "right"]]
    assert browser.execute("return window.pwned") is None  # the <script> in a cell stayed text

    images = browser.wait_for("const im = Array.from(document.images);"
                              "return im.every(i => i.complete) && im.map(i => [i.naturalWidth, i.naturalHeight, i.alt])",
                              10, "the figures to decode")
    assert images == [[200, 150, "test accuracy per arch and init"], [300, 100, "validation curves"]]

    resources = browser.execute("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(url.startswith("data:") for url in resources), resources
    requested = browser.requests(document=page.as_uri())  # what the network layer saw, data: included
    assert page.as_uri() in requested and any(url.startswith("data:image/png") for url in requested), requested
    fetched = [url for url in requested if url != page.as_uri() and not url.startswith("data:")]
    assert fetched == [], f"the page fetched {fetched}"

    png = screenshot(browser, tmp_path / "report.png")
    assert png_size(png)[0] == 1280


# the MLflow UI

RUNS = [("listops", "s4d", "scratch"), ("listops", "transformer", "masked_spt"), ("listops", "lstm", "scratch")]


def log_runs(uri: str, artifacts: Path) -> tuple[str, dict[str, dict[str, str]]]:
    """One experiment of finished runs in the store at `uri`: (experiment id, {run name: run id and tags})."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("browser-check", artifact_location=artifacts.as_uri())
    runs = {}
    for i, (task, arch, init) in enumerate(RUNS):
        tags = {"task": task, "arch": arch, "init": init}
        name = f"{task}-{arch}-{init}"
        run = client.create_run(exp, run_name=name, tags=tags)
        client.log_metric(run.info.run_id, "test_accuracy", 0.3 + 0.1 * i, step=6)
        client.set_terminated(run.info.run_id)
        runs[name] = {"run_id": run.info.run_id, **tags}
    return exp, runs


@pytest.fixture
def mlflow_ui(tmp_path):
    """Starts `mlflow ui` on a free port of 127.0.0.1 over a store when called; returns its base URL
    once /health answers. The server's process group is ended at teardown."""
    servers = []

    def start(uri: str) -> str:
        port, log_path = webdriver.free_port(), tmp_path / "mlflow-ui.log"
        env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")  # as `make mlflow-ui`
        with open(log_path, "w") as log:
            servers.append(subprocess.Popen(
                [str(Path(sys.executable).parent / "mlflow"), "ui", "--host", "127.0.0.1", "--port", str(port),
                 "--backend-store-uri", uri, "--workers", "1"],  # one worker is up in ~5 s on 2 cores, four in ~15 s
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True))
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
        while True:
            try:
                if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                    return url
            except OSError:
                pass
            assert servers[-1].poll() is None and time.monotonic() < deadline, \
                f"mlflow ui did not come up:\n{log_path.read_text()[-3000:]}"
            time.sleep(0.3)

    try:
        yield start
    finally:
        for server in servers:
            webdriver.stop_group(server, timeout=30)


def page_text_with(browser: webdriver.Browser, needles: list[str], what: str, timeout: float = 60) -> str:
    """The page's visible text once every needle is in it (the UI is a JS app that renders late)."""
    return browser.wait_for("const t = document.body.innerText; return arguments[0].every(s => t.includes(s)) && t",
                            timeout, what, needles)


def test_mlflow_ui_lists_the_runs_and_their_tags(open_browser, mlflow_ui, tmp_path, monkeypatch):
    browser = open_browser()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    exp, runs = log_runs(uri, tmp_path / "artifacts")
    ui = mlflow_ui(uri)
    # MLflow 3 opens an experiment without an `mlflow.experimentKind` tag on its GenAI overview;
    # workflowType=machine_learning asks for the classic runs table.
    experiment = f"{ui}/#/experiments/{exp}/runs?"
    browser.get(experiment + urllib.parse.urlencode({"workflowType": "machine_learning"}))
    text = page_text_with(browser, [*runs, f"{len(runs)} matching runs"], "every run name in the runs table")
    assert all(name in text for name in runs)
    screenshot(browser, tmp_path / "mlflow.png")

    # tags are not columns by default; filtering the table by one shows the UI reads them
    browser.get(experiment + urllib.parse.urlencode({"workflowType": "machine_learning",
                                                     "searchFilter": "tags.init = 'scratch'"}))
    scratch = [name for name, run in runs.items() if run["init"] == "scratch"]
    text = page_text_with(browser, [*scratch, f"{len(scratch)} matching runs"], "the runs with init=scratch")
    assert [name for name in runs if name in text] == scratch
    screenshot(browser, tmp_path / "mlflow-filtered.png")

    # a run's own page lists its tags as `key: value` (it opens without workflowType too, in the GenAI layout)
    name, run = next(iter(runs.items()))
    browser.get(f"{ui}/#/experiments/{exp}/runs/{run['run_id']}?workflowType=machine_learning")
    text = page_text_with(browser, [name, "Tags", run["task"], run["arch"], run["init"]], f"the tags of {name}")
    for key in ("task", "arch", "init"):
        assert re.search(rf"(^|\n){key}\s*:\s*{re.escape(run[key])}(\n|$)", text), f"tag {key} not shown:\n{text}"
    screenshot(browser, tmp_path / "mlflow-run.png")


def test_the_committed_report_renders(open_browser, tmp_path):
    """reports/grid.html as a real run left it: every table has rows, every figure decodes, nothing is fetched."""
    page = Path(__file__).resolve().parents[1] / "reports" / "grid.html"
    assert page.exists(), "reports/grid.html missing: run `dvc repro` (or `arena report`)"
    browser = open_browser()
    browser.get(page.as_uri())
    assert browser.execute("return document.getElementById('claims').tagName") == "H2"
    rows = browser.execute("return Array.from(document.querySelectorAll('table.grid'), t => t.tBodies[0].rows.length)")
    assert len(rows) >= 2 and min(rows) > 0, rows
    images = browser.wait_for("const im = Array.from(document.images);"
                              "return im.every(i => i.complete) && im.map(i => i.naturalWidth)", 10, "the figures")
    assert images and min(images) > 0, images
    resources = browser.execute("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(url.startswith("data:") for url in resources), resources
    screenshot(browser, tmp_path / "grid.png")
