"""Readers for the annotation formats labeling tools export, and detection of which one a folder holds.

Every reader turns one *source* (an annotation file, or a class folder) into `Record`s, or into `Reject`s for
annotations that are broken before any image is looked at. A dataset is read source by source inside Beam, so
`detect()` only lists the sources; it never reads a record.

Layouts, as the common tools write them:
- csv: `annotations.csv` with filename,label[,xmin,ymin,xmax,ymax][,metadata...] (pixel boxes; no box columns
  means classification only).
- class_folders: `root/<label>/**/*.jpg`, as Keras `image_dataset_from_directory` reads it; no boxes.
- coco: a JSON with `images`, `annotations` (`bbox` [x, y, w, h] in pixels) and `categories`, at the root or
  one folder down (CVAT `annotations/instances_default.json`, Roboflow `train/_annotations.coco.json`).
- voc: one Pascal VOC XML per image, in `Annotations/` (images in `JPEGImages/`) or beside the images. Corners
  are read as pixel positions, as LabelImg and CVAT write them and the TF Object Detection API reads them.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import io
import json
import logging
import posixpath
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from typing import Any, Literal

import tensorflow as tf

from components import names
from components.ingest.records import Box, IngestError, Record, Reject
from components.ingest.settings import FORMATS, Format, MultiBoxPolicy

ANNOTATIONS_CSV = "annotations.csv"
CSV_REQUIRED = ("filename", "label")
# Features every example gets besides the metadata; a CSV column may not reuse these names.
RESERVED_FEATURES = ("image", "image_width", "image_height")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
# Files Keras would not read either but that are plainly images: listed as rejects (unsupported_format), not
# skipped, so a folder of TIFFs does not vanish without a word.
OTHER_IMAGE_EXTENSIONS = (".bmp", ".gif", ".webp", ".tif", ".tiff", ".heic", ".jfif")
# Litter file managers leave in folders; not records.
IGNORED_FILES = ("thumbs.db", "desktop.ini")
ROOT_SOURCE = "."  # In class_folders, the images lying at the root itself (they have no class folder).


@dataclasses.dataclass(frozen=True)
class Dataset:
    """What `detect` found: the format and the sources to read, relative to `root`."""

    root: str
    format: Format
    sources: tuple[str, ...]
    has_boxes: bool
    metadata_columns: tuple[str, ...] = ()
    side_table: str = ""  # The metadata side table's path (ingest.metadata), its columns in metadata_columns.


def detect(root: str, forced: Format | Literal["auto"] = "auto", side_table: str = "") -> Dataset:
    """The format of the dataset folder (or the forced one) and its sources; IngestError if there is none.
    With `side_table` (ingest.metadata), its columns join the metadata columns."""
    return with_side_table(_detect(root, forced), side_table)


def _detect(root: str, forced: Format | Literal["auto"]) -> Dataset:
    if not tf.io.gfile.isdir(root):
        raise IngestError(f"dataset folder {root} does not exist")
    finders = {
        "csv": _csv_dataset,
        "coco": _coco_dataset,
        "voc": _voc_dataset,
        "class_folders": _class_folders_dataset,
    }
    if forced != "auto":
        if forced not in finders:
            raise IngestError(f"unknown format {forced!r}; choose one of auto, {', '.join(FORMATS)}")
        dataset = finders[forced](root)
        if dataset is None:
            raise IngestError(f"{root} does not hold a {forced} dataset ({_LAYOUT_HINTS[forced]})")
        return dataset
    # Order matters: COCO and VOC datasets keep their images in subfolders that would also pass for classes.
    for name in ("csv", "coco", "voc", "class_folders"):
        dataset = finders[name](root)
        if dataset is not None:
            logging.info("Ingest: %s holds a %s dataset (%d source(s))", root, name, len(dataset.sources))
            return dataset
    raise IngestError(
        f"cannot tell the annotation format of {root}: expected "
        + "; or ".join(_LAYOUT_HINTS.values())
        + ". Force one with --format (or ingest.format in the config)."
    )


_LAYOUT_HINTS = {
    "csv": f"{ANNOTATIONS_CSV} at the root",
    "coco": "a COCO JSON (images, annotations, categories) at the root or one folder down",
    "voc": "Pascal VOC XML files in Annotations/ or at the root",
    "class_folders": "one folder of images per class",
}


def read_source(
    root: str,
    dataset_format: Format,
    source: str,
    multi_box_policy: MultiBoxPolicy = "largest",
    no_object_class: str = "",
) -> Iterator[Record | Reject]:
    """Every record of one source; malformed annotations come out as Rejects rather than exceptions.

    `no_object_class`: the class of an image with no object (ingest.no_object: keep), recorded with no box;
    empty, such an image is rejected as no_annotation."""
    if dataset_format == "csv":
        yield from read_csv(root, source, no_object_class)
    elif dataset_format == "class_folders":
        yield from read_class_folder(root, source)
    elif dataset_format == "coco":
        yield from read_coco(root, source, multi_box_policy, no_object_class)
    elif dataset_format == "voc":
        yield from read_voc(root, source, multi_box_policy, no_object_class)
    else:
        raise ValueError(f"unknown format {dataset_format!r}")


# --- csv ---------------------------------------------------------------------------------------------------


def csv_header(csv_path: str) -> list[str]:
    with tf.io.gfile.GFile(csv_path, "r") as handle:
        first_line = handle.readline()
    header = [name.strip() for name in next(csv.reader([first_line]), [])]
    missing = [name for name in CSV_REQUIRED if name not in header]
    if missing:
        raise IngestError(f"{csv_path}: missing column(s) {', '.join(missing)}; the header is {','.join(header)}")
    box_columns = [name for name in names.BOX_CORNERS if name in header]
    if box_columns and len(box_columns) != len(names.BOX_CORNERS):
        raise IngestError(
            f"{csv_path}: has {', '.join(box_columns)} but not all of {', '.join(names.BOX_CORNERS)}; "
            "give all four box columns, or none for classification"
        )
    clashes = [name for name in header if name in RESERVED_FEATURES]
    if clashes:
        raise IngestError(f"{csv_path}: column(s) {', '.join(clashes)} clash with features ingest writes itself")
    return header


def _csv_dataset(root: str) -> Dataset | None:
    path = posixpath.join(root, ANNOTATIONS_CSV)
    if not tf.io.gfile.exists(path):
        return None
    header = csv_header(path)
    metadata = tuple(name for name in header if name not in CSV_REQUIRED + names.BOX_CORNERS)
    return Dataset(root, "csv", (ANNOTATIONS_CSV,), has_boxes="xmin" in header, metadata_columns=metadata)


def read_csv(root: str, source: str, no_object_class: str = "") -> Iterator[Record]:
    with tf.io.gfile.GFile(posixpath.join(root, source), "r") as handle:
        text = handle.read()
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in (reader.fieldnames or [])]
    reader.fieldnames = header
    has_boxes = "xmin" in header
    for row in reader:
        values = {key: (value or "").strip() for key, value in row.items() if key}
        box = Box(*(values[name] for name in names.BOX_CORNERS)) if has_boxes else None
        if box is not None and no_object_class and values["label"] == no_object_class:
            if not any(values[name] for name in names.BOX_CORNERS):
                box = None  # The no-object class with its box cells left empty: an image with nothing in it.
        metadata = {key: value for key, value in values.items() if key not in CSV_REQUIRED + names.BOX_CORNERS}
        yield Record(
            values["filename"],
            f"{source}:{reader.line_num}",
            values["label"],
            box,
            metadata,
            num_boxes=1 if has_boxes else 0,
        )


# --- class folders -----------------------------------------------------------------------------------------


def _class_folders_dataset(root: str) -> Dataset | None:
    classes = sorted(
        name.rstrip("/")
        for name in tf.io.gfile.listdir(root)
        if not name.startswith(".") and tf.io.gfile.isdir(posixpath.join(root, name))
    )
    if not any(_first_image(posixpath.join(root, name)) for name in classes):
        return None
    return Dataset(root, "class_folders", (ROOT_SOURCE, *classes), has_boxes=False)


def _first_image(folder: str) -> str | None:
    for directory, _, files in tf.io.gfile.walk(folder):
        for name in files:
            if name.lower().endswith(IMAGE_EXTENSIONS):
                return posixpath.join(directory, name)
    return None


def read_class_folder(root: str, source: str) -> Iterator[Record | Reject]:
    """The images of one class folder, recursively (the label is the top folder); ROOT_SOURCE: loose ones."""
    if source == ROOT_SOURCE:
        for name in sorted(tf.io.gfile.listdir(root)):
            if name.lower().endswith(IMAGE_EXTENSIONS + OTHER_IMAGE_EXTENSIONS) and not name.startswith("."):
                yield Reject(name, "no_annotation", f"{name} lies at the dataset root, outside any class folder", ".")
        return
    top = posixpath.join(root, source)
    for directory, subdirectories, files in tf.io.gfile.walk(top):
        subdirectories[:] = sorted(name for name in subdirectories if not name.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or name.lower() in IGNORED_FILES:
                continue
            relative = posixpath.relpath(posixpath.join(directory, name), root)
            if name.lower().endswith(IMAGE_EXTENSIONS + OTHER_IMAGE_EXTENSIONS):
                yield Record(relative, source, label=source)
            else:
                yield Reject(relative, "unsupported_format", f"{name} is not a JPEG or PNG file", source)


# --- COCO --------------------------------------------------------------------------------------------------


# The fields COCO itself defines on an image entry (cocodataset.org/#format-data); every other scalar field is
# metadata: COCO Camera Traps writes `location`, `datetime`, `seq_id`, `frame_num` there, other tools their own.
COCO_IMAGE_FIELDS = ("id", "file_name", "width", "height", "license", "flickr_url", "coco_url", "date_captured")
# Names a metadata column may not take: what ingest writes for every record, and the box corners.
EXAMPLE_COLUMNS = (*CSV_REQUIRED, *RESERVED_FEATURES, *names.BOX_CORNERS)


def _coco_dataset(root: str) -> Dataset | None:
    candidates = sorted(
        tf.io.gfile.glob(posixpath.join(root, "*.json")) + tf.io.gfile.glob(posixpath.join(root, "*", "*.json"))
    )
    found = {posixpath.relpath(path, root): content for path in candidates if (content := _coco_content(path))}
    if not found:
        return None
    columns = dict.fromkeys(name for content in found.values() for name in coco_metadata_columns(content["images"]))
    return Dataset(root, "coco", tuple(found), has_boxes=True, metadata_columns=tuple(columns))


def _coco_content(path: str) -> dict[str, Any] | None:
    try:
        with tf.io.gfile.GFile(path, "r") as handle:
            content = json.load(handle)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(content, dict) and all(isinstance(content.get(key), list) for key in ("images", "annotations")):
        return content
    return None


def coco_metadata_columns(images: list[Any]) -> list[str]:
    """The scalar fields of the image entries that COCO does not define, in the order first seen."""
    columns: dict[str, None] = {}
    for image in images:
        if isinstance(image, dict):
            for key, value in image.items():
                if key not in COCO_IMAGE_FIELDS and key not in EXAMPLE_COLUMNS and _is_scalar(value):
                    columns.setdefault(str(key))
    return list(columns)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def metadata_text(value: Any) -> str:
    """A metadata value as the text ingest types by the schema; None and absent are both missing ("")."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def read_coco(
    root: str, source: str, multi_box_policy: MultiBoxPolicy, no_object_class: str = ""
) -> Iterator[Record | Reject]:
    """The records of one COCO JSON file (images, categories, annotations), each problem a Reject naming its
    place in the file. One pass in the file's own order (images, then their annotations), long because each
    loop checks what COCO leaves open (ids repeated, unknown categories) where it meets it."""
    with tf.io.gfile.GFile(posixpath.join(root, source), "r") as handle:
        content = json.load(handle)
    categories = {category.get("id"): str(category.get("name", "")) for category in content.get("categories", [])}
    folder = posixpath.dirname(source)
    metadata_columns = coco_metadata_columns(content["images"])
    images: dict[Any, dict[str, Any]] = {}
    for position, image in enumerate(content["images"]):
        filename = str(image.get("file_name", ""))
        where = f"{source} images[{position}]"
        if image.get("id") in images:
            yield Reject(filename, "bad_annotation", f"image id {image.get('id')!r} is used twice", where)
            continue
        images[image.get("id")] = {**image, "_where": where}
    boxes: dict[Any, list[tuple[str, list[Any]]]] = collections.defaultdict(list)
    broken: dict[Any, tuple[str, str]] = {}
    for position, annotation in enumerate(content["annotations"]):
        image_id = annotation.get("image_id")
        if image_id not in images:
            yield Reject(
                "",
                "bad_annotation",
                f"annotation {annotation.get('id')!r} refers to unknown image id {image_id!r}",
                f"{source} annotations[{position}]",
            )
            continue
        if annotation.get("category_id") not in categories:
            broken.setdefault(
                image_id,
                (
                    "bad_annotation",
                    f"annotation {annotation.get('id')!r} has unknown category id {annotation.get('category_id')!r}",
                ),
            )
            continue
        boxes[image_id].append((categories[annotation["category_id"]], annotation.get("bbox")))
    for image_id, image in images.items():
        filename = str(image.get("file_name", ""))
        where = image["_where"]
        if image_id in broken:
            yield Reject(filename, *broken[image_id], where)
            continue
        candidates = _image_candidates(folder, filename)
        labelled = []
        for label, bbox in boxes.get(image_id, []):
            if no_object_class and label == no_object_class:
                continue  # COCO Camera Traps marks an empty image with an annotation of its `empty` category.
            if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
                yield Reject(filename, "bad_box", f"bbox {bbox!r} is not four numbers [x, y, w, h]", where)
                break
            x, y, w, h = (float(v) for v in bbox)
            labelled.append((label, Box(x, y, x + w, y + h), w * h))
        else:
            yield from _choose_box(
                filename,
                where,
                labelled,
                multi_box_policy,
                candidates,
                _declared_size(image.get("width"), image.get("height")),
                {column: metadata_text(image.get(column)) for column in metadata_columns},
                no_object_class,
            )


