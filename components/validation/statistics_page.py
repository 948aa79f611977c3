"""The statistics page: TFDV's statistics of each split (and the anomalies, when given) as one static HTML page.

`xfer validate` writes it for a dataset folder and every run's report logs it to MLflow. `facets_html` is TFDV's
own interactive view, which needs its CDN.
"""

from __future__ import annotations

import html
import os

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import statistics_pb2

from components.validation import statistics as statistics_lib

STATISTICS_FILE = "statistics.html"
# TFDV's interactive page, beside the static one: it needs the network for its scripts.
FACETS_FILE = "statistics_facets.html"


def write_pages(
    folder: str, statistics: dict[str, statistics_pb2.DatasetFeatureStatisticsList], anomalies: list[str] | None
) -> list[str]:
    """Writes the static page and TFDV's Facets page into `folder` (`xfer validate`'s reports/, a run report's
    folder); returns their file names."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, STATISTICS_FILE), "w") as handle:
        handle.write(statistics_html(statistics, anomalies))
    with open(os.path.join(folder, FACETS_FILE), "w") as handle:
        handle.write(facets_html(statistics))
    return [STATISTICS_FILE, FACETS_FILE]


def facets_html(statistics: dict[str, statistics_pb2.DatasetFeatureStatisticsList]) -> str:
    """TFDV's interactive Facets overview; Facets compares two splits side by side: train and eval when both
    are there (the data the model fit and the data the gates judge).

    It loads its scripts from a CDN, so it is blank offline: `statistics_html` is the page that always works."""
    names = sorted(statistics, key=lambda name: (name != "train", name != "eval"))
    if len(names) == 1:
        return tfdv.utils.display_util.get_statistics_html(statistics[names[0]], lhs_name=names[0])
    return tfdv.utils.display_util.get_statistics_html(
        statistics[names[0]], statistics[names[1]], lhs_name=names[0], rhs_name=names[1]
    )


_TOP_VALUES = 5
_HISTOGRAM_WIDTH, _HISTOGRAM_HEIGHT = 160, 36
_PAGE_STYLE = """
body { font-family: sans-serif; font-size: 13px; margin: 1em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border-bottom: 1px solid #ddd; padding: 2px 6px; text-align: left; vertical-align: middle; }
th { background: #f3f3f3; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
.warn { color: #b00020; }
.ok { color: #1b5e20; }
"""


_SPLIT_ORDER = ("train", "val", "eval")  # As the data flows: fit, watch, judge; any other split after them.


def _split_order(name: str) -> tuple[int, str]:
    return (_SPLIT_ORDER.index(name) if name in _SPLIT_ORDER else len(_SPLIT_ORDER), name)


def statistics_html(
    statistics: dict[str, statistics_pb2.DatasetFeatureStatisticsList], anomalies: list[str] | None = None
) -> str:
    """A self-contained page: each split's example count, the anomalies, and one row per feature and split
    (numeric features with their histogram as inline SVG, categorical and byte features with their top values).
    No script and nothing fetched, so it renders offline and in MLflow's viewer.

    `anomalies` are the plain lines of validation_gate.anomaly_lines; an empty list says "0 anomalies", None
    says that they could not be read (the section is there either way).
    """
    names = sorted(statistics, key=_split_order)
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Data statistics</title>",
        f"<style>{_PAGE_STYLE}</style></head><body><h1>Data statistics</h1>",
    ]
    counts = ", ".join(f"{name}: {_dataset(statistics[name]).num_examples} examples" for name in names)
    parts.append(f"<p>{html.escape(counts)}</p>")
    parts.append(_anomalies_section(anomalies))
    numeric_rows, string_rows = [], []
    features = sorted({name for split in names for name in statistics_lib.feature_statistics(statistics[split])})
    for feature in features:
        for split in names:
            found = statistics_lib.feature_statistics(statistics[split]).get(feature)
            if found is None:
                continue
            kind = found.WhichOneof("stats")
            if kind == "num_stats":
                numeric_rows.append(_numeric_row(feature, split, found, _dataset(statistics[split]).num_examples))
            elif kind in ("string_stats", "bytes_stats"):
                string_rows.append(_string_row(feature, split, found, _dataset(statistics[split]).num_examples))
    parts.append("<h2>Numeric features</h2>")
    parts.append(
        _table(
            ("feature", "split", "count", "missing", "mean", "std dev", "zeros", "min", "median", "max", "histogram"),
            numeric_rows,
        )
    )
    parts.append("<h2>Categorical and byte features</h2>")
    parts.append(_table(("feature", "split", "count", "missing", "unique", "top values", "avg length"), string_rows))
    parts.append("</body></html>")
    return "".join(parts)


def _dataset(statistics: statistics_pb2.DatasetFeatureStatisticsList) -> statistics_pb2.DatasetFeatureStatistics:
    return statistics.datasets[0] if statistics.datasets else statistics_pb2.DatasetFeatureStatistics()


def _anomalies_section(anomalies: list[str] | None) -> str:
    if anomalies is None:
        return "<h2>Anomalies</h2><p class='warn'>not available: the validation result could not be read.</p>"
    if not anomalies:
        return "<h2>Anomalies</h2><p class='ok'>0 anomalies: the data matches the schema.</p>"
    items = "".join(f"<li>{html.escape(line)}</li>" for line in anomalies)
    return f"<h2>Anomalies</h2><p class='warn'>{len(anomalies)} anomalies:</p><ul>{items}</ul>"


def _table(header: tuple[str, ...], rows: list[str]) -> str:
    if not rows:
        return "<p>none</p>"
    head = "".join(f"<th>{html.escape(name)}</th>" for name in header)
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _cells(*values: str, text_columns: tuple[int, ...] = (0, 1)) -> str:
    return "".join(
        f"<td>{value}</td>" if index in text_columns else f"<td class='number'>{value}</td>"
        for index, value in enumerate(values)
    )


def _missing(common: statistics_pb2.CommonStatistics, num_examples: int) -> str:
    share = common.num_missing / num_examples if num_examples else 0.0
    text = f"{share:.1%}"
    return f"<span class='warn'>{text}</span>" if common.num_missing else text


def _numeric_row(feature: str, split: str, found: statistics_pb2.FeatureNameStatistics, num_examples: int) -> str:
    stats = found.num_stats
    common = stats.common_stats
    zeros = stats.num_zeros / common.num_non_missing if common.num_non_missing else 0.0
    standard = next(
        (histogram for histogram in stats.histograms if histogram.type == statistics_pb2.Histogram.STANDARD), None
    )
    return (
        "<tr>"
        + _cells(
            html.escape(feature),
            html.escape(split),
            str(common.num_non_missing),
            _missing(common, num_examples),
            f"{stats.mean:.4g}",
            f"{stats.std_dev:.4g}",
            f"{zeros:.1%}",
            f"{stats.min:.4g}",
            f"{stats.median:.4g}",
            f"{stats.max:.4g}",
            histogram_svg(standard) if standard is not None else "",
        )
        + "</tr>"
    )


def _string_row(feature: str, split: str, found: statistics_pb2.FeatureNameStatistics, num_examples: int) -> str:
    if found.HasField("string_stats"):
        stats = found.string_stats
        unique = str(stats.unique)
        top = ", ".join(f"{html.escape(value.value)} ({value.frequency:g})" for value in stats.top_values[:_TOP_VALUES])
        if stats.unique > _TOP_VALUES:
            top += f" and {stats.unique - _TOP_VALUES} more"
        length = f"{stats.avg_length:.4g}"
    else:
        stats = found.bytes_stats
        unique, top, length = str(stats.unique), "(bytes)", f"{stats.avg_num_bytes:.4g} bytes"
    common = stats.common_stats
    return (
        "<tr>"
        + _cells(
            html.escape(feature),
            html.escape(split),
            str(common.num_non_missing),
            _missing(common, num_examples),
            unique,
            top,
            length,
            text_columns=(0, 1, 5),
        )
        + "</tr>"
    )


def histogram_svg(histogram: statistics_pb2.Histogram) -> str:
    """An inline SVG bar chart of a TFDV histogram's buckets, with the range under it."""
    counts = [bucket.sample_count for bucket in histogram.buckets]
    if not counts:
        return ""
    peak = max(counts) or 1.0
    width = _HISTOGRAM_WIDTH / len(counts)
    bars = "".join(
        f"<rect x='{index * width:.1f}' y='{_HISTOGRAM_HEIGHT * (1 - count / peak):.1f}' "
        f"width='{max(width - 1, 1):.1f}' height='{_HISTOGRAM_HEIGHT * count / peak:.1f}' fill='#4a7fb5'>"
        f"<title>{bucket.low_value:.4g} to "
        f"{bucket.high_value:.4g}: {count:.0f}</title></rect>"
        for index, (bucket, count) in enumerate(zip(histogram.buckets, counts, strict=True))
    )
    low, high = histogram.buckets[0].low_value, histogram.buckets[-1].high_value
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{_HISTOGRAM_WIDTH}' height='{_HISTOGRAM_HEIGHT + 12}' "
        f"role='img'>{bars}<text x='0' y='{_HISTOGRAM_HEIGHT + 11}' font-size='9'>{low:.4g}</text>"
        f"<text x='{_HISTOGRAM_WIDTH}' y='{_HISTOGRAM_HEIGHT + 11}' font-size='9' text-anchor='end'>{high:.4g}</text>"
        "</svg>"
    )
