"""Batch scoring (components/serving/batch.py) in Beam on a tiny SavedModel whose answers are known: one row per
image, metadata from the annotations reaching the model, and every bad file a row with its reason."""

import csv
import io

import numpy as np
import pytest
from PIL import Image

from components.serving import batch, contract, predict
from tests.helpers.tiny_serving import TYPES, png, tiny_saved_model


def _rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _jpeg(value: int, size=(10, 6)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(buffer, format="JPEG", quality=100)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_saved_model(str(tmp_path_factory.mktemp("model") / "1"), 0.0)


def test_a_plain_folder_gives_a_row_per_image_and_a_reason_per_bad_file(tmp_path, model_dir):
    folder = tmp_path / "new"
    (folder / "day2").mkdir(parents=True)
    (folder / "white.png").write_bytes(png(255))
    (folder / "day2" / "black.png").write_bytes(png(0))
    (folder / "broken.png").write_bytes(png(255)[:40])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "scan.tiff").write_bytes(b"II*\0")
    (folder / "notes.txt").write_text("not an image, not a record")
    (folder / ".hidden.png").write_bytes(png(0))

    summary = batch.score_folder(model_dir, str(folder), str(tmp_path / "out" / "predictions.csv"))

    rows = _rows(tmp_path / "out" / "predictions.csv")
    assert [(row["filename"], row["status"], row["reason"]) for row in rows] == [
        ("broken.png", "rejected", "unreadable_image"),
        ("day2/black.png", "scored", ""),
        ("empty.jpg", "rejected", "empty_file"),
        ("scan.tiff", "rejected", "unsupported_format"),
        ("white.png", "scored", ""),
    ]
    assert (summary.format, summary.images, summary.scored, summary.rejected) == ("images", 5, 2, 3)
    assert summary.rejected_by_reason == {"empty_file": 1, "unreadable_image": 1, "unsupported_format": 1}
    assert all(row["detail"] for row in rows if row["status"] == "rejected")
    # The same answer as one image at a time: the box's xmax is the image's brightness in the tiny model.
    scored = {row["filename"]: row for row in rows if row["status"] == "scored"}
    [white] = predict.predict_serialized(model_dir, [contract.make_raw_example(png(255), {}, TYPES)])
    assert scored["white.png"]["label"] == white["class"]
    assert float(scored["white.png"]["probability_square"]) == pytest.approx(white["probabilities"]["square"])
    assert float(scored["white.png"]["xmax"]) == pytest.approx(1.0)
    assert float(scored["day2/black.png"]["xmax"]) == pytest.approx(0.0)
    assert (scored["white.png"]["image_width"], scored["white.png"]["image_height"]) == ("8", "8")


def test_an_annotated_folder_feeds_its_metadata_to_the_model_and_keeps_its_labels(tmp_path, model_dir):
    folder = tmp_path / "annotated"
    folder.mkdir()
    for name, value in (("a.jpg", 250), ("b.jpg", 10), ("c.jpg", 128), ("d.jpg", 128)):
        (folder / name).write_bytes(_jpeg(value))
    (folder / "annotations.csv").write_text(
        "filename,label,xmin,ymin,xmax,ymax,capture_hour,camera_id,weather\n"
        "a.jpg,square,0,0,5,5,23,cam_01,rain\n"
        "b.jpg,circle,0,0,5,5,1,cam_02,sun\n"
        "c.jpg,circle,0,0,5,5,noon,cam_02,sun\n"
        "d.jpg,circle,0,0,5,5,,cam_02,\n"
        "gone.jpg,circle,0,0,5,5,3,cam_02,sun\n"
    )
    batch.score_folder(model_dir, str(folder), str(tmp_path / "scores.csv"))

    rows = {row["filename"]: row for row in _rows(tmp_path / "scores.csv")}
    assert set(rows) == {"a.jpg", "b.jpg", "c.jpg", "d.jpg", "gone.jpg"}
    # In the tiny model "square" wins from 12 o'clock on: the hour read from the CSV reached it.
    assert (rows["a.jpg"]["label"], rows["b.jpg"]["label"]) == ("square", "circle")
    assert (rows["a.jpg"]["annotated_label"], rows["b.jpg"]["annotated_label"]) == ("square", "circle")
    assert float(rows["a.jpg"]["probability_square"]) > 0.5 > float(rows["b.jpg"]["probability_square"])
    # A missing value is served the column's default (hour 0), as the served model fills it in.
    assert rows["d.jpg"]["status"] == "scored" and float(rows["d.jpg"]["probability_square"]) < 0.5
    assert (rows["c.jpg"]["status"], rows["c.jpg"]["reason"]) == ("rejected", "bad_metadata")
    assert "capture_hour" in rows["c.jpg"]["detail"]
    assert (rows["gone.jpg"]["status"], rows["gone.jpg"]["reason"]) == ("rejected", "missing_file")


def test_the_newest_version_of_a_serving_folder_is_used(tmp_path):
    serving = tmp_path / "serving"
    tiny_saved_model(str(serving / "1"), -100.0)  # Always "circle".
    tiny_saved_model(str(serving / "2"), 100.0)  # Always "square".
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "x.png").write_bytes(png(9))
    summary = batch.score_folder(str(serving), str(tmp_path / "images"), str(tmp_path / "p.csv"))
    assert summary.model_dir == str(serving / "2") and summary.labels == {"square": 1}
