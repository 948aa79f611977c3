"""Tiny stand-ins for what the Evaluator reads, so TFMA and the gates run for real in seconds.

- `write_eval_examples`: GZIP TFRecords of raw `tf.Example`s in an Examples artifact's `Split-eval` layout,
  with the true label and box, a camera id to slice by, and a per-example `difficulty` in [0, 1).
- `tiny_model`: a SavedModel with xfer's contract (`serving_default` and `transform_features` on serialized raw
  examples, components/trainer/export.py). Its predictions are fixed by construction: the class is right exactly when
  `difficulty < skill`, and the box is the true box moved by `box_shift`. Accuracy and IoU are therefore known
  in advance from the examples (`expected_accuracy`, `expected_ious`).
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from PIL import Image
from tfx.types import artifact_utils, standard_artifacts
from tfx.types import standard_component_specs as keys
from tfx.utils import json_utils, proto_utils

from components import names
from components.champion import component as champion_lib
from components.evaluator import executor as evaluator
from components.serving import contract
from components.trainer import metrics
from components.transform import features

CLASSES = ("circle", "square", "triangle", "diamond", "cross")
CAMERAS = ("cam_01", "cam_02")
# Defaults let the model also score a serving request (image and camera only), as the registry needs.
_SPEC = {
    features.LABEL: tf.io.FixedLenFeature([1], tf.string, default_value=[""]),
    "camera_id": tf.io.FixedLenFeature([1], tf.string, default_value=[""]),
    "difficulty": tf.io.FixedLenFeature([1], tf.float32, default_value=[1.0]),
    **{name: tf.io.FixedLenFeature([1], tf.float32, default_value=[0.0]) for name in names.BOX_CORNERS},
}
SERVING_TYPES = {features.IMAGE: "string", "camera_id": "string"}


@dataclass(frozen=True)
class EvalExample:
    label: str
    camera: str
    difficulty: float
    box: tuple[float, float, float, float]

    def serialize(self) -> bytes:
        def floats(value):
            return tf.train.Feature(float_list=tf.train.FloatList(value=[value]))

        def text(value):
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))

        feature = {
            features.LABEL: text(self.label),
            "camera_id": text(self.camera),
            "difficulty": floats(self.difficulty),
            **{name: floats(value) for name, value in zip(names.BOX_CORNERS, self.box, strict=True)},
        }
        return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def make_examples(count: int = 40, seed: int = 0) -> list[EvalExample]:
    rng = np.random.default_rng(seed)
    examples = []
    for index in range(count):
        x, y = rng.uniform(0.05, 0.5, 2)
        w, h = rng.uniform(0.2, 0.45, 2)
        examples.append(
            EvalExample(
                label=CLASSES[index % len(CLASSES)],
                camera=CAMERAS[index % len(CAMERAS)],
                difficulty=float((index + 0.5) / count),  # Evenly spread: accuracy == skill, to 1/count.
                box=(float(x), float(y), float(x + w), float(y + h)),
            )
        )
    return examples


def write_eval_examples(uri: str, examples: list[EvalExample]) -> None:
    os.makedirs(os.path.join(uri, "Split-eval"), exist_ok=True)
    path = os.path.join(uri, "Split-eval", "data_tfrecord-00000-of-00001.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for example in examples:
            writer.write(example.serialize())


def _shifted(box: np.ndarray, shift: float) -> np.ndarray:
    return box + np.array([shift, shift, shift, shift], np.float32)


def expected_accuracy(examples: list[EvalExample], skill: float) -> float:
    return float(np.mean([example.difficulty < skill for example in examples]))


def expected_ious(examples: list[EvalExample], box_shift: float) -> np.ndarray:
    truth = np.array([example.box for example in examples], np.float32)
    return metrics.box_iou_numpy(truth, _shifted(truth, box_shift))


def tiny_model(model_dir: str, skill: float, box_shift: float, with_box: bool = True) -> str:
    """Writes the SavedModel to `<model_dir>/Format-Serving` (a Trainer's layout); returns `model_dir`.
    `with_box=False` is a classification-only model (no box output)."""
    module = tf.Module()
    classes = tf.constant(CLASSES)
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(classes, tf.range(len(CLASSES), dtype=tf.int64)), default_value=-1
    )
    module.table = table

    def parse(serialized):
        raw = tf.io.parse_example(serialized, _SPEC)
        label_id = module.table.lookup(raw[features.LABEL][:, 0])
        box = tf.concat([raw[name] for name in names.BOX_CORNERS], axis=1)
        return raw, label_id, box

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(serialized):
        raw, label_id, box = parse(serialized)
        right = raw["difficulty"][:, 0] < skill
        predicted = tf.where(right, label_id, (label_id + 1) % len(CLASSES))
        probabilities = 0.9 * tf.one_hot(predicted, len(CLASSES)) + 0.1 / len(CLASSES)
        size = tf.shape(probabilities)[0]
        return {
            "probabilities": probabilities,
            "classes": tf.tile(classes[tf.newaxis, :], [size, 1]),
            "label": tf.gather(classes, tf.maximum(predicted, 0)),
            **({"box": box + box_shift} if with_box else {}),
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(serialized):
        _, label_id, box = parse(serialized)
        return {features.LABEL_ID: label_id, features.BOX: box}

    serving = os.path.join(model_dir, "Format-Serving")
    signatures = {"serving_default": serve, "transform_features": transform_features}
    tf.saved_model.save(module, serving, signatures=signatures)
    os.makedirs(os.path.join(serving, "assets.extra"))
    with open(os.path.join(serving, "assets.extra", contract.RAW_FEATURES_FILE), "w") as handle:
        json.dump(SERVING_TYPES, handle)
    return model_dir


def serving_example(camera: str = "cam_01") -> bytes:
    """A raw example as a client sends it: an image and a camera id, nothing else."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(buffer, format="PNG")
    return contract.make_raw_example(buffer.getvalue(), {"camera_id": camera}, SERVING_TYPES)


def champion_artifact(model_dir: str | None, version: str = "7") -> standard_artifacts.Model:
    """What the Champion node hands on: a fetched model with its version and fingerprint, or none."""
    artifact = standard_artifacts.Model()
    if model_dir is None:
        artifact.uri = "/nonexistent"
        artifact.set_string_custom_property(champion_lib.VERSION_PROPERTY, "")
        artifact.set_string_custom_property(champion_lib.NOTE_PROPERTY, "no champion yet in the registry ('x')")
        return artifact
    artifact.uri = model_dir
    artifact.set_string_custom_property(champion_lib.VERSION_PROPERTY, version)
    artifact.set_string_custom_property(
        champion_lib.FINGERPRINT_PROPERTY, champion_lib.fingerprint(os.path.join(model_dir, "Format-Serving"))
    )
    return artifact


def evaluate(tmp_path, examples_uri, eval_config, candidate_dir, champion):
    """Runs xfer's Evaluator executor as the pipeline would; returns the evaluation URI and the blessing."""
    examples = standard_artifacts.Examples()
    examples.uri = examples_uri
    examples.split_names = artifact_utils.encode_split_names(["eval"])
    model = standard_artifacts.Model()
    model.uri = candidate_dir
    evaluation = standard_artifacts.ModelEvaluation()
    evaluation.uri = str(tmp_path / "evaluation")
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    evaluator.Executor().Do(
        {keys.EXAMPLES_KEY: [examples], keys.MODEL_KEY: [model], keys.BASELINE_MODEL_KEY: [champion]},
        {keys.EVALUATION_KEY: [evaluation], keys.BLESSING_KEY: [blessing]},
        {
            keys.EVAL_CONFIG_KEY: proto_utils.proto_to_json(eval_config),
            keys.EXAMPLE_SPLITS_KEY: json_utils.dumps(None),
        },
    )
    return evaluation.uri, blessing
