"""TFX's Evaluator, comparing with the champion only when there is a different champion to compare with.

The baseline input is always wired (components/champion/component.py hands on the registry's champion), but:
- when the registry has no champion (the first run) the artifact holds no model: the Evaluator runs without a
  baseline, TFMA skips the change thresholds, and the log says the absolute gates alone decide;
- when the candidate *is* the champion (same files: a rerun whose Trainer came from the cache), comparing it
  with itself says nothing: absolute gates only, and the blessing says so, so the Pusher does not push the same
  model as a new version.
What was compared is recorded on the blessing (custom properties) and in `champion.json` beside the metrics.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Any

import tensorflow as tf
from tfx import types
from tfx.components.evaluator import component as evaluator_component
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import path_utils

from components.champion import component as champion_lib

COMPARISON_FILE = "champion.json"
# Custom properties of the blessing.
COMPARED_PROPERTY = "compared_with_champion"
IS_CHAMPION_PROPERTY = "candidate_is_champion"


@dataclasses.dataclass(frozen=True)
class Comparison:
    champion_version: str  # "" when there is no champion.
    compared: bool  # The change thresholds were checked against it.
    candidate_is_champion: bool
    note: str


def compare(candidate_model_dir: str, champion: types.Artifact | None) -> Comparison:
    """Whether to evaluate against `champion` (a ChampionModel output), and what the log should say."""
    version = champion.get_string_custom_property(champion_lib.VERSION_PROPERTY) if champion else ""
    if not version:
        note = champion.get_string_custom_property(champion_lib.NOTE_PROPERTY) if champion else "no champion given"
        return Comparison("", False, False, f"{note}: the absolute gates alone decide")
    if champion_lib.fingerprint(candidate_model_dir) == champion.get_string_custom_property(
        champion_lib.FINGERPRINT_PROPERTY
    ):
        return Comparison(
            version,
            False,
            True,
            f"the candidate is the champion (version {version}) itself: the absolute gates alone decide, and it "
            "will not be pushed again",
        )
    return Comparison(version, True, False, f"change gates against the champion, version {version}")


class Executor(evaluator_executor.Executor):
    """TFX's Evaluator executor; drops the baseline when `compare` says there is nothing to compare with."""

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        candidate = artifact_utils.get_single_instance(input_dict[standard_component_specs.MODEL_KEY])
        baselines = input_dict.get(standard_component_specs.BASELINE_MODEL_KEY) or []
        comparison = compare(
            path_utils.serving_model_path(candidate.uri, path_utils.is_old_model_artifact(candidate)),
            baselines[0] if baselines else None,
        )
        logging.info("Evaluator: %s", comparison.note)
        if not comparison.compared:
            input_dict = {k: v for k, v in input_dict.items() if k != standard_component_specs.BASELINE_MODEL_KEY}
        super().Do(input_dict, output_dict, exec_properties)
        evaluation = artifact_utils.get_single_instance(output_dict[standard_component_specs.EVALUATION_KEY])
        with tf.io.gfile.GFile(os.path.join(evaluation.uri, COMPARISON_FILE), "w") as handle:
            json.dump(dataclasses.asdict(comparison), handle, indent=1)
        blessing = artifact_utils.get_single_instance(output_dict[standard_component_specs.BLESSING_KEY])
        blessing.set_string_custom_property(champion_lib.VERSION_PROPERTY, comparison.champion_version)
        blessing.set_int_custom_property(COMPARED_PROPERTY, int(comparison.compared))
        blessing.set_int_custom_property(IS_CHAMPION_PROPERTY, int(comparison.candidate_is_champion))
        blessing.set_string_custom_property(champion_lib.NOTE_PROPERTY, comparison.note)


def load_comparison(evaluation_uri: str) -> Comparison | None:
    """What the Evaluator compared with; None for an evaluation written before xfer compared with champions."""
    path = os.path.join(evaluation_uri, COMPARISON_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as handle:
        return Comparison(**json.load(handle))


class ChampionEvaluator(evaluator_component.Evaluator):
    """`tfx.components.Evaluator` with the executor above; same inputs, outputs and properties. Pipelines set
    the node id with `.with_id("Evaluator")`."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
