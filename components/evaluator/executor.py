"""TFX's Evaluator, comparing with the champion only when there is a different champion to compare with.

The baseline input is always wired (components/champion/component.py hands on the registry's champion), but:
- when the registry has no champion (the first run) the artifact holds no model: the Evaluator runs without a
  baseline, TFMA skips the change thresholds, and the log says the absolute gates alone decide;
- when the candidate *is* the champion (same files: a rerun whose Trainer came from the cache), comparing it
  with itself says nothing: absolute gates only, and the blessing says so, so the Pusher does not push the same
  model as a new version.
What was compared is recorded on the blessing (custom properties) and in `champion.json` beside the metrics
(`verdict.compare`, `verdict.record_comparison`).
"""

from __future__ import annotations

import logging
from typing import Any

from tfx import types
from tfx.components.evaluator import component as evaluator_component
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import path_utils

from components.evaluator import verdict


class Executor(evaluator_executor.Executor):
    """TFX's Evaluator executor; drops the baseline when `verdict.compare` says there is nothing to compare with."""

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        candidate = artifact_utils.get_single_instance(input_dict[standard_component_specs.MODEL_KEY])
        baselines = input_dict.get(standard_component_specs.BASELINE_MODEL_KEY) or []
        comparison = verdict.compare(
            path_utils.serving_model_path(candidate.uri, path_utils.is_old_model_artifact(candidate)),
            baselines[0] if baselines else None,
        )
        logging.info("Evaluator: %s", comparison.note)
        if not comparison.compared:
            input_dict = {k: v for k, v in input_dict.items() if k != standard_component_specs.BASELINE_MODEL_KEY}
        super().Do(input_dict, output_dict, exec_properties)
        evaluation = artifact_utils.get_single_instance(output_dict[standard_component_specs.EVALUATION_KEY])
        blessing = artifact_utils.get_single_instance(output_dict[standard_component_specs.BLESSING_KEY])
        verdict.record_comparison(comparison, evaluation.uri, blessing)


class ChampionEvaluator(evaluator_component.Evaluator):
    """`tfx.components.Evaluator` with the executor above; same inputs, outputs and properties. Pipelines set
    the node id with `.with_id("Evaluator")`."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
