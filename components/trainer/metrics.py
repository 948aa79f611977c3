"""Box IoU: the loss term, the Keras/TFMA metric, and a numpy reference the tests compare them against.

Boxes are (xmin, ymin, xmax, ymax) as fractions of the image size.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras


def box_iou(boxes_a: tf.Tensor, boxes_b: tf.Tensor) -> tf.Tensor:
    """Row-wise IoU of two [N, 4] box tensors; 0 where the union is empty (degenerate boxes)."""
    intersection, union = _intersection_and_union(tf.cast(boxes_a, tf.float32), tf.cast(boxes_b, tf.float32))
    return tf.math.divide_no_nan(intersection, union)


def _area(boxes: tf.Tensor) -> tf.Tensor:
    return tf.maximum(0.0, boxes[:, 2] - boxes[:, 0]) * tf.maximum(0.0, boxes[:, 3] - boxes[:, 1])


def box_iou_numpy(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Reference IoU, written independently of the TF version."""
    boxes_a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    boxes_b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    result = np.zeros(len(boxes_a))
    for index, (a, b) in enumerate(zip(boxes_a, boxes_b, strict=True)):
        width = min(a[2], b[2]) - max(a[0], b[0])
        height = min(a[3], b[3]) - max(a[1], b[1])
        intersection = max(width, 0.0) * max(height, 0.0)
        union = max(a[2] - a[0], 0) * max(a[3] - a[1], 0) + max(b[2] - b[0], 0) * max(b[3] - b[1], 0) - intersection
        result[index] = intersection / union if union > 0 else 0.0
    return result


def corners_to_center_size(boxes: tf.Tensor, sqrt_size: bool = False) -> tf.Tensor:
    """(xmin, ymin, xmax, ymax) -> (cx, cy, w, h), or (cx, cy, sqrt w, sqrt h) with `sqrt_size`."""
    center = (boxes[:, :2] + boxes[:, 2:]) / 2
    size = tf.maximum(boxes[:, 2:] - boxes[:, :2], 0.0)
    # Floored: sqrt's gradient is infinite at 0, and a predicted box clipped to zero width must not give NaN.
    return tf.concat([center, tf.sqrt(tf.maximum(size, 1e-6)) if sqrt_size else size], axis=1)


def center_size_to_corners(center_and_size: tf.Tensor, sqrt_size: bool = False) -> tf.Tensor:
    """(cx, cy, w, h) in 0..1 (or square-root sizes) -> (xmin, ymin, xmax, ymax) clipped to the image."""
    center, size = center_and_size[:, :2], center_and_size[:, 2:]
    if sqrt_size:
        size = tf.square(size)
    return tf.clip_by_value(tf.concat([center - size / 2, center + size / 2], axis=1), 0.0, 1.0)


def box_regression_loss(y_true: tf.Tensor, y_pred: tf.Tensor, sqrt_size: bool) -> tf.Tensor:
    """Smooth L1 per box: on the corners, or with `sqrt_size` on (cx, cy, sqrt w, sqrt h), where the same
    error in width costs more on a small box than on a large one (YOLO's parameterisation)."""
    if sqrt_size:
        y_true, y_pred = corners_to_center_size(y_true, True), corners_to_center_size(y_pred, True)
    # Keras's Huber, a mean over the four coordinates, computes in floatx (float32): what `make_box_loss` has
    # cast both to already, under mixed precision too. Scaled by 1/delta so that an error of one box-width
    # costs about as much as losing all overlap.
    return tf_keras.losses.huber(y_true, y_pred, delta=0.1) / 0.1


def box_giou(boxes_a: tf.Tensor, boxes_b: tf.Tensor) -> tf.Tensor:
    """Generalised IoU (Rezatofighi et al. 2019): IoU minus the share of the smallest enclosing box that
    neither box covers. In -1..1; unlike IoU it still has a gradient when the boxes do not overlap."""
    boxes_a, boxes_b = tf.cast(boxes_a, tf.float32), tf.cast(boxes_b, tf.float32)
    intersection, union = _intersection_and_union(boxes_a, boxes_b)
    enclosing = _area(
        tf.concat([tf.minimum(boxes_a[:, :2], boxes_b[:, :2]), tf.maximum(boxes_a[:, 2:], boxes_b[:, 2:])], 1)
    )
    return tf.math.divide_no_nan(intersection, union) - tf.math.divide_no_nan(enclosing - union, enclosing)


def box_diou(boxes_a: tf.Tensor, boxes_b: tf.Tensor) -> tf.Tensor:
    """Distance IoU (Zheng et al. 2020): IoU minus the squared distance of the centres over the squared
    diagonal of the smallest enclosing box. It pulls the centres together directly, which GIoU does only
    once the enclosing box has shrunk."""
    boxes_a, boxes_b = tf.cast(boxes_a, tf.float32), tf.cast(boxes_b, tf.float32)
    intersection, union = _intersection_and_union(boxes_a, boxes_b)
    centres = (boxes_a[:, :2] + boxes_a[:, 2:]) / 2 - (boxes_b[:, :2] + boxes_b[:, 2:]) / 2
    corner_span = tf.maximum(boxes_a[:, 2:], boxes_b[:, 2:]) - tf.minimum(boxes_a[:, :2], boxes_b[:, :2])
    diagonal = tf.reduce_sum(tf.square(corner_span), axis=1)
    distance = tf.reduce_sum(tf.square(centres), axis=1)
    return tf.math.divide_no_nan(intersection, union) - tf.math.divide_no_nan(distance, diagonal)


