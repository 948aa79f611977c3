import numpy as np
import pytest
import tensorflow as tf

from components.trainer import metrics

# Hand-computed cases: (box a, box b, IoU).
CASES = [
    ((0.0, 0.0, 1.0, 1.0), (0.0, 0.0, 1.0, 1.0), 1.0),
    ((0.0, 0.0, 0.5, 0.5), (0.5, 0.5, 1.0, 1.0), 0.0),  # Touching corners: no area in common.
    ((0.0, 0.0, 0.4, 0.4), (0.2, 0.2, 0.6, 0.6), 0.04 / (0.16 + 0.16 - 0.04)),
    ((0.0, 0.0, 1.0, 0.5), (0.0, 0.0, 0.5, 1.0), 0.25 / 0.75),
    ((0.1, 0.1, 0.3, 0.3), (0.0, 0.0, 1.0, 1.0), 0.04),  # One inside the other: ratio of areas.
    ((0.5, 0.5, 0.5, 0.9), (0.5, 0.5, 0.5, 0.9), 0.0),  # Degenerate (zero width): defined as 0, not NaN.
]


@pytest.mark.parametrize("box_a, box_b, expected", CASES)
def test_box_iou_matches_hand_computed_values(box_a, box_b, expected):
    assert metrics.box_iou(tf.constant([box_a]), tf.constant([box_b])).numpy()[0] == pytest.approx(expected, abs=1e-6)
    assert metrics.box_iou_numpy([box_a], [box_b])[0] == pytest.approx(expected, abs=1e-9)


def test_box_iou_is_symmetric_and_bounded_on_random_boxes():
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 1, (200, 2, 4))
    a = np.concatenate(
        [np.minimum(corners[:, 0, :2], corners[:, 0, 2:]), np.maximum(corners[:, 0, :2], corners[:, 0, 2:])], 1
    )
    b = np.concatenate(
        [np.minimum(corners[:, 1, :2], corners[:, 1, 2:]), np.maximum(corners[:, 1, :2], corners[:, 1, 2:])], 1
    )
    tf_iou = metrics.box_iou(tf.constant(a), tf.constant(b)).numpy()
    np.testing.assert_allclose(tf_iou, metrics.box_iou_numpy(a, b), atol=1e-5)
    np.testing.assert_allclose(tf_iou, metrics.box_iou(tf.constant(b), tf.constant(a)).numpy(), atol=1e-6)
    assert (tf_iou >= 0).all() and (tf_iou <= 1).all()


def test_box_iou_metric_averages_over_batches_with_weights():
    metric = metrics.BoxIoU()
    boxes_a = np.array([case[0] for case in CASES[:4]], dtype=np.float32)
    boxes_b = np.array([case[1] for case in CASES[:4]], dtype=np.float32)
    expected = np.array([case[2] for case in CASES[:4]])
    metric.update_state(boxes_a[:2], boxes_b[:2])
    metric.update_state(boxes_a[2:], boxes_b[2:])
    assert metric.result().numpy() == pytest.approx(expected.mean(), abs=1e-6)
    metric.reset_state()
    metric.update_state(boxes_a, boxes_b, sample_weight=np.array([0.0, 0.0, 1.0, 3.0]))
    assert metric.result().numpy() == pytest.approx((expected[2] + 3 * expected[3]) / 4, abs=1e-6)


def test_box_loss_is_zero_for_a_perfect_box_and_grows_with_the_error():
    truth = tf.constant([[0.2, 0.2, 0.6, 0.6]])
    losses = [float(metrics.make_box_loss()(truth, truth + shift).numpy()[0]) for shift in (0.0, 0.05, 0.1, 0.3)]
    assert losses[0] == pytest.approx(0.0, abs=1e-6)
    assert losses == sorted(losses) and losses[-1] > losses[1]


def test_center_sqrt_size_round_trips_to_the_same_corners():
    boxes = tf.constant([[0.1, 0.2, 0.3, 0.9], [0.0, 0.0, 1.0, 1.0], [0.45, 0.5, 0.5, 0.52]])
    encoded = metrics.corners_to_center_size(boxes, sqrt_size=True)
    np.testing.assert_allclose(encoded.numpy()[0], [0.2, 0.55, np.sqrt(0.2), np.sqrt(0.7)], atol=1e-6)
    decoded = metrics.center_size_to_corners(encoded, sqrt_size=True)
    np.testing.assert_allclose(decoded.numpy(), boxes.numpy(), atol=1e-6)


