"""Checks and normalises one encoded image so that its stored bytes decode to what the box coordinates mean.

Downstream decodes with `tf.io.decode_image(..., channels=3)`, which ignores EXIF orientation, alpha and
16-bit depth. So a file is kept byte for byte only when that decode already gives the right picture (8-bit RGB
or grayscale JPEG/PNG, upright); anything else is re-encoded once here: orientation applied, transparency
flattened onto white, 16 bits scaled to 8, CMYK and palette converted to RGB.
"""

from __future__ import annotations

import dataclasses
import io
import warnings

import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps, UnidentifiedImageError

from components.ingest.records import RecordError
from components.ingest.settings import DEFAULT_MAX_PIXELS

# "MPO" is how Pillow names the multi-picture JPEGs many phones write; TensorFlow decodes their first frame.
_JPEG_FORMATS = ("JPEG", "MPO")
SUPPORTED_FORMATS = _JPEG_FORMATS + ("PNG",)
EXIF_ORIENTATION_TAG = 0x0112
# Modes TensorFlow's 8-bit decoder reads as they are: RGB, or grayscale it expands to RGB.
_PLAIN_MODES = ("RGB", "L")
# Transparent pixels become this colour, as in most image viewers, not the arbitrary colour under alpha 0.
_BACKGROUND = (255, 255, 255)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclasses.dataclass(frozen=True)
class StoredImage:
    """The bytes to store and the size they decode to (after orientation)."""

    data: bytes
    width: int
    height: int
    stored_width: int  # The size of the pixel grid in the file, before EXIF orientation.
    stored_height: int
    orientation: int  # EXIF orientation, 1 (upright) when the file has none.
    reencoded: bool


def normalize(image_bytes: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> StoredImage:
    """Validates an encoded JPEG/PNG fully and returns bytes that decode upright to 8-bit RGB or grayscale.

    Raises RecordError: empty_file, too_many_pixels, unsupported_format or unreadable_image.
    """
    if not image_bytes:
        raise RecordError("empty_file", "the file has zero bytes")
    try:
        with warnings.catch_warnings():
            # Pillow warns from half its own bomb limit; our limit is checked explicitly below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(image_bytes)) as image:
                width, height = image.size
                # Decompression-bomb guard: `Image.open` has read the header only, so a larger image is
                # rejected from its stated size before `load` decodes it.
                if width * height > max_pixels:
                    raise RecordError("too_many_pixels", f"{width}x{height} exceeds the pixel limit of {max_pixels}")
                if image.format not in SUPPORTED_FORMATS:
                    raise RecordError("unsupported_format", f"{image.format} image; xfer reads JPEG and PNG")
                image.load()  # A full decode, which is what catches truncated and corrupt files.
                orientation = _orientation(image)
                if orientation == 1 and image.mode in _PLAIN_MODES and not _is_16_bit_png(image_bytes):
                    _check_tensorflow_decodes(image_bytes, width, height)
                    return StoredImage(image_bytes, width, height, width, height, 1, reencoded=False)
                upright = _to_8_bit_rgb(ImageOps.exif_transpose(image) if orientation != 1 else image)
                data = _encode(upright, "JPEG" if image.format in _JPEG_FORMATS else "PNG")
                return StoredImage(data, upright.width, upright.height, width, height, orientation, reencoded=True)
    except Image.DecompressionBombError as error:
        raise RecordError("too_many_pixels", str(error)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        if isinstance(error, RecordError):
            raise
        raise RecordError("unreadable_image", f"cannot decode: {error}") from None


def orient_box(
    box: tuple[float, float, float, float], stored_width: int, stored_height: int, orientation: int
) -> tuple[float, float, float, float]:
    """A pixel box (xmin, ymin, xmax, ymax) on the stored grid -> the same region after EXIF orientation."""
    xmin, ymin, xmax, ymax = box
    width, height = stored_width, stored_height
    # Each case maps the corners with the flip/rotation Pillow's exif_transpose applies to the pixels.
    corners = {
        1: ((xmin, ymin), (xmax, ymax)),
        2: ((width - xmax, ymin), (width - xmin, ymax)),  # mirrored left-right
        3: ((width - xmax, height - ymax), (width - xmin, height - ymin)),  # rotated 180
        4: ((xmin, height - ymax), (xmax, height - ymin)),  # mirrored top-bottom
        5: ((ymin, xmin), (ymax, xmax)),  # transposed
        6: ((height - ymax, xmin), (height - ymin, xmax)),  # rotated 90 clockwise
        7: ((height - ymax, width - xmax), (height - ymin, width - xmin)),  # transversed
        8: ((ymin, width - xmax), (ymax, width - xmin)),  # rotated 90 counter-clockwise
    }
    if orientation not in corners:
        raise ValueError(f"EXIF orientation must be 1..8, got {orientation}")
    (new_xmin, new_ymin), (new_xmax, new_ymax) = corners[orientation]
    return (new_xmin, new_ymin, new_xmax, new_ymax)


def _check_tensorflow_decodes(image_bytes: bytes, width: int, height: int) -> None:
    # Bytes kept as they are must also pass the decoder Transform uses: Pillow's libjpeg accepts some files
    # (arithmetic coding, 12-bit) that TensorFlow's does not, and one such file would stop the run there.
    try:
        shape = tf.io.decode_image(image_bytes, channels=3, expand_animations=False).shape
    except tf.errors.InvalidArgumentError as error:
        raise RecordError("unreadable_image", f"TensorFlow cannot decode it: {error.message}") from None
    if tuple(shape[:2]) != (height, width):
        raise RecordError("unreadable_image", f"TensorFlow decodes it as {shape[1]}x{shape[0]}, not {width}x{height}")


def _orientation(image: Image.Image) -> int:
    value = image.getexif().get(EXIF_ORIENTATION_TAG, 1)
    # Out-of-range values occur in the wild; viewers treat them as upright, and so do we.
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _is_16_bit_png(image_bytes: bytes) -> bool:
    # Pillow opens 48/64-bit RGB(A) PNGs as 8-bit modes, so the depth is read from the IHDR chunk (byte 24).
    return image_bytes[:8] == _PNG_SIGNATURE and len(image_bytes) > 24 and image_bytes[24] == 16


def _to_8_bit_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grayscale: Pillow's convert("L") clips at 255 instead of scaling, so scale explicitly.
        pixels = np.asarray(image).astype(np.uint32)
        return Image.fromarray((np.clip(pixels, 0, 65535) >> 8).astype(np.uint8), mode="L").convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _encode(image: Image.Image, image_format: str) -> bytes:
    buffer = io.BytesIO()
    if image_format == "JPEG":
        # A JPEG is re-encoded only to apply its orientation or colour space; 95 keeps that loss invisible.
        image.save(buffer, format="JPEG", quality=95)
    else:
        image.save(buffer, format="PNG")
    return buffer.getvalue()
