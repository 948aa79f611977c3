"""A small, deterministic, learnable sample dataset in xfer's input format.

Five shape classes, each drawn in its own hue (jittered) on a varied background: a gradient, noise and distractor
lines. One box per image, the tight bounds of the shape. The metadata columns carry signal on purpose, so that the
metadata tower has something to learn: each class favours some hours of the day, a region (latitude/longitude)
and a few cameras, with noise so that metadata alone is not enough.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from components.ingest.settings import SAMPLE_LAYOUTS

CLASSES = ("circle", "square", "triangle", "diamond", "cross")
# Base hue of each class, in degrees.
_HUES = {"circle": 0, "square": 120, "triangle": 220, "diamond": 55, "cross": 290}
# Where each class tends to be seen: (hour, latitude, longitude).
_HABITS = {
    "circle": (7, 48.1, 11.5),
    "square": (11, 40.4, -3.7),
    "triangle": (15, 52.5, 13.4),
    "diamond": (19, 45.5, 9.2),
    "cross": (23, 59.3, 18.1),
}
CAMERAS = tuple(f"cam_{index:02d}" for index in range(10))
# The label of an image with no object in it (the config's ingest.no_object_class default).
EMPTY_LABEL = "empty"
CSV_COLUMNS = (
    "filename",
    "label",
    "xmin",
    "ymin",
    "xmax",
    "ymax",
    "capture_hour",
    "latitude",
    "longitude",
    "camera_id",
)


@dataclasses.dataclass(frozen=True)
class SampleRecord:
    filename: str
    label: str
    box: tuple[int, int, int, int] | None  # xmin, ymin, xmax, ymax in pixels; None: no object in the image
    capture_hour: int
    latitude: float
    longitude: float
    camera_id: str

    def row(self) -> dict[str, object]:
        xmin, ymin, xmax, ymax = self.box if self.box is not None else ("", "", "", "")
        return {
            "filename": self.filename,
            "label": self.label,
            "xmin": xmin,
            "ymin": ymin,
            "xmax": xmax,
            "ymax": ymax,
            "capture_hour": self.capture_hour,
            "latitude": f"{self.latitude:.4f}",
            "longitude": f"{self.longitude:.4f}",
            "camera_id": self.camera_id,
        }


PALETTES = ("class", "random")


def write_sample_dataset(
    out_dir: str | Path,
    num_images: int = 500,
    seed: int = 7,
    palette: str = "class",
    empty_fraction: float = 0.0,
    empty_label: str = EMPTY_LABEL,
    layout: str = "csv",
) -> list[SampleRecord]:
    """Writes `num_images` JPEGs and `annotations.csv` into `out_dir`; the same seed gives the same bytes.

    `palette`: "class" draws each class in its own hue (the sample task); "random" in any hue, so that colour
    says nothing of the class: another task, for pretraining a backbone offline (benchmarks/transfer.py).
    `empty_fraction`: the share of images with no object (background and distractor lines only), labelled
    `empty_label` with empty box cells, as camera traps take them (`ingest.no_object: keep` reads them).
    `layout`: "csv" (annotations.csv beside the images) or "coco-camera-traps" (see `write_coco_camera_traps`)."""
    if layout not in SAMPLE_LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(SAMPLE_LAYOUTS)}, got {layout!r}")
    if num_images < 1:
        raise ValueError(f"num_images must be at least 1, got {num_images}")
    if not 0.0 <= empty_fraction < 1.0:
        raise ValueError(f"empty_fraction must be in [0, 1), got {empty_fraction}")
    if palette not in PALETTES:
        raise ValueError(f"palette must be one of {PALETTES}, got {palette!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    # Which images are empty comes from a stream of its own: without empties, the bytes are as they always were.
    empties = np.random.default_rng(seed + 1_000_003).random(num_images) < empty_fraction
    records = []
    for index in range(num_images):
        label = CLASSES[index % len(CLASSES)]
        image, box = _draw(label, rng, palette, with_object=not empties[index])
        filename = f"img_{index:05d}.jpg"
        image.save(out_dir / filename, format="JPEG", quality=92)
        record = _metadata(filename, label, box, rng)
        records.append(dataclasses.replace(record, label=empty_label, box=None) if empties[index] else record)
    if layout == "coco-camera-traps":
        write_coco_camera_traps(out_dir, records, empty_label)
        return records
    with open(out_dir / "annotations.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for record in records:
            writer.writerow(record.row())
    return records


def write_coco_camera_traps(out_dir: Path, records: list[SampleRecord], empty_label: str = EMPTY_LABEL) -> Path:
    """The records as a COCO Camera Traps export (the layout of the public camera-trap collections, e.g. LILA's):
    the images under images/, one `annotations.json` whose image entries carry `location` (the camera),
    `datetime` ("YYYY-MM-DD HH:MM:SS", the capture hour on a date of 2019), `seq_id` and `frame_num`; an
    `empty_label` category whose annotations have no `bbox`; boxes as [x, y, width, height] in pixels."""
    (out_dir / "images").mkdir(exist_ok=True)
    categories = [*CLASSES, empty_label]
    images, annotations = [], []
    for index, record in enumerate(records):
        (out_dir / record.filename).rename(out_dir / "images" / record.filename)
        with Image.open(out_dir / "images" / record.filename) as image:
            width, height = image.size
        day = 1 + index % 28
        images.append(
            {
                "id": index,
                "file_name": record.filename,
                "width": width,
                "height": height,
                "location": record.camera_id,
                "datetime": f"2019-{1 + index % 12:02d}-{day:02d} {record.capture_hour:02d}:{index % 60:02d}:00",
                "seq_id": f"seq_{index // 3:05d}",
                "frame_num": index % 3 + 1,
            }
        )
        annotation: dict[str, object] = {
            "id": index,
            "image_id": index,
            "category_id": categories.index(record.label),
        }
        if record.box is not None:
            xmin, ymin, xmax, ymax = record.box
            annotation["bbox"] = [xmin, ymin, xmax - xmin, ymax - ymin]
        annotations.append(annotation)
    path = out_dir / "annotations.json"
    content = {
        "info": {"description": "xfer sample in the COCO Camera Traps layout"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": index, "name": name} for index, name in enumerate(categories)],
    }
    path.write_text(json.dumps(content, indent=1))
    return path


def _metadata(filename: str, label: str, box: tuple[int, int, int, int], rng: np.random.Generator) -> SampleRecord:
    hour, latitude, longitude = _HABITS[label]
    class_index = CLASSES.index(label)
    # 70% of images come from the class's two "home" cameras, the rest from anywhere.
    if rng.random() < 0.7:
        camera = CAMERAS[2 * class_index + int(rng.integers(2))]
    else:
        camera = CAMERAS[int(rng.integers(len(CAMERAS)))]
    return SampleRecord(
        filename=filename,
        label=label,
        box=box,
        capture_hour=int(round(hour + rng.normal(0, 2.5))) % 24,
        latitude=float(latitude + rng.normal(0, 3.0)),
        longitude=float(longitude + rng.normal(0, 4.0)),
        camera_id=camera,
    )


def _draw(
    label: str, rng: np.random.Generator, palette: str = "class", with_object: bool = True
) -> tuple[Image.Image, tuple[int, int, int, int]]:
    width, height = int(rng.integers(96, 181)), int(rng.integers(96, 181))
    image = Image.fromarray(_background(width, height, rng))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(1, 4))):
        points = [(int(rng.integers(width)), int(rng.integers(height))) for _ in range(2)]
        draw.line(points, fill=tuple(int(v) for v in rng.integers(60, 200, 3)), width=int(rng.integers(1, 4)))

    side = int(rng.uniform(0.3, 0.6) * min(width, height))
    xmin = int(rng.integers(0, width - side + 1))
    ymin = int(rng.integers(0, height - side + 1))
    xmax, ymax = xmin + side - 1, ymin + side - 1
    hue = (_HUES[label] + rng.normal(0, 8)) % 360 if palette == "class" else rng.uniform(0, 360)
    color = _hsv_to_rgb(hue, rng.uniform(0.75, 1.0), rng.uniform(0.8, 1.0))
    if with_object:  # An empty image draws the same numbers, so the next image's are the same either way.
        _draw_shape(draw, label, (xmin, ymin, xmax, ymax), color)
    return image, (xmin, ymin, xmax + 1, ymax + 1)


def _draw_shape(draw: ImageDraw.ImageDraw, label: str, box: tuple[int, int, int, int], color: tuple[int, ...]) -> None:
    xmin, ymin, xmax, ymax = box
    cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
    if label == "circle":
        draw.ellipse(box, fill=color)
    elif label == "square":
        draw.rectangle(box, fill=color)
    elif label == "triangle":
        draw.polygon([(cx, ymin), (xmax, ymax), (xmin, ymax)], fill=color)
    elif label == "diamond":
        draw.polygon([(cx, ymin), (xmax, cy), (cx, ymax), (xmin, cy)], fill=color)
    elif label == "cross":
        arm = (xmax - xmin) / 6
        draw.rectangle((cx - arm, ymin, cx + arm, ymax), fill=color)
        draw.rectangle((xmin, cy - arm, xmax, cy + arm), fill=color)
    else:
        raise ValueError(f"unknown class {label!r}")


def _background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A dim, low-saturation gradient with noise, so the coloured object stands out but not trivially."""
    start, end = rng.integers(20, 110, 3), rng.integers(20, 110, 3)
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:height, 0:width]
    t = (np.cos(angle) * xs / width + np.sin(angle) * ys / height + 1) / 2
    pixels = start[None, None, :] * (1 - t[..., None]) + end[None, None, :] * t[..., None]
    pixels += rng.normal(0, 12, (height, width, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _hsv_to_rgb(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    chroma = value * saturation
    x = chroma * (1 - abs((hue / 60) % 2 - 1))
    m = value - chroma
    sector = int(hue // 60) % 6
    r, g, b = [(chroma, x, 0), (x, chroma, 0), (0, chroma, x), (0, x, chroma), (x, 0, chroma), (chroma, 0, x)][sector]
    return (int((r + m) * 255), int((g + m) * 255), int((b + m) * 255))