# --- Pascal VOC --------------------------------------------------------------------------------------------


# The elements Pascal VOC defines directly under <annotation>; any other element holding only text is metadata
# (tools and people add their own, e.g. <location> or <camera>).
VOC_ELEMENTS = ("folder", "filename", "path", "source", "owner", "size", "segmented", "object")


def _voc_dataset(root: str) -> Dataset | None:
    paths = sorted(
        tf.io.gfile.glob(posixpath.join(root, "Annotations", "*.xml")) + tf.io.gfile.glob(posixpath.join(root, "*.xml"))
    )
    first = _voc_annotation(paths[0]) if paths else None
    if first is None or first.tag != "annotation":
        return None
    # Every file is read for its columns (annotations only, no image): a column one file adds is a column of all.
    columns: dict[str, None] = {}
    for path in paths:
        annotation = first if path == paths[0] else _voc_annotation(path)
        if annotation is not None:
            columns.update(dict.fromkeys(voc_metadata(annotation)))
    sources = tuple(posixpath.relpath(path, root) for path in paths)
    return Dataset(root, "voc", sources, has_boxes=True, metadata_columns=tuple(columns))


def _voc_annotation(path: str) -> ElementTree.Element | None:
    try:
        with tf.io.gfile.GFile(path, "rb") as handle:
            return ElementTree.fromstring(handle.read())
    except ElementTree.ParseError:
        return None


