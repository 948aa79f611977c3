"""The ingest as a Beam pipeline, free of TFX: read sources, de-duplicate, convert, count, write rejects.

`IngestDataset` is what the TFX ExampleGen (`components/ingest/example_gen.py`) runs, and `ingest_to_tfrecords` runs
the same transform without TFX (tests, benchmarks, `xfer schema infer`). This module imports no TFX on purpose:
Beam's multi-processing workers import the module of every function they run, and TFX takes them half a
minute to import.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import posixpath
from typing import Any

import apache_beam as beam
import tensorflow as tf

from components.ingest import examples as ingest
from components.ingest import formats
from components.ingest.records import IngestError, Record, RecordError, Reject, TooManyRejectsError
from components.ingest.settings import IngestConfig, IngestFormat

REJECTS_FILE = "rejects.jsonl"
SUMMARY_FILE = "ingest_summary.json"
# Counts computed inside Beam, read back to write the summary; removed afterwards.
_COUNTS_FILE = "_ingest_counts.json"


@dataclasses.dataclass(frozen=True)
class IngestSettings:
    """Everything ingest needs from the config, as carried in the ExampleGen's custom_config."""

    # The defaults are the config's (components/ingest/settings.py), so a dict that omits a key means the same.
    format: IngestFormat = IngestConfig.format
    multi_box_policy: formats.MultiBoxPolicy = IngestConfig.multi_box_policy
    max_reject_fraction: float = IngestConfig.max_reject_fraction
    example: ingest.ExampleSettings = ingest.ExampleSettings()
    metadata: str = IngestConfig.metadata  # The metadata side table, relative to the dataset folder.
    no_object_class: str = ""  # The class of images with no object (ingest.no_object: keep); "": rejected.

    def to_dict(self) -> dict[str, Any]:
        raw = dataclasses.asdict(self)
        raw["example"]["labels"] = list(self.example.labels)
        raw["example"]["column_types"] = dict(self.example.column_types)
        return raw

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> IngestSettings:
        example = dict(raw.get("example", {}))
        example["labels"] = tuple(example.get("labels", ()))
        example["max_pixels"] = int(example.get("max_pixels", IngestConfig.max_pixels))
        return cls(
            format=raw.get("format", cls.format),
            multi_box_policy=raw.get("multi_box_policy", cls.multi_box_policy),
            max_reject_fraction=float(raw.get("max_reject_fraction", cls.max_reject_fraction)),
            example=ingest.ExampleSettings(**example),
            metadata=str(raw.get("metadata", cls.metadata)),
            no_object_class=str(raw.get("no_object_class", cls.no_object_class)),
        )

    @classmethod
    def from_config(
        cls,
        ingest_config: IngestConfig,
        column_types: dict[str, ingest.ColumnType],
        derived: dict[str, str] | None = None,
    ) -> IngestSettings:
        """From the config's `ingest:` section, the column types of the curated schema, and what the derived
        features read (pipeline.config.derived_columns)."""
        no_object_class = ingest_config.no_object_class if ingest_config.no_object == "keep" else ""
        labels = tuple(ingest_config.labels)
        if labels and no_object_class and no_object_class not in labels:
            labels = (*labels, no_object_class)  # A listed set of classes plus the one for "nothing here".
        return cls(
            format=ingest_config.format,
            multi_box_policy=ingest_config.multi_box_policy,
            max_reject_fraction=ingest_config.max_reject_fraction,
            example=ingest.ExampleSettings(
                column_types=column_types,
                max_pixels=ingest_config.max_pixels,
                labels=labels,
                exif_box_frame=ingest_config.exif_box_frame,
                derived=dict(derived or {}),
            ),
            metadata=ingest_config.metadata,
            no_object_class=no_object_class,
        )


class _ToExample(beam.DoFn):
    def __init__(self, root: str, settings: ingest.ExampleSettings):
        self._root = root
        self._settings = settings

    def process(self, record: Record):
        try:
            filename, path = ingest.locate(self._root, record)
            ingest.check_label(record.label, self._settings.labels)  # Before reading: cheap, and often the cause.
            with tf.io.gfile.GFile(path, "rb") as handle:
                image_bytes = handle.read()
            yield ingest.record_to_example(record, filename, image_bytes, self._settings)
        except RecordError as error:
            yield beam.pvalue.TaggedOutput("rejects", Reject.from_error(record, error))


