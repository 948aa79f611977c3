"""How a pipeline run reads in the MLflow UI: its name, its tags, metric and param names, the gate table.

Plain functions over plain values (no TensorFlow, no MLflow client), so that the local runner and the Kubeflow
pods name things the same way, and so that each rule is tested on its own.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from components import mlflow_tags, names
from components.evaluator import verdict
from components.transform import kinds

# A run whose Trainer came from the cache names, in this tag, the run that trained the model (its curves, report).
TRAINED_IN_RUN_TAG = mlflow_tags.TRAINED_IN_RUN

# A tag value longer than this is cut in the run list and on the run page; longer values go to artifacts.
TAG_LIMIT = 40
# MLflow accepts letters, digits, `_ - . / ` and spaces in metric names.
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /]")
# Keys of a feature's config that its kind reads (components/transform/kinds.py); the others are unused
# defaults and are not logged as params.
FEATURE_KEYS = {name: kind.keys for name, kind in kinds.KINDS.items()}
# Where a feature's value comes from (components/transform/derive.py), for any kind; logged when set.
DERIVATION_KEYS = ("source", "derive", "cyclical")
# Config sections that only one runner reads.
RUNNER_SECTIONS = {"local": ("kubeflow",), "kubeflow": ("beam_args",)}
OUTCOME_WORDS = {
    "pushed": "pushed",
    "already_champion": "kept champion",
    "blocked_by_gate": "blocked by gate",
    "failed": "failed",
    "running": "running",
}


def safe_metric_part(text: str) -> str:
    return _UNSAFE.sub("_", text)


def eval_metric_name(output: str, metric: str, class_names: Sequence[str] = ()) -> str | None:
    """MLflow's name for one TFMA metric (`metric` as `metrics_by_slice` keys it: "box_iou",
    "precision/classId_3", "sparse_categorical_accuracy_diff"); None for one not worth a second name.

    One name per value: the overall accuracy is `eval_accuracy`, not also
    `eval_probabilities_sparse_categorical_accuracy`; a class is named by its label, not its index."""
    diff = metric.endswith(verdict.DIFF_SUFFIX)
    base = metric[: -len(verdict.DIFF_SUFFIX)] if diff else metric
    family, _, sub_key = base.partition("/")
    if (output, family) in verdict.METRIC_NAMES:
        name = verdict.METRIC_NAMES[(output, family)]
        if name is None:
            return None
    else:
        name = f"eval_{family}"
    if sub_key:
        name = f"{name}/{class_label(sub_key, class_names)}"
    return safe_metric_part(name + ("_change" if diff else ""))


def class_label(sub_key: str, class_names: Sequence[str]) -> str:
    """TFMA's "classId_3" (or "topK_1") -> the class's label from the label vocabulary, when known."""
    match = re.fullmatch(r"classId_(\d+)", sub_key)
    if match and int(match.group(1)) < len(class_names):
        return class_names[int(match.group(1))]
    return sub_key


def eval_metrics(values: Mapping[tuple[str, str], float], class_names: Sequence[str] = ()) -> dict[str, float]:
    """{(output, metric): value} of one slice -> {MLflow name: value}."""
    named: dict[str, float] = {}
    for (output, metric), value in values.items():
        name = eval_metric_name(output, metric, class_names)
        if name is not None:
            named[name] = value
    return named


def finite_or_none(value: Any) -> Any:
    """NaN and infinities (TFMA's precision of a class a slice never predicts) as None: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {key: finite_or_none(inner) for key, inner in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(inner) for inner in value]
    return value


def bucket_label(boundaries: Sequence[float], index: int) -> str:
    """Bucket `index` of `tft.apply_buckets(boundaries)`: "< 4", "4..8", ">= 20"."""
    if not boundaries:
        return f"bucket {index}"
    if index <= 0:
        return f"< {boundaries[0]:g}"
    if index >= len(boundaries):
        return f">= {boundaries[-1]:g}"
    return f"{boundaries[index - 1]:g}..{boundaries[index]:g}"


def slice_value_label(feature: Mapping[str, Any] | None, value: str, vocabulary: Sequence[str] | None) -> str:
    """A slice's value as TFMA sees it (the transformed feature: an id) -> what a person calls it.
    `feature` is the feature's config (None for a raw column), `vocabulary` its computed vocabulary."""
    if feature is None:
        return value
    try:
        index = int(value)
    except ValueError:
        return value
    kind = feature["kind"]
    if kind in ("vocabulary", "vocabulary_list"):
        known = vocabulary if kind == "vocabulary" else feature.get("vocabulary", ())
        known = known or ()
        return known[index] if 0 <= index < len(known) else f"(other {index - len(known)})"
    if kind == "bucketized" and not feature.get("quantiles"):
        return bucket_label(feature.get("boundaries", ()), index)
    if kind == "identity":
        return value if index < feature.get("num_buckets", 0) else "(out of range)"
    return f"{kind} bucket {index}"  # hash, crossed, quantile buckets: the id is all there is.


def slice_label(
    slice_key: Sequence[tuple[str, Any]],
    features: Mapping[str, Mapping[str, Any]],
    vocabularies: Callable[[str], Sequence[str] | None],
) -> str:
    """TFMA's slice key (((feature, value), ...)) -> "camera_id=cam_00", or "overall" for the empty key."""
    parts = []
    for feature, value in slice_key:
        text = value.decode() if isinstance(value, bytes) else str(value)
        config = features.get(feature)
        vocabulary = vocabularies(feature) if config and config["kind"] == "vocabulary" else None
        parts.append(f"{feature}={slice_value_label(config, text, vocabulary)}")
    return ",".join(parts) or "overall"


def params(flat: Mapping[str, str], config: Mapping[str, Any], runner: str) -> dict[str, str]:
    """The config's flattened params without those that do not apply: keys a feature's kind does not read, a
    feature's unset default, and the sections of the other runner."""
    skipped_sections = RUNNER_SECTIONS.get(runner, ())
    kinds = {feature["name"]: feature["kind"] for feature in config.get("features", ())}
    kept = {}
    for key, value in flat.items():
        section, _, rest = key.partition(".")
        if section in skipped_sections:
            continue
        if section == "features" and rest:
            name, _, field = rest.rpartition(".")
            kind = kinds.get(name)
            if kind is not None and field in DERIVATION_KEYS:
                if value == "":
                    continue  # Reads its own column as it is.
            elif kind is not None and field != "kind":
                if field not in FEATURE_KEYS.get(kind, ()) or (field == "default" and value == "None"):
                    continue
        kept[key] = value
    return kept


def short(value: str, limit: int = TAG_LIMIT, where: str = "") -> str:
    """A tag value that fits the run list; a cut one says where the whole value is."""
    if len(value) <= limit:
        return value
    tail = f"... (see {where})" if where else "..."
    return value[: max(limit - len(tail), 8)].rstrip() + tail


def node_summary(node_states: Mapping[str, str]) -> str:
    """Which nodes ran, in a few words: "all 10 ran", "all 10 cached", "ran Evaluator, Pusher (7 cached)"."""
    total = len(node_states)
    ran = [node for node, state in node_states.items() if state != "CACHED"]
    if len(ran) == total:
        return f"all {total} ran"
    if not ran:
        return f"all {total} cached"
    return f"ran {', '.join(ran)} ({total - len(ran)} cached)"


def run_name(
    outcome: str, data_name: str, started: datetime.datetime, node_states: Mapping[str, str] | None = None
) -> str:
    """What the run was, as the run list shows it: "pushed · sample · 12-02 09:14",
    "kept champion · 10/10 cached · sample · 12-02 09:30" when the model came from the cache.

    What tells runs apart comes first: MLflow's run list shows only the first ~24 characters of a name."""
    parts = [OUTCOME_WORDS.get(outcome, outcome)]
    states = node_states or {}
    if states.get(names.TRAINER) == "CACHED":
        cached = sum(state == "CACHED" for state in states.values())
        parts.append(f"{cached}/{len(states)} cached")
    parts += [data_name, started.strftime("%m-%d %H:%M")]
    return " · ".join(parts)


def data_name(data: str) -> str:
    """The dataset's short name: its folder's name ("data/sample" -> "sample", "s3://b/sets/cars/" -> "cars")."""
    return data.rstrip("/").rsplit("/", 1)[-1] or data


def format_gate_table(rows: Sequence[verdict.GateRow], note: str = "") -> str:
    """The table, then (when given) the sentence saying what the candidate was compared with."""

    lines = [f"{'gate':<16}{'threshold':<18}{'value':<10}{'champion':<10}{'change':<10}result"]
    for row in rows:
        lines.append(
            f"{row.metric:<16}{row.threshold:<18}{_number(row.value):<10}{_number(row.champion):<10}"
            f"{_number(row.change, '+'):<10}{'pass' if row.passed else 'FAIL'}"
        )
    if note:
        lines.append(f"champion: {note}")
    return "\n".join(lines)


def gate_table_markdown(rows: Sequence[verdict.GateRow]) -> str:
    """The gates as a Markdown table, for the run's description."""
    lines = ["| gate | kind | threshold | value | champion | change | result |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row.metric} | {row.kind} | `{row.threshold}` | {_number(row.value)} | "
            f"{_number(row.champion)} | {_number(row.change, '+')} | {'pass' if row.passed else '**FAIL**'} |"
        )
    return "\n".join(lines)


def _number(value: float | None, sign: str = "") -> str:
    return "-" if value is None else f"{value:{sign}.4f}"


def champion_comparison_tag(rows: Sequence[verdict.GateRow], comparison: verdict.Comparison) -> str:
    """ "v3: eval_accuracy +0.0100, eval_iou -0.0040", or why there was no comparison, in brief."""
    if not comparison.compared:
        if comparison.candidate_is_champion:
            return f"is champion v{comparison.champion_version}"
        return "no champion yet" if not comparison.champion_version else short(comparison.note)
    changes = [f"{row.metric} {row.change:+.4f}" for row in rows if row.kind == "change" and row.change is not None]
    return short(f"v{comparison.champion_version}: {', '.join(changes) or 'compared'}", limit=60)