def _intersection_and_union(boxes_a: tf.Tensor, boxes_b: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    inter_w = tf.maximum(0.0, tf.minimum(boxes_a[:, 2], boxes_b[:, 2]) - tf.maximum(boxes_a[:, 0], boxes_b[:, 0]))
    inter_h = tf.maximum(0.0, tf.minimum(boxes_a[:, 3], boxes_b[:, 3]) - tf.maximum(boxes_a[:, 1], boxes_b[:, 1]))
    intersection = inter_w * inter_h
    return intersection, _area(boxes_a) + _area(boxes_b) - intersection


_IOU_TERMS = {"iou": box_iou, "giou": box_giou, "diou": box_diou}
# model.box_iou_loss; tests/components/trainer/test_metrics.py checks the config offers the same.
IOU_LOSSES = tuple(_IOU_TERMS)


def make_box_loss(iou_loss: str = "iou", sqrt_size: bool = False):
    """The box loss: smooth L1 (on the corners, or with `sqrt_size` on square-root sizes) plus 1 - the
    chosen member of the IoU family (`model.box_iou_loss`).

    The L1 term gives a gradient even when the boxes do not overlap (where IoU is flat at 0); the IoU term
    optimises what the gate measures.
    """
    if iou_loss not in _IOU_TERMS:
        raise ValueError(f"unknown box IoU loss {iou_loss!r}; choose one of {', '.join(IOU_LOSSES)}")
    overlap = _IOU_TERMS[iou_loss]

    def loss(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        y_true = tf.cast(tf.reshape(y_true, [-1, 4]), tf.float32)
        y_pred = tf.cast(tf.reshape(y_pred, [-1, 4]), tf.float32)
        # Images with no object (ingest.no_object: keep) have no true box: they add nothing, and Keras's mean
        # over the batch is rescaled to a mean over the images that have one. Their zero box is swapped for a
        # whole-image one first, so that no term (a square root, a division by an area) meets a zero and
        # sends a NaN through the mask into the gradients.
        present = has_box(y_true)
        y_true = tf.where(present[:, None] > 0, y_true, tf.constant([[0.0, 0.0, 1.0, 1.0]]))
        per_box = box_regression_loss(y_true, y_pred, sqrt_size) + (1.0 - overlap(y_true, y_pred))
        scale = tf.cast(tf.size(present), tf.float32) / tf.maximum(tf.reduce_sum(present), 1.0)
        return per_box * present * scale

    loss.__name__ = f"box_loss_{iou_loss}{'_sqrt' if sqrt_size else ''}"
    return loss


def has_box(boxes: tf.Tensor) -> tf.Tensor:
    """1.0 where a [N, 4] box (xmin, ymin, xmax, ymax) has an area, 0.0 where it has none: an image without an
    object carries no box, which Transform fills with zeros (a real box is checked to have an area at ingest;
    one that a crop left outside the image has none either, and is skipped alike)."""
    boxes = tf.reshape(tf.cast(boxes, tf.float32), [-1, 4])
    return tf.cast((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]), tf.float32)


@tf_keras.utils.register_keras_serializable(package="xfer")
class BoxIoU(tf_keras.metrics.Metric):
    """Mean IoU between true and predicted boxes; a tf_keras Metric so TFMA can compute it too.

    It is a weighted mean over boxes of `score(iou)`; subclasses average another per-box score. Images
    with no true box (no object in them) are left out, so the IoU gate holds the images that have one.
    """

    def __init__(self, name: str = "box_iou", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.total = self.add_weight(name="total", initializer="zeros")
        self.count = self.add_weight(name="count", initializer="zeros")

    def score(self, iou: tf.Tensor) -> tf.Tensor:
        return iou

    def update_state(self, y_true, y_pred, sample_weight=None):
        scores = self.score(box_iou(tf.reshape(y_true, [-1, 4]), tf.reshape(y_pred, [-1, 4])))
        if sample_weight is None:
            weights = tf.ones_like(scores)
        else:
            weights = tf.broadcast_to(tf.reshape(tf.cast(sample_weight, tf.float32), [-1]), tf.shape(scores))
        weights = weights * has_box(y_true)
        self.total.assign_add(tf.reduce_sum(scores * weights))
        self.count.assign_add(tf.reduce_sum(weights))

    def result(self):
        return tf.math.divide_no_nan(self.total, self.count)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)


@tf_keras.utils.register_keras_serializable(package="xfer")
class BoxHitRate(BoxIoU):
    """Share of predicted boxes whose IoU with the true box is at least `iou_threshold`."""

    def __init__(self, iou_threshold: float = 0.5, name: str = "box_hit_rate", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.iou_threshold = float(iou_threshold)

    def score(self, iou):
        return tf.cast(iou >= self.iou_threshold, tf.float32)

    def get_config(self):
        return {**super().get_config(), "iou_threshold": self.iou_threshold}