def voc_metadata(annotation: ElementTree.Element) -> dict[str, str]:
    """The text of every element under <annotation> that VOC does not define and that has no children."""
    return {
        child.tag: metadata_text(child.text)
        for child in annotation
        if child.tag not in VOC_ELEMENTS and child.tag not in EXAMPLE_COLUMNS and len(child) == 0
    }


def read_voc(
    root: str, source: str, multi_box_policy: MultiBoxPolicy, no_object_class: str = ""
) -> Iterator[Record | Reject]:
    with tf.io.gfile.GFile(posixpath.join(root, source), "rb") as handle:
        text = handle.read()
    try:
        annotation = ElementTree.fromstring(text)
    except ElementTree.ParseError as error:
        yield Reject(source, "bad_annotation", f"not valid XML: {error}", source)
        return
    filename = (annotation.findtext("filename") or "").strip()
    if annotation.tag != "annotation" or not filename:
        yield Reject(source, "bad_annotation", "expected <annotation> with a <filename>", source)
        return
    labelled = []
    for position, item in enumerate(annotation.iter("object")):
        label = (item.findtext("name") or "").strip()
        if no_object_class and label == no_object_class:
            continue
        corners = [(item.findtext(f"bndbox/{name}") or "").strip() for name in names.BOX_CORNERS]
        if not all(_is_number(value) for value in corners):
            yield Reject(
                filename,
                "bad_box",
                f"object {position} ({label}): bndbox {corners} is not four numbers",
                source,
            )
            return
        xmin, ymin, xmax, ymax = (float(value) for value in corners)
        labelled.append((label, Box(xmin, ymin, xmax, ymax), (xmax - xmin) * (ymax - ymin)))
    size = _declared_size(annotation.findtext("size/width"), annotation.findtext("size/height"))
    folder = posixpath.dirname(source)
    candidates = _image_candidates(folder, filename) + ("JPEGImages/" + filename,)
    yield from _choose_box(
        filename, source, labelled, multi_box_policy, candidates, size, voc_metadata(annotation), no_object_class
    )