class JoinSideTable(beam.DoFn):
    """Adds each record's row of the metadata side table (ingest.metadata), read once per worker. Records
    without a row go on unchanged (their metadata is missing) and out as `unmatched`; every row key that
    matched goes out as `matched`, so the rows no image matched can be counted."""

    def __init__(self, path: str):
        self._path = path
        self._rows: dict[str, dict[str, str]] = {}

    def setup(self):
        _, self._rows = formats.read_side_table(self._path)

    def process(self, record: Record):
        for key in formats.side_table_keys(record):
            if key in self._rows:
                yield beam.pvalue.TaggedOutput("matched", key)
                yield dataclasses.replace(record, metadata={**record.metadata, **self._rows[key]})
                return
        yield beam.pvalue.TaggedOutput("unmatched", record.filename)
        yield record


def _read_source(source: str, dataset: formats.Dataset, settings: IngestSettings):
    return formats.read_source(
        dataset.root, dataset.format, source, settings.multi_box_policy, settings.no_object_class
    )


def _split_read(item: Record | Reject):
    if isinstance(item, Reject):
        yield beam.pvalue.TaggedOutput("rejects", item)
    else:
        yield item


def _split_duplicates(keyed: tuple[str, Any]):
    """Keeps the first record (by source) of each filename and rejects the others, naming the one kept."""
    _, records = keyed
    first, *others = sorted(records, key=lambda record: _source_order(record.source))
    yield first
    for other in others:
        detail = f"{other.filename} is already annotated at {first.source}"
        yield beam.pvalue.TaggedOutput("rejects", Reject(other.filename, "duplicate_filename", detail, other.source))


def _source_order(source: str) -> tuple[str, int]:
    # "annotations.csv:12" sorts before "annotations.csv:100": by file, then by line number.
    name, _, line = source.rpartition(":")
    return (name, int(line)) if line.isdigit() else (source, 0)


def _duplicate_key(record: Record) -> str:
    return posixpath.normpath(record.filename) if record.filename else ""


@beam.ptransform_fn
def IngestDataset(
    pipeline: beam.Pipeline, dataset: formats.Dataset, settings: IngestSettings, output_dir: str
) -> beam.PCollection:
    """Reads, checks and converts a dataset; writes rejects.jsonl and the counts into `output_dir`.

    The Beam graph, stage by stage, as Beam's monitoring names them; long because a graph split over helpers
    hides which stage feeds which."""
    read = (
        pipeline
        | "Sources" >> beam.Create(dataset.sources)
        | "ReadSource" >> beam.FlatMap(_read_source, dataset, settings)
    )
    split = read | "SplitReadRejects" >> beam.FlatMap(_split_read).with_outputs("rejects", main="records")
    # GroupByKey also spreads the records over the workers: one CSV is read by one worker, converted by all.
    unique = (
        split.records
        | "KeyByFilename" >> beam.Map(lambda record: (_duplicate_key(record), record))
        | "GroupByFilename" >> beam.GroupByKey()
        | "SplitDuplicates" >> beam.FlatMap(_split_duplicates).with_outputs("rejects", main="records")
    )
    records = unique.records
    side_counts = []
    if dataset.side_table:
        joined = records | "JoinSideTable" >> beam.ParDo(JoinSideTable(dataset.side_table)).with_outputs(
            "matched", "unmatched", main="records"
        )
        records = joined.records
        side_counts = [
            joined.matched
            | "DistinctRows" >> beam.Distinct()
            | "CountRowsMatched" >> beam.combiners.Count.Globally()
            | "KeyRowsMatched" >> beam.Map(lambda n: ("metadata_rows_matched", n)),
            joined.unmatched
            | "CountWithoutRow" >> beam.combiners.Count.Globally()
            | "KeyWithoutRow" >> beam.Map(lambda n: ("images_without_metadata_row", n)),
        ]
    converted = records | "ToExample" >> beam.ParDo(_ToExample(dataset.root, settings.example)).with_outputs(
        "rejects", main="examples"
    )
    rejects = (split.rejects, unique.rejects, converted.rejects) | "AllRejects" >> beam.Flatten()
    (
        rejects
        | "RejectToJson" >> beam.Map(Reject.to_json)
        | "WriteRejects"
        >> beam.io.WriteToText(posixpath.join(output_dir, REJECTS_FILE), shard_name_template="", num_shards=1)
    )
    counts = [
        read | "CountRecords" >> beam.combiners.Count.Globally() | "KeyRecords" >> beam.Map(lambda n: ("records", n)),
        converted.examples
        | "CountAccepted" >> beam.combiners.Count.Globally()
        | "KeyAccepted" >> beam.Map(lambda n: ("accepted", n)),
        read
        | "MultiBox" >> beam.Filter(lambda item: isinstance(item, Record) and item.num_boxes > 1)
        | "CountMultiBox" >> beam.combiners.Count.Globally()
        | "KeyMultiBox" >> beam.Map(lambda n: ("multi_box_images", n)),
        *side_counts,
    ]
    (
        counts
        | "AllCounts" >> beam.Flatten()
        | "CountsToDict" >> beam.combiners.ToDict()
        | "CountsToJson" >> beam.Map(json.dumps, sort_keys=True)
        | "WriteCounts"
        >> beam.io.WriteToText(posixpath.join(output_dir, _COUNTS_FILE), shard_name_template="", num_shards=1)
    )
    return converted.examples


