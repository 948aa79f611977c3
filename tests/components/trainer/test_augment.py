"""Property test: whatever the draw, the augmented box still frames the (augmented) object."""

import numpy as np
import pytest
import tensorflow as tf

from components.trainer import augment
from pipeline import config as config_lib

SIZE = 64


def _scene(rng, count):
    """Black images, each with one white rectangle; returns the images and the rectangles as fractions."""
    images = np.zeros((count, SIZE, SIZE, 3), np.int64)
    boxes = []
    for index in range(count):
        width, height = rng.integers(12, 40, 2)
        x0, y0 = rng.integers(0, SIZE - width), rng.integers(0, SIZE - height)
        images[index, y0 : y0 + height, x0 : x0 + width] = 255
        boxes.append([x0 / SIZE, y0 / SIZE, (x0 + width) / SIZE, (y0 + height) / SIZE])
    return images, np.array(boxes, np.float32)


def _bright_box(image):
    bright = np.argwhere(image[..., 0] > 127)
    if len(bright) == 0:
        return None
    (ymin, xmin), (ymax, xmax) = bright.min(axis=0), bright.max(axis=0) + 1
    return np.array([xmin, ymin, xmax, ymax]) / SIZE


@pytest.mark.parametrize("seed", range(5))
def test_boxes_follow_the_object_under_flip_zoom_and_brightness(seed):
    rng = np.random.default_rng(seed)
    images, boxes = _scene(rng, 16)
    settings = config_lib.AugmentConfig(flip=True, zoom=0.3, brightness=20.0)
    out_images, out_boxes = augment.augment_batch(
        tf.constant(images), tf.constant(boxes), settings, seed=tf.constant([seed, 1], tf.int64)
    )
    out_images, out_boxes = out_images.numpy(), out_boxes.numpy()
    assert out_images.dtype == np.int64 and out_images.min() >= 0 and out_images.max() <= 255
    checked = 0
    for image, box in zip(out_images, out_boxes, strict=True):
        found = _bright_box(image)
        if found is None:  # Zoomed entirely off the object: the box must then be degenerate.
            assert (box[2] - box[0]) * (box[3] - box[1]) < 0.02
            continue
        # Resampling blurs edges by about a pixel (plus the zoom's scale).
        np.testing.assert_allclose(box, found, atol=2.5 / SIZE / 0.7)
        checked += 1
    assert checked >= 12


def test_flip_alone_mirrors_the_box_exactly():
    images, boxes = _scene(np.random.default_rng(9), 32)
    settings = config_lib.AugmentConfig(flip=True)
    out_images, out_boxes = augment.augment_batch(
        tf.constant(images), tf.constant(boxes), settings, seed=tf.constant([3, 4], tf.int64)
    )
    mirrored = np.stack([1 - boxes[:, 2], boxes[:, 1], 1 - boxes[:, 0], boxes[:, 3]], axis=1)
    flipped = np.isclose(out_boxes.numpy(), mirrored).all(axis=1)
    unchanged = np.isclose(out_boxes.numpy(), boxes).all(axis=1)
    assert (flipped | unchanged).all() and 4 < flipped.sum() < 28  # About half flip.
    for image, box in zip(out_images.numpy(), out_boxes.numpy(), strict=True):
        np.testing.assert_allclose(_bright_box(image), box, atol=1e-6)


def test_same_seed_same_draw():
    images, boxes = _scene(np.random.default_rng(1), 4)
    settings = config_lib.AugmentConfig(flip=True, zoom=0.2, brightness=10.0)
    first = augment.augment_batch(tf.constant(images), tf.constant(boxes), settings, seed=tf.constant([1, 2], tf.int64))
    second = augment.augment_batch(
        tf.constant(images), tf.constant(boxes), settings, seed=tf.constant([1, 2], tf.int64)
    )
    np.testing.assert_array_equal(first[0].numpy(), second[0].numpy())
    np.testing.assert_array_equal(first[1].numpy(), second[1].numpy())
