"""What every annotation format is read into, and what a record that cannot be used becomes.

A `Record` is one image with its annotation, format-independent; a `Reject` names the file, a stable reason
code and a sentence saying why. Nothing is dropped: each record read ends as an example or a reject.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping

# Reason codes, stable across releases: reports and MLflow metrics group rejects by them.
REASONS = {
    "missing_file": "the image file named by the annotation does not exist",
    "empty_file": "the image file has zero bytes",
    "unreadable_image": "the image is corrupt, truncated or not an image",
    "unsupported_format": "the image is neither JPEG nor PNG",
    "too_many_pixels": "the image exceeds the pixel limit (decompression-bomb guard)",
    "size_mismatch": "the annotation's image size is not the size of the file",
    "bad_box": "the box lies outside the image, is inverted, has zero area or is not numeric",
    "multiple_boxes": "the image has several boxes and multi_box_policy is reject",
    "no_annotation": "the image has no label (or no box in a detection dataset)",
    "unknown_label": "the label is not in the configured label list",
    "bad_metadata": "a metadata value is not a number where the schema expects one",
    "duplicate_filename": "the image is annotated more than once",
    "path_escape": "the path leaves the dataset folder (../, absolute, or a symlink)",
    "bad_annotation": "the annotation itself is malformed (broken XML, unknown image or category id)",
}


class IngestError(ValueError):
    """The input as a whole cannot be read (as opposed to one bad record, which is rejected)."""


class TooManyRejectsError(IngestError):
    """More records were rejected than the config allows. `rejects_path` is the list of rejects with their
    reasons, kept where it outlives the stopped run (tracking logs it with the run)."""

    def __init__(self, message: str, rejects_path: str):
        super().__init__(message)
        self.rejects_path = rejects_path


class RecordError(ValueError):
    """One record cannot be used; `reason` is a code from REASONS, the message says why."""

    def __init__(self, reason: str, detail: str):
        if reason not in REASONS:
            raise ValueError(f"unknown reject reason {reason!r}")
        super().__init__(detail)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Box:
    """Pixel coordinates as read (strings from a CSV, numbers from JSON); checked against the image later."""

    xmin: float | str
    ymin: float | str
    xmax: float | str
    ymax: float | str


@dataclasses.dataclass(frozen=True)
class Record:
    """One annotated image, independent of the format it came from.

    `source` says where it was read (`annotations.csv:12`, `Annotations/a.xml`) so a reject can be traced
    back. `box` is None in a classification dataset. `declared_size` is the (width, height) the annotation
    states, if any. `num_boxes` counts the boxes the annotation had before multi_box_policy picked one.
    """

    filename: str
    source: str
    label: str
    box: Box | None = None
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)
    declared_size: tuple[int, int] | None = None
    num_boxes: int = 0
    # Other paths the image may be at, relative to the dataset root, tried in order if `filename` is missing.
    fallback_filenames: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Reject:
    filename: str
    reason: str
    detail: str
    source: str = ""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_error(cls, record: Record, error: RecordError) -> Reject:
        return cls(record.filename, error.reason, str(error), record.source)
