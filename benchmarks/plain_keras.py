"""The pipeline's training without the pipeline: the reference `benchmarks/pipeline_overhead.py` compares with.

    python -m benchmarks.plain_keras --config configs/sample.yaml --data data/sample

Reads `annotations.csv` and the images with PIL, resizes them as Transform does (stretch), splits them by the
same filename hash as ImageExampleGen, maps the sample's metadata columns to ids in numpy, and trains the same
network (`components.trainer.model.build_model`) with the same two phases, learning rates and schedule in a plain
`model.fit`, validating on the val split every epoch as the Trainer does. No TFX, no Beam, no TFT, no MLflow,
no checkpoints: what is left is the work any training of this model must do.
"""

from __future__ import annotations

import os

from components import names

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import bisect  # noqa: E402
import csv  # noqa: E402
import hashlib  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import components  # noqa: E402, F401  sets TF_USE_LEGACY_KERAS (components/__init__.py)


def _split_of(filename: str, buckets: list[int]) -> int:
    """ImageExampleGen's rule (tfx base_example_gen_executor._PartitionFn): sha256 of the serialized partition
    feature, modulo the total bucket count, then the split whose cumulative buckets hold it."""
    import tensorflow as tf

    feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[filename.encode()]))
    bucket = int(hashlib.sha256(feature.SerializeToString(deterministic=True)).hexdigest(), 16) % sum(buckets)
    return bisect.bisect(list(itertools.accumulate(buckets)), bucket)


def _metadata_ids(rows: list[dict[str, str]], feature_configs) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Ids for the sample's feature kinds (bucketized, vocabulary, crossed), computed in numpy."""
    ids: dict[str, np.ndarray] = {}
    cardinality: dict[str, int] = {}
    for feature in feature_configs:
        if feature.kind == "bucketized":
            values = np.array([float(row[feature.name]) for row in rows])
            ids[feature.name] = np.digitize(values, feature.boundaries).astype(np.int64)
            cardinality[feature.name] = len(feature.boundaries) + 1
        elif feature.kind == "vocabulary":
            vocabulary = sorted({row[feature.name] for row in rows})[: feature.top_k]
            index = {value: i for i, value in enumerate(vocabulary)}
            ids[feature.name] = np.array([index.get(row[feature.name], len(vocabulary)) for row in rows], np.int64)
            cardinality[feature.name] = len(vocabulary) + feature.num_oov_buckets
        elif feature.kind == "crossed":
            combined = np.stack([ids[name] for name in feature.inputs], axis=1)
            ids[feature.name] = (combined @ (np.arange(len(feature.inputs)) * 31 + 7)) % feature.hash_buckets
            cardinality[feature.name] = feature.hash_buckets
        else:
            raise ValueError(f"plain_keras: feature kind {feature.kind!r} is not reproduced here")
    return ids, cardinality


def load_splits(config, data_dir: Path) -> tuple[dict[str, tuple[dict, dict]], list[str], dict[str, int]]:
    """{split: (inputs, targets)} for train, val and eval as numpy arrays, the class names and the
    metadata features' cardinalities."""
    from PIL import Image

    size = config.image.size
    with open(data_dir / "annotations.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    labels = sorted({row["label"] for row in rows})
    images, boxes = [], []
    for row in rows:
        with Image.open(data_dir / row["filename"]) as image:
            width, height = image.size
            images.append(np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR), np.int64))
        box = [float(row[key]) for key in names.BOX_CORNERS]
        boxes.append([box[0] / width, box[1] / height, box[2] / width, box[3] / height])
    metadata, cardinality = _metadata_ids(rows, config.features)
    inputs = {"image": np.stack(images), **metadata}
    targets = {
        "probabilities": np.array([labels.index(row["label"]) for row in rows], np.int64),
        "box": np.array(boxes, np.float32),
    }
    buckets = [config.split.train, config.split.val, config.split.eval]
    split = np.array([_split_of(row["filename"], buckets) for row in rows])

    def take(arrays, which):
        return {name: array[split == which] for name, array in arrays.items()}

    splits = names.SPLITS
    return {name: (take(inputs, index), take(targets, index)) for index, name in enumerate(splits)}, labels, cardinality


def datasets(config, splits: dict) -> tuple:
    """(train, val) batches as the Trainer reads them: the train split shuffled by the config's seed."""
    import tensorflow as tf

    (train_x, train_y), (val_x, val_y) = splits["train"], splits["val"]
    batch = config.training.batch_size
    train = (
        tf.data.Dataset.from_tensor_slices((train_x, train_y))
        .shuffle(config.training.shuffle_buffer, seed=config.training.seed)
        .batch(batch)
        .prefetch(tf.data.AUTOTUNE)
    )
    return train, tf.data.Dataset.from_tensor_slices((val_x, val_y)).batch(batch).prefetch(tf.data.AUTOTUNE)


