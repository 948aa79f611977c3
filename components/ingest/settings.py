"""The `ingest:` config section, and the small vocabularies the readers and the config share.

Imports nothing heavy: the config parses (and a bad one fails) before TensorFlow loads.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Literal

Format = Literal["csv", "class_folders", "coco", "voc"]
FORMATS: tuple[Format, ...] = typing.get_args(Format)
MultiBoxPolicy = Literal["largest", "reject"]
NoObjectPolicy = Literal["reject", "keep"]
# Which pixel grid boxes refer to in a photo with an EXIF orientation, when the annotation does not say (COCO
# and VOC state the image size, which settles it). "displayed": the upright image, as browsers and most
# labeling tools show it. "stored": the file's raw pixel grid.
ExifBoxFrame = Literal["displayed", "stored"]
# Decompression-bomb guard: images with more pixels are rejected before they are decoded.
DEFAULT_MAX_PIXELS = 50_000_000
# What `ingest.format` (and the CLI's --format) may say: a format, or "auto" to detect it.
IngestFormat = Literal["auto", Format]
INGEST_FORMATS: tuple[str, ...] = typing.get_args(IngestFormat)
# The layouts `xfer sample-data` writes (sample_data.py): xfer's CSV, or a COCO Camera Traps export. Here rather
# than beside the writer, which loads numpy and Pillow, so the CLI offers them without importing it.
SAMPLE_LAYOUTS = ("csv", "coco-camera-traps")


@dataclasses.dataclass(frozen=True)
class IngestConfig:
    # Stop the run when more than this share of the records is rejected (every reject is listed either way).
    max_reject_fraction: float = 0.05
    max_pixels: int = DEFAULT_MAX_PIXELS
    # When given, a record whose label is not listed is rejected; when empty, every label is a class.
    labels: tuple[str, ...] = ()
    # Annotation format of the dataset folder; "auto" detects it (see components/ingest/formats.py for the layouts).
    format: IngestFormat = "auto"
    # An image with several boxes (COCO, VOC) keeps its largest box, or is rejected; the log counts them.
    multi_box_policy: MultiBoxPolicy = "largest"
    # The pixel grid boxes refer to in photos with an EXIF orientation, when the annotation does not state the
    # image size: "displayed" (upright, as browsers and most labeling tools show it) or "stored" (the raw grid).
    exif_box_frame: ExifBoxFrame = "displayed"
    # A side table of metadata for any format: a CSV with a `filename` column and one column per field, joined
    # on the image's path (or, for a name without a folder, its file name). Relative to the dataset folder.
    # An image without a row, or a row without an image, is counted in the ingest summary, not rejected.
    metadata: str = ""
    # An image with no object (no box: a COCO annotation without `bbox`, or none at all; a VOC file without
    # <object>; a CSV row with empty box cells) in a box dataset: rejected (no_annotation), or kept as the
    # class `no_object_class`, which the class head learns and the box loss and IoU skip.
    no_object: NoObjectPolicy = "reject"
    no_object_class: str = "empty"
