"""The served model's answers on the eval split beside the truth from the raw examples: what the report's
plots and the model card measure (IoU on the images with a box, accuracy per class, the no-object errors)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from components import names
from components.serving import contract
from components.trainer import metrics


@dataclasses.dataclass(frozen=True)
class EvalScores:
    """The served model's answers on the eval split, next to the truth from the raw examples."""

    class_names: tuple[str, ...]
    true_labels: tuple[str, ...]
    predicted_labels: tuple[str, ...]
    true_boxes: np.ndarray
    predicted_boxes: np.ndarray
    # False where the answer says there is no box (the no-object class); None from a model that does not say.
    predicted_has_box: np.ndarray | None = None

    @property
    def shown_predicted_boxes(self) -> np.ndarray:
        """The predicted boxes to draw: none (NaN) where the answer says the image holds nothing."""
        if self.predicted_has_box is None:
            return self.predicted_boxes
        return np.where(self.predicted_has_box[:, None], self.predicted_boxes, np.nan)

    @property
    def ious(self) -> np.ndarray:
        return metrics.box_iou_numpy(self.true_boxes, self.predicted_boxes)

    @property
    def boxed(self) -> np.ndarray:
        """The images with a true box: not those with no object in them (nor classification's, which have
        none at all). IoU is measured on these only, as the Evaluator's metric and gate do."""
        boxes = self.true_boxes
        finite = np.all(np.isfinite(boxes), axis=1)
        safe = np.where(finite[:, None], boxes, 0.0)
        return finite & (safe[:, 2] > safe[:, 0]) & (safe[:, 3] > safe[:, 1])

    def no_object_errors(self, no_object_class: str) -> dict[str, tuple[int, int]]:
        """How the model does on "is anything there": (wrong, out of) for `missed_object` (said
        `no_object_class` on an image with an object) and `false_object` (said a class on an empty image)."""
        truth, predicted = np.asarray(self.true_labels), np.asarray(self.predicted_labels)
        empty, said_empty = truth == no_object_class, predicted == no_object_class
        return {
            "missed_object": (int(np.sum(said_empty & ~empty)), int(np.sum(~empty))),
            "false_object": (int(np.sum(~said_empty & empty)), int(np.sum(empty))),
        }

    @property
    def accuracy(self) -> float:
        return float(np.mean(np.asarray(self.true_labels) == np.asarray(self.predicted_labels)))

    def per_class_accuracy(self) -> dict[str, tuple[int, float]]:
        """Class -> (eval images of that class, share predicted right)."""
        result = {}
        truth, predicted = np.asarray(self.true_labels), np.asarray(self.predicted_labels)
        for name in self.class_names:
            mask = truth == name
            result[name] = (int(mask.sum()), float(np.mean(predicted[mask] == name)) if mask.any() else float("nan"))
        return result


def truth_from_examples(serialized: Sequence[bytes]) -> tuple[list[str], np.ndarray]:
    """Labels and boxes of raw examples, as ImageExampleGen wrote them (box as fractions of the image)."""
    labels, boxes = [], []
    for record in serialized:
        feature = tf.train.Example.FromString(record).features.feature
        labels.append(feature["label"].bytes_list.value[0].decode())
        # Classification-only examples have no box: NaN corners, which no IoU plot is drawn from.
        boxes.append([feature[key].float_list.value[0] if key in feature else np.nan for key in names.BOX_CORNERS])
    return labels, np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def score_examples(serve, serialized: Sequence[bytes], batch_size: int = 32) -> EvalScores:
    """Runs raw serialized examples through a `serving_default` signature, in batches."""
    if not serialized:
        raise ValueError("no examples to score")
    labels, boxes = truth_from_examples(serialized)
    predicted, predicted_boxes, has_box, class_names = [], [], [], None
    for start in range(0, len(serialized), batch_size):
        batch = list(serialized[start : start + batch_size])
        served = contract.serve(serve, batch)
        predicted.extend(served.labels)
        predicted_boxes.append(served.boxes if served.boxes is not None else np.full((len(batch), 4), np.nan))
        has_box.append(served.has_box if served.has_box is not None else np.ones(len(batch), bool))
        class_names = class_names or served.class_names
    return EvalScores(
        class_names=class_names,
        true_labels=tuple(labels),
        predicted_labels=tuple(predicted),
        true_boxes=boxes,
        predicted_boxes=np.concatenate(predicted_boxes).astype(np.float64),
        predicted_has_box=np.concatenate(has_box),
    )
