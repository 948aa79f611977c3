"""The `evaluation:` config section: the gates a candidate must pass before it is pushed, and how to slice.

Imports nothing heavy: the config parses (and a bad one fails) before TensorFlow loads.
"""

from __future__ import annotations

import dataclasses

from components.settings import ConfigError


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    # Absolute gates: the model is blessed (and pushed) only when every one holds on the eval split.
    min_accuracy: float = 0.5
    min_iou: float = 0.3
    # Change gates against the current champion (the registry version with the alias `champion`): the
    # candidate's value minus the champion's must be at least this. -0.01 tolerates a drop of one point, 0 allows
    # no drop, a positive value demands a gain; null turns the gate off. The first run has no champion and is
    # held to the absolute gates only; so is a candidate that is the champion itself (nothing new to push).
    min_accuracy_change: float | None = -0.01
    min_iou_change: float | None = -0.01
    # A predicted box "hits" when its IoU with the true box is at least this; TFMA reports the hit rate.
    hit_iou: float = 0.5
    # Raw features to slice the evaluation by (each value gets its own metrics), besides the overall slice.
    slice_by: tuple[str, ...] = ()


def check_evaluation(evaluation: EvaluationConfig) -> None:
    """The gates' ranges, which types alone cannot express."""
    for key in ("min_accuracy", "min_iou"):
        value = getattr(evaluation, key)
        if not 0 <= value <= 1.01:
            raise ConfigError(f"evaluation.{key}: must be between 0 and 1.01, got {value}")
    for key in ("min_accuracy_change", "min_iou_change"):
        value = getattr(evaluation, key)
        # Both metrics lie in [0, 1], so a change outside [-1, 1] could never fail (or never pass); 1.01 is
        # allowed, as for the absolute gates, to make a gate that cannot pass on purpose.
        if value is not None and not -1 <= value <= 1.01:
            raise ConfigError(f"evaluation.{key}: must be between -1 and 1.01 (or null for no gate), got {value}")
