"""`make ui-check`: the MLflow UI of a workspace as a person sees it, in headless Chromium.

Starts the UI on the workspace, opens the run list (the model-training view), the latest run, its artifacts,
its statistics page and the registered model's latest version, saves a screenshot of each and fails when a
page shows an error or lacks what it should show. Chromium comes from the distribution (`apt-get install
chromium`); each page gets a fresh profile and nothing but 127.0.0.1 is contacted.

A developer's check, run from the checkout, so it lives outside the `pipeline` and `components` packages and
is not installed with them:

    python -m tools.ui_check --workspace workspace --out workspace/ui-check
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pipeline.tracking import ui
from pipeline.tracking.mlflow_text import TRAINED_IN_RUN_TAG

# What MLflow's pages say when something is wrong (error boundaries, failed fetches, unknown routes).
ERROR_PHRASES = (
    "something went wrong",
    "page not found",
    "does not exist",
    "request failed",
    "internal server error",
    "an error occurred",
    "failed to fetch",
    "not found",
)
# Flags from the brief: no GPU, no sandbox (root in a container), nothing fetched from Google's services.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)
WINDOW_WIDTH = 1440
# Virtual time: the page's own timers and fetches run until it is idle or this budget (ms) is spent, so the
# single-page app has rendered before the screenshot is taken.
RENDER_BUDGET_MS = 30_000


@dataclasses.dataclass(frozen=True)
class Page:
    name: str
    fragment: str
    expected: tuple[str, ...]  # Texts the rendered page must contain, e.g. the run's name.
    height: int = 1000  # Of the window, in pixels: a long page gets a tall one, to be seen whole.


def page_problems(dom: str, expected: tuple[str, ...]) -> list[str]:
    """What is wrong with a rendered page: error phrases it shows, expected texts it lacks."""
    text = html.unescape(re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S | re.I)))
    text = " ".join(text.split())
    lowered = text.lower()
    problems = [f"shows {phrase!r}" for phrase in ERROR_PHRASES if phrase in lowered]
    problems += [f"does not show {wanted!r}" for wanted in expected if wanted.lower() not in lowered]
    return problems


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise FileNotFoundError("no chromium on PATH; install it with `apt-get update && apt-get install -y chromium`")


def render(chromium: str, url: str, screenshot: Path, height: int = 1000) -> str:
    """Saves a screenshot of `url` and returns its rendered DOM (two runs, each with a fresh profile)."""
    outputs = []
    for action in (f"--screenshot={screenshot}", "--dump-dom"):
        with tempfile.TemporaryDirectory(prefix="xfer-chromium-") as profile:
            command = [
                chromium, *CHROMIUM_FLAGS, f"--window-size={WINDOW_WIDTH},{height}", f"--user-data-dir={profile}",
                f"--virtual-time-budget={RENDER_BUDGET_MS}", action, url,
            ]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"chromium failed on {url} ({done.returncode}): {done.stderr[-2000:]}")
        outputs.append(done.stdout)
    if not screenshot.exists():
        raise RuntimeError(f"chromium wrote no screenshot for {url}")
    return outputs[1]


def pages(tracking_uri: str) -> list[Page]:
    """The run list, the latest run, the artifacts of the run that trained its model (the latest run itself, or
    the one its `trained_in_run` tag names when its Trainer came from the cache) and the latest registered
    version, from the store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment_id = ui.latest_experiment_id(tracking_uri)
    if experiment_id is None:
        raise RuntimeError("the store has no run; run the pipeline first")
    (run,) = client.search_runs([experiment_id], max_results=1, order_by=["attributes.start_time DESC"])
    run_page = f"#/experiments/{experiment_id}/runs/{run.info.run_id}"
    # The query keeps MLflow's sidebar on model training; without it a run page shows the GenAI one.
    training = "?workflowType=machine_learning"
    datasets = tuple(item.dataset.name for item in (run.inputs.dataset_inputs if run.inputs else []))
    # A cached run points at the run that trained (curves, report) instead of logging them again.
    trained_id = run.data.tags.get(TRAINED_IN_RUN_TAG, run.info.run_id)
    if trained_id == "unknown":
        raise RuntimeError(f"run {run.info.run_name!r} does not know which run trained its model")
    trained_page = f"#/experiments/{experiment_id}/runs/{trained_id}"
    found = [
        Page("1_runs", ui.training_view(experiment_id), (run.info.run_name,)),
        # The description (its "Nodes" line) and the dataset input are what a run page must show besides tags.
        Page("2_run", run_page + training, (run.info.run_name, "outcome", "Nodes", *datasets), height=2400),
        Page("3_artifacts", f"{trained_page}/artifacts{training}", ("report", "evaluation", "ingest", "training")),
    ]
    artifacts = {item.path for item in client.list_artifacts(trained_id, "report")}
    if "report/statistics.html" in artifacts:
        # MLflow shows an HTML artifact in a sandboxed iframe, which the DOM dump does not include: the page
        # is judged by MLflow's frame around it here, and by its screenshot.
        found.append(Page(
            "4_statistics", f"{trained_page}/artifactPath/report/statistics.html{training}",
            ("report/statistics.html",), height=1400,
        ))  # fmt: skip
    models = client.search_registered_models()
    if models:
        name = models[0].name
        versions = client.search_model_versions(f"name='{name}'")
        latest = max(versions, key=lambda version: int(version.version))
        found.append(
            Page("5_model_version", f"#/models/{name}/versions/{latest.version}", (name, "Model card"), height=2400)
        )
        # The version's metrics are on its logged model's page (MLflow 3 links the version to it).
        model_id = latest.source.removeprefix("models:/")
        logged = client.get_logged_model(model_id)
        found.append(Page(
            "6_logged_model", f"#/experiments/{logged.experiment_id}/models/{model_id}{training}",
            ("eval_accuracy", "train_loss"), height=2400,
        ))  # fmt: skip
    return found


def check(workspace: Path, out: Path, port: int) -> list[str]:
    """Renders every page into `out`; returns the problems found (none when the UI reads right)."""
    chromium = chromium_binary()
    out.mkdir(parents=True, exist_ok=True)
    problems = []
    with ui.serve(workspace, port):
        base = f"http://{ui.HOST}:{port}/"
        for page in pages(ui.store_uri(workspace)):
            screenshot = out / f"{page.name}.png"
            dom = render(chromium, base + page.fragment, screenshot, page.height)
            (out / f"{page.name}.html").write_text(dom)
            found = page_problems(dom, page.expected)
            print(f"{page.name:<16} {'ok' if not found else '; '.join(found):<40} {screenshot}", flush=True)
            problems += [f"{page.name}: {problem}" for problem in found]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ui_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", default="workspace", help="workspace with mlflow.db (default ./workspace)")
    parser.add_argument("--out", help="folder for the screenshots (default WORKSPACE/ui-check)")
    parser.add_argument("--port", type=int, default=5055, help="port for the UI under test (default 5055)")
    args = parser.parse_args(argv)
    workspace = Path(args.workspace).resolve()
    problems = check(workspace, Path(args.out) if args.out else workspace / "ui-check", args.port)
    if problems:
        print("ui-check failed:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print("ui-check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