# --- side table of metadata (any format) ---------------------------------------------------------------------


def side_table_path(root: str, table: str) -> str:
    return table if "://" in table or posixpath.isabs(table) else posixpath.join(root, table)


def read_side_table(path: str) -> tuple[tuple[str, ...], dict[str, dict[str, str]]]:
    """(columns, rows by normalized filename) of a metadata side table; IngestError naming what is wrong."""
    if not tf.io.gfile.exists(path):
        raise IngestError(f"ingest.metadata: no metadata table at {path}")
    with tf.io.gfile.GFile(path, "r") as handle:
        reader = csv.DictReader(io.StringIO(handle.read()))
    header = [name.strip() for name in (reader.fieldnames or [])]
    reader.fieldnames = header
    if "filename" not in header:
        raise IngestError(f"{path}: a metadata table needs a `filename` column; the header is {','.join(header)}")
    columns = tuple(name for name in header if name and name != "filename")
    clashes = [name for name in columns if name in EXAMPLE_COLUMNS]
    if clashes:
        raise IngestError(f"{path}: column(s) {', '.join(clashes)} clash with features ingest writes itself")
    rows: dict[str, dict[str, str]] = {}
    for row in reader:
        key = side_table_key(row.get("filename") or "")
        if key in rows:
            raise IngestError(f"{path}: line {reader.line_num}: {row.get('filename')!r} has a row already")
        rows[key] = {column: (row.get(column) or "").strip() for column in columns}
    return columns, rows


