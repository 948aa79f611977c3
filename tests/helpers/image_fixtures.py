"""Tiny generated datasets in every supported annotation format, and images with known pixels and boxes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

EXIF_ORIENTATION = 0x0112
BOX_COLOUR = (255, 0, 0)


def picture(width: int, height: int, box: tuple[int, int, int, int] | None = None, seed: int = 0) -> np.ndarray:
    """An RGB array: a dark noisy background with a pure red box, so the box can be found in the pixels."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 80, (height, width, 3), dtype=np.uint8)
    if box is not None:
        xmin, ymin, xmax, ymax = box
        pixels[ymin:ymax, xmin:xmax] = BOX_COLOUR
    return pixels


def red_box(pixels: np.ndarray) -> tuple[int, int, int, int]:
    """(xmin, ymin, xmax, ymax) of the red pixels, with exclusive max, as a box in pixel edges."""
    red = (pixels[..., 0] > 180) & (pixels[..., 1] < 90) & (pixels[..., 2] < 90)
    ys, xs = np.nonzero(red)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def encode(
    pixels: np.ndarray | Image.Image, image_format: str = "PNG", orientation: int | None = None, **options
) -> bytes:
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    if orientation is not None:
        exif = Image.Exif()
        exif[EXIF_ORIENTATION] = orientation
        options["exif"] = exif
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


# What EXIF orientation N asks a viewer to do to the stored pixels, inverted: applied to the upright
# picture it gives the pixels to store, so that a correct reader shows the upright picture again.
_STORE = {
    1: lambda image: image,
    2: lambda image: image.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    3: lambda image: image.transpose(Image.Transpose.ROTATE_180),
    4: lambda image: image.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
    5: lambda image: image.transpose(Image.Transpose.TRANSPOSE),
    6: lambda image: image.transpose(Image.Transpose.ROTATE_90),
    7: lambda image: image.transpose(Image.Transpose.TRANSVERSE),
    8: lambda image: image.transpose(Image.Transpose.ROTATE_270),
}


def stored_for_orientation(upright: np.ndarray, orientation: int) -> np.ndarray:
    """The pixel grid a camera stores for an upright scene when it tags the file with `orientation`."""
    return np.asarray(_STORE[orientation](Image.fromarray(upright)))


def write_image(
    path: Path,
    width: int = 40,
    height: int = 30,
    box=(5, 5, 20, 15),
    image_format: str = "PNG",
    seed: int = 0,
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(picture(width, height, box, seed), image_format))
    return path


def write_csv(root: Path, rows: list[dict[str, object]], columns: tuple[str, ...] | None = None) -> Path:
    columns = columns or tuple(rows[0])
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "annotations.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return root / "annotations.csv"


def write_coco(path: Path, images: list[dict], annotations: list[dict], categories: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {
        "images": images,
        "annotations": [{"id": index + 1, "iscrowd": 0, **annotation} for index, annotation in enumerate(annotations)],
        "categories": [{"id": index + 1, "name": name} for index, name in enumerate(categories)],
    }
    path.write_text(json.dumps(content))
    return path


def voc_xml(filename: str, width: int, height: int, objects: list[tuple[str, tuple[object, ...]]]) -> str:
    parts = [
        f"<annotation><folder>x</folder><filename>{filename}</filename>",
        f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>",
    ]
    for label, (xmin, ymin, xmax, ymax) in objects:
        parts.append(
            f"<object><name>{label}</name><difficult>0</difficult><bndbox><xmin>{xmin}</xmin>"
            f"<ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>"
        )
    parts.append("</annotation>")
    return "".join(parts)


def write_voc(path: Path, filename: str, width: int, height: int, objects) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(voc_xml(filename, width, height, objects))
    return path
