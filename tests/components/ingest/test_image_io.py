"""Decoding real-world files: each accepted image decodes in TensorFlow to the picture its boxes refer to."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from components.ingest import image_io
from components.ingest.records import RecordError
from tests.helpers import image_fixtures


def tf_decode(data: bytes) -> np.ndarray:
    # Exactly how Transform decodes the stored bytes (components/transform/features.py).
    return tf.io.decode_image(data, channels=3, expand_animations=False).numpy()


def test_plain_rgb_jpeg_and_png_are_kept_byte_for_byte():
    pixels = image_fixtures.picture(33, 21, (2, 3, 10, 12))
    for image_format in ("JPEG", "PNG"):
        data = image_fixtures.encode(pixels, image_format)
        stored = image_io.normalize(data)
        assert stored.data == data
        assert (stored.width, stored.height, stored.reencoded) == (33, 21, False)


def test_grayscale_is_kept_and_decodes_to_equal_rgb_channels():
    gray = np.arange(12 * 10, dtype=np.uint8).reshape(10, 12)
    stored = image_io.normalize(image_fixtures.encode(Image.fromarray(gray, mode="L")))
    decoded = tf_decode(stored.data)
    assert decoded.shape == (10, 12, 3)
    for channel in range(3):
        np.testing.assert_array_equal(decoded[..., channel], gray)


def test_rgba_is_flattened_onto_white():
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., 0] = 200  # Red under alpha 0 must not leak through.
    rgba[:4, :, 3] = 255  # Top half opaque red, bottom half transparent.
    stored = image_io.normalize(image_fixtures.encode(Image.fromarray(rgba, mode="RGBA")))
    decoded = tf_decode(stored.data)
    assert stored.reencoded
    np.testing.assert_array_equal(decoded[0, 0], [200, 0, 0])
    np.testing.assert_array_equal(decoded[7, 7], [255, 255, 255])


def test_palette_png_decodes_to_its_colours():
    palette_image = Image.fromarray(image_fixtures.picture(16, 16, (4, 4, 12, 12))).quantize(colors=8)
    expected = np.asarray(palette_image.convert("RGB"))
    stored = image_io.normalize(image_fixtures.encode(palette_image))
    np.testing.assert_array_equal(tf_decode(stored.data), expected)


def test_16_bit_grayscale_is_scaled_not_clipped():
    values = np.array([[0, 256, 32768, 65535]], dtype=np.uint16)
    stored = image_io.normalize(image_fixtures.encode(Image.fromarray(values, mode="I;16")))
    np.testing.assert_array_equal(tf_decode(stored.data)[0, :, 0], [0, 1, 128, 255])


def test_16_bit_rgb_png_is_stored_as_8_bit():
    pixels = np.zeros((2, 3, 3), dtype=np.uint16)
    pixels[0, 0] = (65535, 32768, 0)
    encoded = tf.io.encode_png(tf.constant(pixels)).numpy()
    assert encoded[24] == 16  # The fixture really is 16 bits deep.
    stored = image_io.normalize(encoded)
    assert stored.reencoded and stored.data[24] == 8
    np.testing.assert_array_equal(tf_decode(stored.data)[0, 0], [255, 128, 0])


def test_cmyk_jpeg_is_converted_to_rgb():
    cmyk = Image.fromarray(image_fixtures.picture(16, 16)).convert("CMYK")
    stored = image_io.normalize(image_fixtures.encode(cmyk, "JPEG"))
    assert Image.open(io.BytesIO(stored.data)).mode == "RGB"


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
def test_exif_orientation_is_applied_and_boxes_follow(orientation, image_format):
    width, height, box = 48, 30, (6, 4, 20, 12)
    upright = image_fixtures.picture(width, height, box)
    stored_pixels = image_fixtures.stored_for_orientation(upright, orientation)
    stored = image_io.normalize(image_fixtures.encode(stored_pixels, image_format, orientation=orientation, quality=98))
    decoded = tf_decode(stored.data)
    assert (stored.width, stored.height) == (width, height)
    assert decoded.shape == (height, width, 3)
    assert image_fixtures.red_box(decoded) == box
    # The same box drawn on the stored grid maps onto the upright one.
    stored_box = image_fixtures.red_box(stored_pixels)
    assert image_io.orient_box(stored_box, stored.stored_width, stored.stored_height, orientation) == box


def test_orient_box_rejects_unknown_orientation():
    with pytest.raises(ValueError, match="1..8"):
        image_io.orient_box((0, 0, 1, 1), 4, 4, 9)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty_file"),
        (b"this is not an image", "unreadable_image"),
        (image_fixtures.encode(image_fixtures.picture(64, 64), "JPEG")[:300], "unreadable_image"),
        (image_fixtures.encode(image_fixtures.picture(64, 64), "PNG")[:-40], "unreadable_image"),
        (image_fixtures.encode(image_fixtures.picture(8, 8), "BMP"), "unsupported_format"),
        (image_fixtures.encode(image_fixtures.picture(8, 8), "GIF"), "unsupported_format"),
    ],
    ids=["empty", "garbage", "truncated-jpeg", "truncated-png", "bmp", "gif"],
)
def test_unusable_files_are_rejected_with_a_reason(data, reason):
    with pytest.raises(RecordError) as caught:
        image_io.normalize(data)
    assert caught.value.reason == reason


def test_corrupt_jpeg_header_is_rejected():
    data = bytearray(image_fixtures.encode(image_fixtures.picture(64, 64), "JPEG"))
    start = data.index(b"\xff\xc4")  # The Huffman tables: without them no decoder can read the scan.
    data[start + 4 : start + 40] = b"\xff" * 36
    with pytest.raises(RecordError) as caught:
        image_io.normalize(bytes(data))
    assert caught.value.reason == "unreadable_image"


def test_pixel_limit_is_checked_from_the_header_before_decoding():
    # A 1-bit PNG of 12000x12000 is a few kilobytes; decoded to RGB it would be 432 MB.
    bomb = image_fixtures.encode(Image.new("1", (12000, 12000)), "PNG", optimize=True)
    assert len(bomb) < 100_000
    with pytest.raises(RecordError) as caught:
        image_io.normalize(bomb, max_pixels=10_000_000)
    assert caught.value.reason == "too_many_pixels"
    assert "12000x12000" in str(caught.value)