def side_table_key(filename: str) -> str:
    return posixpath.normpath(filename.strip()) if filename.strip() else ""


def side_table_keys(record: Record) -> list[str]:
    """The keys a record's row may be under: its path, the other paths it may be at, then its file name alone."""
    paths = [record.filename, *record.fallback_filenames]
    return list(dict.fromkeys([*(side_table_key(path) for path in paths), posixpath.basename(record.filename)]))


def with_side_table(dataset: Dataset, table: str) -> Dataset:
    if not table:
        return dataset
    path = side_table_path(dataset.root, table)
    columns, _ = read_side_table(path)
    repeated = [name for name in columns if name in dataset.metadata_columns]
    if repeated:
        raise IngestError(
            f"{path}: column(s) {', '.join(repeated)} are also in the {dataset.format} annotations; rename one"
        )
    return dataclasses.replace(dataset, metadata_columns=(*dataset.metadata_columns, *columns), side_table=path)


# --- shared ------------------------------------------------------------------------------------------------


def _choose_box(
    filename: str,
    where: str,
    labelled: list[tuple[str, Box, float]],
    policy: MultiBoxPolicy,
    candidates: tuple[str, ...],
    declared_size: tuple[int, int] | None,
    metadata: dict[str, str] | None = None,
    no_object_class: str = "",
) -> Iterator[Record | Reject]:
    """The image's record with its one box; several boxes are settled by `policy` (the largest, or reject)."""
    if not labelled:
        if no_object_class:
            yield Record(
                candidates[0],
                where,
                no_object_class,
                None,
                metadata or {},
                declared_size=declared_size,
                fallback_filenames=candidates[1:],
            )
        else:
            yield Reject(filename, "no_annotation", "the image has no box (ingest.no_object: reject)", where)
        return
    if len(labelled) > 1 and policy == "reject":
        labels = ", ".join(label for label, _, _ in labelled)
        yield Reject(filename, "multiple_boxes", f"{len(labelled)} boxes ({labels}); multi_box_policy is reject", where)
        return
    # max() keeps the first of equal areas, so the choice does not depend on anything but the file's order.
    label, box, _ = max(labelled, key=lambda item: item[2])
    yield Record(
        candidates[0],
        where,
        label,
        box,
        metadata or {},
        declared_size=declared_size,
        num_boxes=len(labelled),
        fallback_filenames=candidates[1:],
    )


def _image_candidates(folder: str, filename: str) -> tuple[str, ...]:
    """Where an image named in an annotation file may be: beside the file, at the root, or in images/."""
    names = [posixpath.join(folder, filename) if folder else filename, filename, "images/" + filename]
    return tuple(dict.fromkeys(posixpath.normpath(name) if name else name for name in names))


def _declared_size(width: Any, height: Any) -> tuple[int, int] | None:
    # Tools write 0 or leave the size out when they did not know it; then the file's own size is used.
    try:
        size = (int(str(width).strip()), int(str(height).strip()))
    except ValueError:
        return None
    return size if size[0] > 0 and size[1] > 0 else None


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