def ingest_to_tfrecords(
    root: str,
    settings: IngestSettings,
    output_dir: str,
    beam_args: list[str] | None = None,
    keep_rejects_at: str | None = None,
) -> dict[str, Any]:
    """Ingest without TFX (tests, benchmarks): examples to `output_dir/examples*.tfrecord.gz`; the summary.

    `keep_rejects_at`: where to copy rejects.jsonl, for a caller whose `output_dir` is temporary; the
    summary and any error then name that copy."""
    from apache_beam.options.pipeline_options import PipelineOptions

    dataset = formats.detect(root, settings.format, settings.metadata)
    with beam.Pipeline(options=PipelineOptions(beam_args or [])) as pipeline:
        (
            pipeline
            | "Ingest" >> IngestDataset(dataset, settings, output_dir)
            | "Serialize" >> beam.Map(lambda example: example.SerializeToString())
            | "Write"
            >> beam.io.WriteToTFRecord(posixpath.join(output_dir, "examples"), file_name_suffix=".tfrecord.gz")
        )
    return finish(dataset, settings, output_dir, keep_rejects_at)


def finish(
    dataset: formats.Dataset,
    settings: IngestSettings,
    output_dir: str,
    keep_rejects_at: str | None = None,
    keep_if_stopped_in: str | None = None,
) -> dict[str, Any]:
    """Writes ingest_summary.json from the Beam counts, logs it, and enforces max_reject_fraction.

    With `keep_rejects_at`, rejects.jsonl is copied there first, so that the file an error names outlives
    a temporary `output_dir`. With `keep_if_stopped_in`, a folder, rejects.jsonl and the summary are copied
    there only when the run stops on its rejects: TFX deletes a failed execution's outputs, `output_dir`
    among them, so the list would be gone exactly when the user needs it. Long because every copy must come
    before the error that would lose it, which one function shows in order."""
    counts_path = posixpath.join(output_dir, _COUNTS_FILE)
    with tf.io.gfile.GFile(counts_path) as handle:
        counts = json.loads(handle.read())
    tf.io.gfile.remove(counts_path)
    rejects_path = posixpath.join(output_dir, REJECTS_FILE)
    if keep_rejects_at and tf.io.gfile.exists(rejects_path):
        tf.io.gfile.copy(rejects_path, keep_rejects_at, overwrite=True)
        rejects_path = keep_rejects_at
    summary = {
        **summarize(counts, rejects_path),
        "format": dataset.format,
        "has_boxes": dataset.has_boxes,
        "metadata_columns": list(dataset.metadata_columns),
        "multi_box_policy": settings.multi_box_policy,
        "multi_box_images": counts.get("multi_box_images", 0),
        **side_table_summary(dataset, counts),
    }
    with tf.io.gfile.GFile(posixpath.join(output_dir, SUMMARY_FILE), "w") as handle:
        handle.write(json.dumps(summary, indent=2, sort_keys=True))
    logging.info(
        "Ingest (%s, boxes %s): %d records in, %d accepted, %d rejected %s",
        summary["format"],
        "on" if summary["has_boxes"] else "off",
        summary["records"],
        summary["accepted"],
        summary["rejected"],
        summary["rejected_by_reason"],
    )
    if summary["multi_box_images"]:
        verb = "kept their largest box" if settings.multi_box_policy == "largest" else "were rejected"
        logging.info(
            "Ingest: %d image(s) had several boxes and %s (multi_box_policy: %s)",
            summary["multi_box_images"],
            verb,
            settings.multi_box_policy,
        )
    if keep_if_stopped_in and stops_on_rejects(summary, settings.max_reject_fraction):
        tf.io.gfile.makedirs(keep_if_stopped_in)
        for name in (REJECTS_FILE, SUMMARY_FILE):
            if tf.io.gfile.exists(posixpath.join(output_dir, name)):
                tf.io.gfile.copy(posixpath.join(output_dir, name), posixpath.join(keep_if_stopped_in, name), True)
        rejects_path = posixpath.join(keep_if_stopped_in, REJECTS_FILE)
    if dataset.side_table:
        logging.info(
            "Ingest: metadata table %s: %d image(s) without a row, %d row(s) without an image",
            dataset.side_table,
            summary["images_without_metadata_row"],
            summary["metadata_rows_without_image"],
        )
    check_reject_fraction(summary, settings.max_reject_fraction, rejects_path)
    return summary


