import csv
import hashlib

from PIL import Image

from components.ingest import sample_data


def _digest(folder):
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path):
    sample_data.write_sample_dataset(tmp_path / "a", num_images=6, seed=3)
    sample_data.write_sample_dataset(tmp_path / "b", num_images=6, seed=3)
    sample_data.write_sample_dataset(tmp_path / "c", num_images=6, seed=4)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_annotations_match_the_images(tmp_path):
    records = sample_data.write_sample_dataset(tmp_path, num_images=10, seed=1)
    with open(tmp_path / "annotations.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == sample_data.CSV_COLUMNS
    assert [row["filename"] for row in rows] == [record.filename for record in records]
    assert {row["label"] for row in rows} == set(sample_data.CLASSES)
    for row in rows:
        with Image.open(tmp_path / row["filename"]) as image:
            width, height = image.size
        xmin, ymin, xmax, ymax = (int(row[key]) for key in ("xmin", "ymin", "xmax", "ymax"))
        assert 0 <= xmin < xmax <= width and 0 <= ymin < ymax <= height
        assert 0 <= int(row["capture_hour"]) <= 23
        assert row["camera_id"] in sample_data.CAMERAS


def test_the_box_encloses_the_coloured_object(tmp_path):
    """Pixels far brighter than the dim background lie inside the box (the object is what the box marks)."""
    records = sample_data.write_sample_dataset(tmp_path, num_images=5, seed=2)
    square = next(record for record in records if record.label == "square")
    with Image.open(tmp_path / square.filename) as image:
        pixels = image.convert("HSV")
        xmin, ymin, xmax, ymax = square.box
        centre = pixels.getpixel(((xmin + xmax) // 2, (ymin + ymax) // 2))
        outside = pixels.getpixel((xmin - 2, ymin)) if xmin >= 2 else pixels.getpixel((xmax + 1, ymax - 1))
    assert centre[2] > 180  # The object is bright.
    assert centre[1] > outside[1]  # And more saturated than the background next to it.


def _centre_hues(folder, records, label):
    hues = []
    for record in records:
        if record.label == label:
            xmin, ymin, xmax, ymax = record.box
            with Image.open(folder / record.filename) as image:
                hues.append(image.convert("HSV").getpixel(((xmin + xmax) // 2, (ymin + ymax) // 2))[0])
    return hues


def test_the_random_palette_draws_a_class_in_any_hue_and_the_sample_keeps_its_own(tmp_path):
    """The source task for pretraining (palette random) is another task: a square's colour varies widely,
    while the sample's squares keep their class hue (PIL's hue is 0..255 for 0..360 degrees)."""
    sample = sample_data.write_sample_dataset(tmp_path / "sample", num_images=40, seed=3)
    source = sample_data.write_sample_dataset(tmp_path / "source", num_images=40, seed=3, palette="random")
    sample_hues = _centre_hues(tmp_path / "sample", sample, "square")
    source_hues = _centre_hues(tmp_path / "source", source, "square")
    assert max(sample_hues) - min(sample_hues) < 30
    assert max(source_hues) - min(source_hues) > 100


def test_empty_images_have_no_box_and_leave_the_others_unchanged(tmp_path):
    from components.ingest import sample_data

    plain = sample_data.write_sample_dataset(tmp_path / "plain", num_images=12, seed=3)
    mixed = sample_data.write_sample_dataset(tmp_path / "mixed", num_images=12, seed=3, empty_fraction=0.4)
    empties = [record for record in mixed if record.box is None]
    assert 0 < len(empties) < 12 and {record.label for record in empties} == {"empty"}
    rows = (tmp_path / "mixed" / "annotations.csv").read_text().splitlines()
    assert any(",empty,,,,," in row for row in rows)
    for before, after in zip(plain, mixed, strict=True):
        if after.box is not None:  # Every image with an object is the very same file.
            assert (tmp_path / "plain" / before.filename).read_bytes() == (
                tmp_path / "mixed" / after.filename
            ).read_bytes()


def test_the_camera_traps_layout_reads_back_with_its_metadata_and_empty_images(tmp_path):
    from components.ingest import formats, sample_data

    records = sample_data.write_sample_dataset(
        tmp_path, num_images=9, seed=3, empty_fraction=0.4, layout="coco-camera-traps"
    )
    dataset = formats.detect(str(tmp_path))
    assert (dataset.format, dataset.metadata_columns) == ("coco", ("location", "datetime", "seq_id", "frame_num"))
    read = sorted(
        (
            item
            for source in dataset.sources
            for item in formats.read_source(str(tmp_path), "coco", source, no_object_class="empty")
        ),
        key=lambda item: item.filename,
    )
    assert [item.label for item in read] == [record.label for record in records]
    assert [item.box is None for item in read] == [record.box is None for record in records]
    assert read[0].metadata["location"] == records[0].camera_id
    assert read[0].metadata["datetime"].endswith(f"{records[0].capture_hour:02d}:00:00")