def network_for(config, cardinality: dict[str, int], num_classes: int):
    """The pipeline's network (components.trainer.model.build_model) for `config.model`, seeded by the config."""
    import tf_keras

    from components.trainer import model as model_lib

    tf_keras.utils.set_random_seed(config.training.seed)
    inputs = model_lib.ModelInputs(
        categorical=cardinality, numeric=(), embedding_dims={f.name: f.embedding_dim for f in config.features}
    )
    return model_lib.build_model(config.model, config.image.size, inputs, num_classes)


def train_phases(network, config, train, val, budget_s: float = math.inf, callbacks=()) -> dict:
    """components/trainer/training.py's two phases (frozen, then unfrozen) of `config.training` in a plain
    `model.fit`, stopped after the batch that spends `budget_s`, mid-phase if need be. Returns the measured
    training time, the epochs run and the last epoch's Keras logs."""
    import tf_keras

    from components.trainer import model as model_lib
    from components.trainer import training

    deadline = time.perf_counter() + budget_s

    class Budget(tf_keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if time.perf_counter() > deadline:
                self.model.stop_training = True

    started, epochs, first, last = time.perf_counter(), 0, 0, {}
    for trainable, phase in ((False, config.training.frozen), (True, config.training.finetune)):
        if time.perf_counter() > deadline or phase.epochs == 0:
            continue
        model_lib.set_backbone_trainable(network, trainable)
        model_lib.compile_model(network, config.model, phase.learning_rate)
        schedule = tf_keras.callbacks.LearningRateScheduler(
            lambda epoch, _, first=first, phase=phase: training.phase_learning_rate(phase, epoch - first)
        )
        history = network.fit(
            train,
            validation_data=val,
            initial_epoch=first,
            epochs=first + phase.epochs,
            callbacks=[schedule, Budget(), *callbacks],
            verbose=0,
        )
        epochs += len(history.history["loss"])
        last = {key: float(values[-1]) for key, values in history.history.items()}
        first += phase.epochs
    return {"train_s": time.perf_counter() - started, "epochs": epochs, "last_epoch": last}


def run_arm(name: str, config, splits: dict, cardinality: dict[str, int], num_classes: int, budget_s: float):
    """One benchmark row: `config`'s network trained by its two phases for at most `budget_s` seconds, then
    scored on the eval split; also the trained network (transfer.py saves its backbone)."""
    network = network_for(config, cardinality, num_classes)
    timing = train_phases(network, config, *datasets(config, splits), budget_s)
    scores = score(network, *splits["eval"], config.evaluation.hit_iou)
    return network, {"arm": name, "train_s": timing["train_s"], "epochs": timing["epochs"], **scores}


def score(network, inputs: dict, targets: dict, hit_iou: float) -> dict:
    """Accuracy, mean IoU and hit rate (IoU >= `hit_iou`) on one split, as the Evaluator's gates read them."""
    from components.trainer import metrics

    predicted = network.predict(inputs, batch_size=64, verbose=0)
    ious = metrics.box_iou_numpy(predicted["box"], targets["box"])
    return {
        "eval_accuracy": float(np.mean(np.argmax(predicted["probabilities"], axis=1) == targets["probabilities"])),
        "eval_iou": float(np.mean(ious)),
        "eval_hit_rate": float(np.mean(ious >= hit_iou)),
    }


def print_rows(rows: list[dict], width: int = 55) -> None:
    """The benchmark table: one row per arm, its measured training time and its eval-split scores."""
    print(f"\n{'arm':<{width}} {'train s':>8} {'epochs':>6} {'accuracy':>8} {'IoU':>6} {'hit rate':>8}")
    for row in rows:
        print(
            f"{row['arm']:<{width}} {row['train_s']:>8.0f} {row['epochs']:>6} {row['eval_accuracy']:>8.3f} "
            f"{row['eval_iou']:>6.3f} {row['eval_hit_rate']:>8.3f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="configs/sample.yaml")
    parser.add_argument("--data", default="data/sample")
    parser.add_argument("--json", help="write the timings here")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    from components.trainer import training
    from pipeline import config as config_lib

    config = config_lib.load_config(args.config, {"data": args.data})
    imported = time.perf_counter()
    splits, labels, cardinality = load_splits(config, Path(args.data))
    loaded = time.perf_counter()

    network = network_for(config, cardinality, len(labels))
    train, val = datasets(config, splits)
    # The Trainer's own epoch clock (end of one epoch to the end of the next, each fit's first epoch from its
    # start), so that pipeline_overhead.py compares equal spans; silent here, since nothing configures logging.
    timer = training.EpochLog("plain", config.training.frozen.epochs + config.training.finetune.epochs)
    trained = train_phases(network, config, train, val, callbacks=[timer])
    result = {
        "imports_s": imported - started,
        "load_images_s": loaded - imported,
        "train_s": trained["train_s"],
        "epoch_s": timer.seconds,
        "train_images": len(splits["train"][1]["box"]),
        "val_images": len(splits["val"][1]["box"]),
        "final_val_accuracy": trained["last_epoch"]["val_probabilities_accuracy"],
        "final_val_iou": trained["last_epoch"]["val_box_iou"],
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