def test_sqrt_size_regression_weighs_an_error_more_on_a_small_box():
    """The same 0.02 widening costs the same in corner space whatever the box; with square-root sizes it costs
    more on a small box (0.05 wide) than on a large one (0.6 wide), as in YOLO."""
    truth = tf.constant([[0.1, 0.1, 0.15, 0.15], [0.1, 0.1, 0.7, 0.7]])
    widened = truth + tf.constant([[0.0, 0.0, 0.02, 0.0]])
    linear = metrics.box_regression_loss(truth, widened, sqrt_size=False).numpy()
    root = metrics.box_regression_loss(truth, widened, sqrt_size=True).numpy()
    assert linear[0] == pytest.approx(linear[1], rel=1e-5)
    assert root[0] > 2.5 * root[1]
    # And the whole loss (regression + 1 - IoU) is zero for a perfect box, in both parameterisations.
    for loss in (metrics.make_box_loss(), metrics.make_box_loss(sqrt_size=True)):
        assert loss(truth, truth).numpy() == pytest.approx([0.0, 0.0], abs=1e-5)
        assert (loss(truth, widened).numpy() > 0).all()


def test_giou_and_diou_match_their_definitions_on_hand_computed_boxes():
    """Disjoint unit squares side by side, (0,0)-(1,1) and (2,0)-(3,1), scaled by 0.1: IoU 0; the enclosing
    box is 3 by 1 of which 1 is uncovered, so GIoU = -1/3; the centres are 2 apart and the enclosing
    diagonal is sqrt(10), so DIoU = -4/10. Identical boxes score 1 in all three."""
    a = tf.constant([[0.0, 0.0, 0.1, 0.1], [0.2, 0.2, 0.6, 0.6]])
    b = tf.constant([[0.2, 0.0, 0.3, 0.1], [0.2, 0.2, 0.6, 0.6]])
    np.testing.assert_allclose(metrics.box_iou(a, b).numpy(), [0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(metrics.box_giou(a, b).numpy(), [-1 / 3, 1.0], atol=1e-6)
    np.testing.assert_allclose(metrics.box_diou(a, b).numpy(), [-0.4, 1.0], atol=1e-6)


def test_giou_and_diou_losses_still_pull_apart_boxes_together():
    """Where boxes do not overlap, 1 - IoU is flat; the GIoU and DIoU terms fall as the box moves closer."""
    truth = tf.constant([[0.0, 0.0, 0.1, 0.1]])
    for kind, term in (("giou", metrics.box_giou), ("diou", metrics.box_diou)):
        far, near = (term(truth, truth + [[shift, 0.0, shift, 0.0]]).numpy()[0] for shift in (0.5, 0.2))
        assert near > far, kind
        loss = metrics.make_box_loss(kind)
        assert loss.__name__ == f"box_loss_{kind}"
        assert loss(truth, truth).numpy() == pytest.approx([0.0], abs=1e-5)
    with pytest.raises(ValueError, match="unknown box IoU loss 'ciou'; choose one of iou, giou, diou"):
        metrics.make_box_loss("ciou")


def test_the_config_offers_exactly_the_iou_losses_the_trainer_builds():
    """`model.box_iou_loss` is checked when the config is parsed; a loss added to one list and not the other
    would pass the parse and fail in the Trainer, or never be offered."""
    import typing

    from pipeline import config

    offered = typing.get_args(typing.get_type_hints(config.ModelConfig)["box_iou_loss"])
    assert offered == metrics.IOU_LOSSES


@pytest.mark.parametrize("iou_loss", metrics.IOU_LOSSES)
@pytest.mark.parametrize("sqrt_size", [False, True])
def test_images_without_an_object_add_no_box_loss_and_no_nan(iou_loss, sqrt_size):
    """An empty image's true box is Transform's zeros; the loss is the mean over the images that have a box."""
    loss = metrics.make_box_loss(iou_loss, sqrt_size)
    boxed = tf.constant([[0.1, 0.1, 0.5, 0.6], [0.2, 0.3, 0.9, 0.8]])
    predicted = tf.Variable([[0.15, 0.1, 0.55, 0.6], [0.2, 0.2, 0.7, 0.8], [0.3, 0.3, 0.6, 0.6]])
    with_empty = tf.concat([boxed, tf.zeros([1, 4])], axis=0)
    with tf.GradientTape() as tape:
        per_image = loss(with_empty, predicted)
        mean = tf.reduce_mean(per_image)
    gradient = tape.gradient(mean, predicted)
    assert per_image.numpy()[2] == 0.0
    alone = loss(boxed, predicted[:2])
    # Keras averages over the batch: with the empty image the mean is still the mean over the boxed two.
    assert float(tf.reduce_mean(per_image)) == pytest.approx(float(tf.reduce_mean(alone)), rel=1e-6)
    assert np.all(np.isfinite(gradient.numpy())) and np.all(gradient.numpy()[2] == 0.0)


def test_the_iou_metric_leaves_images_without_an_object_out():
    metric = metrics.BoxIoU()
    truth = tf.constant([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0]])
    predicted = tf.constant([[0.0, 0.0, 0.5, 0.5], [0.2, 0.2, 0.4, 0.4]])
    metric.update_state(truth, predicted)
    assert float(metric.result()) == pytest.approx(1.0)
    assert list(metrics.has_box(truth).numpy()) == [1.0, 0.0]
