"""Box settings side by side: which head and loss localise best on the sample, at equal training time.

    python -m benchmarks.box_settings --data data/sample --epochs 8 --json box_settings.json

Each arm is the sample config (configs/sample.yaml) with one change to the box head (`model.box_head`), the
IoU-family term of its loss (`model.box_iou_loss`) or the input size (`image.size`), trained with the same
two phases (1 frozen epoch, then `--epochs` of fine-tuning on the config's cosine schedule, so that every arm
finishes its schedule) and scored on the eval split the Evaluator's gates read. `--budget` stops an arm that
runs over, mid-phase if need be; each row prints the training time it took, so equal time is measured, not
assumed. No TFX (benchmarks/plain_keras.py's loading and the pipeline's own network): the question is the
head and loss, not the pipeline.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import components  # noqa: E402, F401  sets TF_USE_LEGACY_KERAS (components/__init__.py)
from benchmarks import plain_keras  # noqa: E402

# (name, model overrides, image size or None for the config's).
ARMS = {
    "dense-iou": ({"box_head": "dense", "box_iou_loss": "iou"}, None),
    "dense-giou": ({"box_head": "dense", "box_iou_loss": "giou"}, None),
    "dense-diou": ({"box_head": "dense", "box_iou_loss": "diou"}, None),
    "spatial-iou": ({"box_head": "spatial", "box_iou_loss": "iou"}, None),
    "spatial-giou": ({"box_head": "spatial", "box_iou_loss": "giou"}, None),
    "spatial-diou": ({"box_head": "spatial", "box_iou_loss": "diou"}, None),
    "spatial-diou-96px": ({"box_head": "spatial", "box_iou_loss": "diou"}, 96),
}


def arm_config(config, model_overrides: dict, image_size: int | None, finetune_epochs: int):
    training = dataclasses.replace(
        config.training, finetune=dataclasses.replace(config.training.finetune, epochs=finetune_epochs)
    )
    image = dataclasses.replace(config.image, size=image_size or config.image.size)
    model = dataclasses.replace(config.model, **model_overrides)
    return dataclasses.replace(config, model=model, image=image, training=training)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/sample.yaml")
    parser.add_argument("--data", default="data/sample")
    parser.add_argument("--epochs", type=int, default=8, help="fine-tuning epochs of every arm")
    parser.add_argument("--budget", type=float, default=600.0, help="seconds of training after which an arm stops")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)

    from pipeline import config as config_lib

    config = config_lib.load_config(args.config, {"data": args.data})
    loaded: dict[int, tuple] = {}  # The images once per input size.
    rows = []
    for name in args.arms:
        overrides, size = ARMS[name]
        settings = arm_config(config, overrides, size, args.epochs)
        if settings.image.size not in loaded:
            loaded[settings.image.size] = plain_keras.load_splits(settings, Path(args.data))
        splits, labels, cardinality = loaded[settings.image.size]
        _, row = plain_keras.run_arm(name, settings, splits, cardinality, len(labels), args.budget)
        rows.append(row)
        print(json.dumps(rows[-1]), flush=True)
    plain_keras.print_rows(rows, width=20)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
