"""The report's view of the data: ExampleValidator's anomalies, and TFDV's statistics of every split as a page."""

from __future__ import annotations

import os

from components.validation import gate as validation_gate
from components.validation import statistics_page
from pipeline.tracking.report.inputs import RunForReport


def anomalies_text(anomalies: list[str]) -> str:
    if not anomalies:
        return "0 anomalies: the data matches the schema.\n"
    return f"{len(anomalies)} anomalies:\n" + "".join(f"  {line}\n" for line in anomalies)


def anomalies(run: RunForReport, out: str) -> list[str]:
    with open(os.path.join(out, "anomalies.txt"), "w") as handle:
        handle.write(anomalies_text(run.anomalies()))
    return ["anomalies.txt"]


def statistics(run: RunForReport, out: str) -> list[str]:
    output = run.result.statistics
    loaded = validation_gate.load_split_statistics(output.uri, output.split_names())
    # The static page renders offline and inside MLflow's artifact viewer; Facets needs its CDN.
    return statistics_page.write_pages(out, loaded, run.anomalies_if_any())