def side_table_summary(dataset: formats.Dataset, counts: dict[str, int]) -> dict[str, Any]:
    """How well the metadata side table fitted the images: neither kind of miss is a reject, both are told."""
    if not dataset.side_table:
        return {}
    _, rows = formats.read_side_table(dataset.side_table)
    return {
        "metadata_table": dataset.side_table,
        "images_without_metadata_row": counts.get("images_without_metadata_row", 0),
        "metadata_rows_without_image": len(rows) - counts.get("metadata_rows_matched", 0),
    }


def stops_on_rejects(summary: dict[str, Any], max_fraction: float) -> bool:
    return summary["records"] > 0 and summary["rejected"] / summary["records"] > max_fraction


def summarize(counts: dict[str, int], rejects_path: str) -> dict[str, Any]:
    reasons: collections.Counter[str] = collections.Counter()
    if tf.io.gfile.exists(rejects_path):
        with tf.io.gfile.GFile(rejects_path) as handle:
            for line in handle:
                if line.strip():
                    reasons[json.loads(line)["reason"]] += 1
    records, accepted, rejected = counts.get("records", 0), counts.get("accepted", 0), sum(reasons.values())
    if accepted + rejected != records:
        raise RuntimeError(f"ingest lost track of records: {records} in, {accepted} accepted, {rejected} rejected")
    return {
        "records": records,
        "accepted": accepted,
        "rejected": rejected,
        "rejected_by_reason": dict(sorted(reasons.items())),
    }


def check_reject_fraction(summary: dict[str, Any], max_fraction: float, rejects_path: str) -> None:
    records = summary["records"]
    if records == 0:
        raise IngestError("the dataset has no records (no annotated images were found)")
    fraction = summary["rejected"] / records
    if fraction > max_fraction:
        reasons = ", ".join(f"{reason}: {count}" for reason, count in summary["rejected_by_reason"].items())
        raise TooManyRejectsError(
            f"{summary['rejected']} of {records} records rejected ({fraction:.1%}), "
            f"more than max_reject_fraction {max_fraction:.1%} ({reasons}). "
            f"Each reject and its reason is in {rejects_path}",
            rejects_path,
        )
