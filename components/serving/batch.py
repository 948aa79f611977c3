"""Batch scoring: a folder of images through a pushed model, as a Beam pipeline (`xfer predict --model M FOLDER`).

The images are read as ingest reads a dataset, so whatever the folder holds is understood the same way: an
annotated dataset in any format (csv, COCO, VOC) gives each image its metadata (and its annotated label,
written beside the prediction), and a folder of plain images (or class folders) is every JPEG and PNG in it.
Each image is checked and made upright as ingest stores it (components/ingest/image_io.normalize), so the model
sees what it saw in training, and scored with Beam's `RunInference`, in batches, one model per worker. Like
ingest, it loses nothing: every image read ends as one scored row or one rejected row with the reason.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import posixpath
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam
import tensorflow as tf
from apache_beam.ml.inference import base as inference

from components import names
from components.ingest import examples, formats, image_io
from components.ingest.records import IngestError, Record, RecordError, Reject
from components.ingest.settings import DEFAULT_MAX_PIXELS, IngestFormat
from components.serving import contract, predict

# The columns every row has, before the class probabilities and the box; the status says which kind of row.
SCORED = "scored"
REJECTED = "rejected"
LEADING_COLUMNS = ("filename", "status", "reason", "detail", "annotated_label", "label")
SIZE_COLUMNS = ("image_width", "image_height")  # Of the upright image the box fractions refer to.
DEFAULT_BATCH_SIZE = 32
# The plain-folder "format": every image under the root, when no annotation format is found there.
IMAGES = "images"


@dataclasses.dataclass(frozen=True)
class BatchSummary:
    output: str
    model_dir: str
    format: str  # The annotation format read, or IMAGES for a plain folder.
    images: int  # Rows written: scored + rejected.
    scored: int
    rejected: int
    rejected_by_reason: dict[str, int]
    labels: dict[str, int]  # How many images got each predicted label.


@dataclasses.dataclass(frozen=True)
class _Input:
    filename: str
    annotated_label: str
    serialized: bytes
    width: int
    height: int


class _ToRawExample(beam.DoFn):
    """Record -> the raw example the model takes (upright image, its metadata typed as the model says)."""

    def __init__(self, root: str, types: dict[str, str], max_pixels: int):
        self._root = root
        self._types = types
        self._max_pixels = max_pixels

    def process(self, record: Record):
        try:
            filename, path = examples.locate(self._root, record)
            with tf.io.gfile.GFile(path, "rb") as handle:
                image = image_io.normalize(handle.read(), self._max_pixels)
            # Columns the model does not take are the dataset's business; an empty value is served the default.
            metadata = {name: value for name, value in record.metadata.items() if name in self._types and value != ""}
            try:
                serialized = contract.make_raw_example(image.data, metadata, self._types)
            except ValueError as error:
                raise RecordError("bad_metadata", str(error)) from None
            yield _Input(filename, record.label, serialized, image.width, image.height)
        except RecordError as error:
            yield beam.pvalue.TaggedOutput(REJECTED, Reject.from_error(record, error))


class ServingModelHandler(inference.ModelHandler[bytes, inference.PredictionResult, Any]):
    """Beam's RunInference on a pushed SavedModel's `serving_default`: serialized raw examples in, one
    `Served` answer per batch out (split back into rows by `_rows`)."""

    def __init__(self, model_dir: str, batch_size: int = DEFAULT_BATCH_SIZE):
        self._model_dir = model_dir
        self._batch_size = batch_size

    def load_model(self):
        return predict.load_signature(self._model_dir)

    def run_inference(self, batch: Sequence[bytes], model, inference_args=None) -> Iterable[inference.PredictionResult]:
        served = contract.serve(model, list(batch))
        # One result per input, as every Beam model handler returns them: each example's own slice of the answer.
        return [inference.PredictionResult(example, _one(served, index)) for index, example in enumerate(batch)]

    def batch_elements_kwargs(self):
        return {"min_batch_size": 1, "max_batch_size": self._batch_size}


def _one(served: contract.Served, index: int) -> contract.Served:
    return contract.Served(
        labels=(served.labels[index],),
        class_names=served.class_names,
        probabilities=served.probabilities[index : index + 1],
        boxes=None if served.boxes is None else served.boxes[index : index + 1],
        has_box=None if served.has_box is None else served.has_box[index : index + 1],
    )


def _row(item: tuple[tuple[str, str, int, int], inference.PredictionResult]) -> dict[str, Any]:
    (filename, annotated_label, width, height), result = item
    served: contract.Served = result.inference
    row: dict[str, Any] = {
        "filename": filename,
        "status": SCORED,
        "annotated_label": annotated_label,
        "label": served.labels[0],
        "image_width": width,
        "image_height": height,
    }
    for index, name in enumerate(served.class_names):
        row[f"probability_{name}"] = round(float(served.probabilities[0, index]), 6)
    if served.boxes is not None and (served.has_box is None or served.has_box[0]):
        for index, corner in enumerate(names.BOX_CORNERS):
            row[corner] = round(float(served.boxes[0, index]), 6)  # Blank for an image said to hold nothing.
    return row


def _reject_row(reject: Reject) -> dict[str, Any]:
    return {
        "filename": reject.filename or reject.source,
        "status": REJECTED,
        "reason": reject.reason,
        "detail": reject.detail,
    }


def read_images(root: str) -> Iterator[Record | Reject]:
    """Every image under `root` (recursively), for a folder with no annotations; other files that are plainly
    images are rejected (unsupported_format), litter and hidden files are skipped as ingest skips them."""
    for directory, subdirectories, files in tf.io.gfile.walk(root):
        subdirectories[:] = sorted(name for name in subdirectories if not name.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or name.lower() in formats.IGNORED_FILES:
                continue
            relative = posixpath.relpath(posixpath.join(directory, name), root)
            if name.lower().endswith(formats.IMAGE_EXTENSIONS):
                yield Record(relative, ".", label="")
            elif name.lower().endswith(formats.OTHER_IMAGE_EXTENSIONS):
                yield Reject(relative, "unsupported_format", f"{name} is not a JPEG or PNG file", ".")


def find_inputs(root: str, forced: IngestFormat = "auto") -> tuple[str, tuple[str, ...]]:
    """(format, sources): an annotated dataset's format and sources, or IMAGES for a plain folder. Class folders
    are read as plain images too: their labels are folder names, which the annotated_label column would only
    repeat, and images at their root, which ingest rejects for having no class, are still worth scoring."""
    try:
        dataset = formats.detect(root, forced)
    except IngestError:
        if forced != "auto" or not tf.io.gfile.isdir(root):
            raise
        return IMAGES, (".",)
    if dataset.format == "class_folders":
        return IMAGES, (".",)
    return dataset.format, dataset.sources


def _read(source: str, root: str, dataset_format: str) -> Iterator[Record | Reject]:
    if dataset_format == IMAGES:
        return read_images(root)
    return formats.read_source(root, dataset_format, source, "largest")


def _split_read(item: Record | Reject):
    if isinstance(item, Reject):
        yield beam.pvalue.TaggedOutput(REJECTED, item)
    else:
        yield item


def score_folder(
    model_dir: str,
    root: str,
    output: str,
    dataset_format: IngestFormat = "auto",
    beam_args: list[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> BatchSummary:
    """Scores every image of `root` with the model at `model_dir` (a SavedModel, or a serving folder of
    versions) and writes one CSV row per image to `output`: the scored ones with the label, the class
    probabilities and the box (fractions of the upright image), the rejected ones with the reason."""
    from apache_beam.options.pipeline_options import PipelineOptions

    model_dir = predict.resolve_model_dir(model_dir)
    types = contract.load_raw_feature_types(model_dir)
    found_format, sources = find_inputs(root, dataset_format)
    logging.info("Scoring %s (%s) with %s", root, found_format, model_dir)
    with tempfile.TemporaryDirectory(prefix="xfer-scores-") as scratch:
        rows_prefix = posixpath.join(scratch, "rows")
        with beam.Pipeline(options=PipelineOptions(beam_args or [])) as pipeline:
            read = (
                pipeline
                | "Sources" >> beam.Create(sources)
                | "Read" >> beam.FlatMap(_read, root, found_format)
                | "SplitReadRejects" >> beam.FlatMap(_split_read).with_outputs(REJECTED, main="records")
            )
            converted = read.records | "ToRawExample" >> beam.ParDo(
                _ToRawExample(root, types, max_pixels)
            ).with_outputs(REJECTED, main="inputs")
            scored = (
                converted.inputs
                | "Key"
                >> beam.Map(
                    lambda item: ((item.filename, item.annotated_label, item.width, item.height), item.serialized)
                )
                | "RunInference"
                >> inference.RunInference(inference.KeyedModelHandler(ServingModelHandler(model_dir, batch_size)))
                | "ScoredRow" >> beam.Map(_row)
            )
            rejected = (
                (read[REJECTED], converted[REJECTED])
                | "AllRejects" >> beam.Flatten()
                | "RejectRow" >> beam.Map(_reject_row)
            )
            (
                (scored, rejected)
                | "AllRows" >> beam.Flatten()
                | "ToJson" >> beam.Map(json.dumps, sort_keys=True)
                | "WriteRows" >> beam.io.WriteToText(rows_prefix, file_name_suffix=".jsonl")
            )
        rows = []
        for path in tf.io.gfile.glob(rows_prefix + "*.jsonl"):
            with tf.io.gfile.GFile(path) as handle:
                rows.extend(json.loads(line) for line in handle if line.strip())
    return _write_csv(rows, output, model_dir, found_format)


def _write_csv(rows: list[dict[str, Any]], output: str, model_dir: str, found_format: str) -> BatchSummary:
    # The probability columns come from the model's answers; a run where every image was rejected has none.
    probability_columns = sorted({key for row in rows for key in row if key.startswith("probability_")})
    box_columns = [corner for corner in names.BOX_CORNERS if any(corner in row for row in rows)]
    columns = [*LEADING_COLUMNS, *probability_columns, *box_columns, *SIZE_COLUMNS]
    rows.sort(key=lambda row: (row["filename"], row["status"], row.get("reason", "")))
    parent = posixpath.dirname(output)
    if parent:
        tf.io.gfile.makedirs(parent)
    with tf.io.gfile.GFile(output, "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    rejected = [row for row in rows if row["status"] == REJECTED]
    by_reason: dict[str, int] = {}
    for row in rejected:
        by_reason[row["reason"]] = by_reason.get(row["reason"], 0) + 1
    labels: dict[str, int] = {}
    for row in rows:
        if row["status"] == SCORED:
            labels[row["label"]] = labels.get(row["label"], 0) + 1
    return BatchSummary(
        output=output,
        model_dir=model_dir,
        format=found_format,
        images=len(rows),
        scored=len(rows) - len(rejected),
        rejected=len(rejected),
        rejected_by_reason=dict(sorted(by_reason.items())),
        labels=dict(sorted(labels.items())),
    )
