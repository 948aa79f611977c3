"""Box-aware augmentation of training batches: the box is transformed with the image.

It runs in the Trainer's input pipeline, on the train split only: done in Transform it would be applied once
and frozen into the materialised examples, instead of differently every epoch.
"""

from __future__ import annotations

import tensorflow as tf

from components.trainer.settings import AugmentConfig


def augment_batch(
    images: tf.Tensor, boxes: tf.Tensor, settings: AugmentConfig, seed: tf.Tensor | None = None
) -> tuple[tf.Tensor, tf.Tensor]:
    """[N, S, S, 3] pixels (0..255) and [N, 4] (xmin, ymin, xmax, ymax) fractions -> the same, augmented.

    Each example independently: a horizontal flip with probability 1/2, a random zoom into a square window of
    side 1 - zoom .. 1 (the box is re-expressed in that window and clipped to it), and a brightness shift of up
    to +-brightness (in pixel levels).
    """
    count = tf.shape(images)[0]
    size = tf.shape(images)[1:3]
    dtype = images.dtype
    pixels = tf.cast(images, tf.float32)
    boxes = tf.cast(boxes, tf.float32)
    seeds = tf.random.split(seed if seed is not None else tf.random.uniform([2], 0, 2**31 - 1, tf.int64), 3)
    if settings.flip:
        flip = tf.random.stateless_uniform([count], seeds[0]) < 0.5
        pixels = tf.where(flip[:, None, None, None], tf.reverse(pixels, axis=[2]), pixels)
        flipped = tf.stack([1 - boxes[:, 2], boxes[:, 1], 1 - boxes[:, 0], boxes[:, 3]], axis=1)
        boxes = tf.where(flip[:, None], flipped, boxes)
    if settings.zoom > 0:
        random = tf.random.stateless_uniform([count, 3], seeds[1])
        side = 1.0 - settings.zoom * random[:, 0]
        x0, y0 = random[:, 1] * (1 - side), random[:, 2] * (1 - side)
        windows = tf.stack([y0, x0, y0 + side, x0 + side], axis=1)  # crop_and_resize wants (y1, x1, y2, x2).
        pixels = tf.image.crop_and_resize(pixels, windows, tf.range(count), size)
        offset = tf.stack([x0, y0, x0, y0], axis=1)
        boxes = tf.clip_by_value((boxes - offset) / side[:, None], 0.0, 1.0)
    if settings.brightness > 0:
        shift = tf.random.stateless_uniform([count, 1, 1, 1], seeds[2], -settings.brightness, settings.brightness)
        pixels = pixels + shift
    pixels = tf.clip_by_value(tf.round(pixels), 0, 255)
    return tf.cast(pixels, dtype), boxes
