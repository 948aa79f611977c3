"""`xfer predict`: score one image (JSON on stdout) or a folder of images (a CSV) with a pushed or registered
model. The work is components/serving/; this module reads the command line and prints."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path

from components import names
from pipeline.workspace import DEFAULT_ROOT as DEFAULT_WORKSPACE


def add_parser(commands, add_ingest_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """Adds the `predict` command to the CLI's subparsers; the folder's format and Beam options are the ones
    every ingest command takes."""
    predict = commands.add_parser(
        "predict", help="score one image (prints JSON) or a folder of images (writes a CSV) with a pushed model"
    )
    predict.add_argument(
        "--model",
        required=True,
        help="a SavedModel folder, the serving folder of versions (the newest is used), or a registered model: "
        "models:/NAME@champion, models:/NAME/VERSION",
    )
    predict.add_argument(
        "path", metavar="IMAGE_OR_FOLDER", help="a JPEG or PNG file, or a folder of images (any format)"
    )
    predict.add_argument(
        "--meta", nargs="*", default=[], metavar="KEY=VALUE", help="one image's metadata, e.g. camera_id=cam_01"
    )
    predict.add_argument(
        "--out", default="predictions.csv", help="for a folder: the CSV to write, a row per image (default %(default)s)"
    )
    predict.add_argument(
        "--workspace",
        help="for models:/ URIs: the workspace whose MLflow store holds the registry "
        f"(default ${names.TRACKING_URI_ENV}, else ./{DEFAULT_WORKSPACE})",
    )
    predict.add_argument("--batch-size", type=int, default=32, help="for a folder: images per model call (default 32)")
    add_ingest_options(predict)


def run(args: argparse.Namespace) -> int:
    import tempfile

    import tensorflow as tf

    from components.serving import predict

    with tempfile.TemporaryDirectory(prefix="xfer-model-") as scratch:
        model = args.model
        if model.startswith(predict.REGISTRY_PREFIX):
            model = predict.fetch_registered(model, _registry_uri(args), scratch)
        if tf.io.gfile.isdir(args.path):
            return _predict_folder(args, model)
        metadata = {}
        for item in args.meta:
            key, separator, value = item.partition("=")
            if not separator or not key:
                raise ValueError(f"--meta takes KEY=VALUE, got {item!r}")
            metadata[key] = value
        result = predict.predict_file(model, args.path, metadata)
    print(json.dumps(result, indent=2))
    return 0


def _registry_uri(args: argparse.Namespace) -> str:
    from pipeline.tracking import ui

    if not args.workspace and os.environ.get(names.TRACKING_URI_ENV):
        return os.environ[names.TRACKING_URI_ENV]
    return ui.store_uri(Path(args.workspace or DEFAULT_WORKSPACE).resolve())


def _predict_folder(args: argparse.Namespace, model: str) -> int:
    from components.serving import batch

    if args.meta:
        raise ValueError("--meta is for one image; a folder's metadata comes from its annotations")
    summary = batch.score_folder(
        model, args.path, args.out, args.format or "auto", list(args.beam_arg), batch_size=args.batch_size
    )
    reasons = ", ".join(f"{reason}: {count}" for reason, count in summary.rejected_by_reason.items())
    predicted = ", ".join(f"{label} {count}" for label, count in summary.labels.items())
    print(
        f"wrote {summary.output}: {summary.images} images ({summary.format}), {summary.scored} scored"
        + (f" ({predicted})" if predicted else "")
        + f", {summary.rejected} rejected"
        + (f" ({reasons}); their rows say why" if reasons else "")
        + f"\nmodel: {args.model if args.model != model else summary.model_dir}"
    )
    return 0
