"""The report's view of the network itself: its summary, and Grad-CAM heatmaps of a few eval images."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tf_keras

from components.trainer import model as model_lib
from components.transform import features as features_lib
from pipeline.tracking.report import plots
from pipeline.tracking.report.inputs import RunForReport

GRAD_CAM_IMAGES = 4


def load_trained_model(model_dir: str) -> tf_keras.Model:
    """The trained network, differentiable, for Grad-CAM and the summary: the pushed SavedModel itself, reloaded
    by Keras (components/trainer/model.py registers the layers it is made of)."""
    return tf_keras.models.load_model(model_dir, compile=False)


def model_inputs(serving_model, keras_model: tf_keras.Model, serialized: Sequence[bytes]) -> dict[str, tf.Tensor]:
    """What the network is fed for raw eval examples: the SavedModel's own `transformed_inputs` signature, the
    parsing, Transform graph and image decoding that serving applies before the network."""
    transformed = serving_model.signatures["transformed_inputs"](examples=tf.constant(list(serialized)))
    return {name: transformed[name] for name in keras_model.input.keys()}


def model_summary(run: RunForReport, out: str) -> list[str]:
    with open(os.path.join(out, "model_summary.txt"), "w") as handle:
        handle.write(plots.model_summary(run.network()))
    return ["model_summary.txt"]


def grad_cam(run: RunForReport, out: str) -> list[str]:
    keras_model = run.network()
    scored = run.scored_eval_if_any()
    if scored is None:
        raise RuntimeError("no eval scores (see the eval plots failure), so no Grad-CAM")
    chosen = scored.serialized[:GRAD_CAM_IMAGES]
    inputs = model_inputs(scored.serving_model, keras_model, chosen)
    # Grad-CAM explains the network it is given; check that it is the one serving answers with.
    served = scored.serving_model.signatures["serving_default"](examples=tf.constant(chosen))
    reloaded = keras_model(inputs, training=False)[model_lib.PROBABILITIES]
    difference = float(np.max(np.abs(served["probabilities"].numpy() - reloaded.numpy())))
    if difference > 1e-4:
        raise RuntimeError(f"the Keras network differs from the served model (probabilities by {difference:.3g})")
    heatmaps, explained = plots.grad_cam(keras_model, inputs)
    scores = scored.scores
    titles = [f"true {scores.true_labels[i]}, explains {scores.class_names[explained[i]]}" for i in range(len(chosen))]
    # The image the network saw (resized by Transform), so the heatmap lines up with its input.
    images = np.clip(inputs[features_lib.IMAGE].numpy(), 0, 255).astype(np.uint8)
    plots.plot_grad_cam(images, heatmaps, titles, os.path.join(out, "grad_cam.png"))
    return ["grad_cam.png"]
