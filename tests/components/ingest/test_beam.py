"""The ingest Beam pipeline on tiny messy datasets: each record ends as an example or a reason."""

import json
import os

import pytest
import tensorflow as tf

from components import names
from components.ingest import beam as ingest_beam
from components.ingest import examples as ingest
from components.ingest.records import REASONS, IngestError
from tests.helpers import image_fixtures

LENIENT = ingest_beam.IngestSettings(max_reject_fraction=1.0)


def read_examples(output_dir) -> dict[str, tf.train.Example]:
    files = tf.io.gfile.glob(os.path.join(output_dir, "examples*.tfrecord.gz"))
    examples = [tf.train.Example.FromString(raw.numpy()) for raw in tf.data.TFRecordDataset(files, "GZIP")]
    return {example.features.feature["filename"].bytes_list.value[0].decode(): example for example in examples}


def read_rejects(output_dir) -> list[dict]:
    with open(os.path.join(output_dir, ingest_beam.REJECTS_FILE)) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def box_of(example) -> list[float]:
    return [round(example.features.feature[key].float_list.value[0], 4) for key in names.BOX_CORNERS]


def messy_csv_dataset(root):
    """A CSV dataset with one record for each reject reason a CSV can produce, and two good ones."""
    image_fixtures.write_image(root / "good.png")
    image_fixtures.write_image(root / "sub" / "good2.jpg", image_format="JPEG")
    (root / "empty.png").write_bytes(b"")
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    truncated = image_fixtures.encode(image_fixtures.picture(64, 64), "JPEG")[:200]
    (root / "truncated.jpg").write_bytes(truncated)
    (root / "huge.png").write_bytes(image_fixtures.encode(image_fixtures.picture(200, 200)))
    (root / "pic.bmp").write_bytes(image_fixtures.encode(image_fixtures.picture(8, 8), "BMP"))
    (root.parent / "outside.png").write_bytes(image_fixtures.encode(image_fixtures.picture(40, 30)))
    os.symlink(root.parent / "outside.png", root / "link.png")
    good_box = {"xmin": 5, "ymin": 5, "xmax": 20, "ymax": 15}
    rows = [
        ("good.png", "cat", good_box, "7"),
        ("sub/good2.jpg", "dog", good_box, "8"),
        ("good.png", "cat", good_box, "7"),  # duplicate_filename
        ("missing.png", "cat", good_box, "7"),
        ("empty.png", "cat", good_box, "7"),
        ("corrupt.png", "cat", good_box, "7"),
        ("truncated.jpg", "cat", good_box, "7"),
        ("huge.png", "cat", good_box, "7"),
        ("pic.bmp", "cat", good_box, "7"),
        ("sub/../../outside.png", "cat", good_box, "7"),
        ("/etc/hostname", "cat", good_box, "7"),
        ("link.png", "cat", good_box, "7"),
        (
            "sub/good2.jpg/../../good.png",
            "cat",
            {**good_box, "xmax": 41},
            "7",
        ),  # also a duplicate of good.png
        ("outbox.png", "cat", {**good_box, "xmax": 41}, "7"),
        ("inverted.png", "cat", {**good_box, "xmin": 30}, "7"),
        ("bird.png", "bird", good_box, "7"),
        ("nolabel.png", "", good_box, "7"),
        ("badmeta.png", "cat", good_box, "seven"),
    ]
    for name in ("outbox.png", "inverted.png", "bird.png", "nolabel.png", "badmeta.png"):
        image_fixtures.write_image(root / name)
    image_fixtures.write_csv(
        root, [{"filename": name, "label": label, **box, "hour": hour} for name, label, box, hour in rows]
    )
    return len(rows)


def test_every_csv_record_is_accounted_for(tmp_path):
    root, out = tmp_path / "data", tmp_path / "out"
    num_rows = messy_csv_dataset(root)
    settings = ingest_beam.IngestSettings(
        max_reject_fraction=1.0,
        example=ingest.ExampleSettings(column_types={"hour": "int"}, max_pixels=30_000, labels=("cat", "dog")),
    )
    summary = ingest_beam.ingest_to_tfrecords(str(root), settings, str(out))

    examples = read_examples(out)
    assert sorted(examples) == ["good.png", "sub/good2.jpg"]
    assert box_of(examples["good.png"]) == [0.125, 0.1667, 0.5, 0.5]
    rejects = read_rejects(out)
    by_file = {reject["filename"]: reject["reason"] for reject in rejects}
    assert by_file == {
        "good.png": "duplicate_filename",
        "sub/good2.jpg/../../good.png": "duplicate_filename",
        "missing.png": "missing_file",
        "empty.png": "empty_file",
        "corrupt.png": "unreadable_image",
        "truncated.jpg": "unreadable_image",
        "huge.png": "too_many_pixels",
        "pic.bmp": "unsupported_format",
        "sub/../../outside.png": "path_escape",
        "/etc/hostname": "path_escape",
        "link.png": "path_escape",
        "outbox.png": "bad_box",
        "inverted.png": "bad_box",
        "bird.png": "unknown_label",
        "nolabel.png": "no_annotation",
        "badmeta.png": "bad_metadata",
    }
    assert all(reject["detail"] and reject["source"].startswith("annotations.csv:") for reject in rejects)
    # The first row of a duplicated filename wins; the later ones name it.
    duplicate = next(r for r in rejects if r["filename"] == "good.png")
    assert duplicate["source"] == "annotations.csv:4" and "annotations.csv:2" in duplicate["detail"]

    assert summary["records"] == num_rows == summary["accepted"] + summary["rejected"]
    assert (summary["accepted"], summary["rejected"]) == (2, 16)
    assert summary["rejected_by_reason"]["bad_box"] == 2
    assert (summary["format"], summary["has_boxes"]) == ("csv", True)
    with open(out / ingest_beam.SUMMARY_FILE) as handle:
        assert json.load(handle) == summary


def test_too_many_rejects_stop_the_run_with_the_reasons(tmp_path):
    root, out = tmp_path / "data", tmp_path / "out"
    messy_csv_dataset(root)
    with pytest.raises(IngestError, match=r"rejected \(72.2%\), more than max_reject_fraction 5.0%.*missing_file: 1"):
        ingest_beam.ingest_to_tfrecords(str(root), ingest_beam.IngestSettings(), str(out))
    assert (out / ingest_beam.SUMMARY_FILE).exists()  # The evidence is kept for the user to read.


def test_an_empty_dataset_is_an_error_not_a_success(tmp_path):
    image_fixtures.write_csv(tmp_path / "data", [], columns=("filename", "label"))
    with pytest.raises(IngestError, match="no records"):
        ingest_beam.ingest_to_tfrecords(str(tmp_path / "data"), LENIENT, str(tmp_path / "out"))


def same_image_in(root, fmt):
    """The same 40x30 image with box (5, 6, 21, 16) labelled 'dog', written in annotation format `fmt`."""
    box = (5, 6, 21, 16)
    if fmt == "csv":
        image_fixtures.write_image(root / "a.png", box=box)
        image_fixtures.write_csv(
            root, [{"filename": "a.png", "label": "dog", "xmin": 5, "ymin": 6, "xmax": 21, "ymax": 16}]
        )
    elif fmt == "coco":
        image_fixtures.write_image(root / "images" / "a.png", box=box)
        image_fixtures.write_coco(
            root / "annotations" / "instances.json",
            [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
            [{"image_id": 1, "category_id": 1, "bbox": [5, 6, 16, 10]}],
            ["dog"],
        )
    elif fmt == "voc":
        image_fixtures.write_image(root / "JPEGImages" / "a.png", box=box)
        image_fixtures.write_voc(root / "Annotations" / "a.xml", "a.png", 40, 30, [("dog", box)])
    else:
        image_fixtures.write_image(root / "dog" / "a.png", box=box)
    return box


@pytest.mark.parametrize("fmt", ["csv", "coco", "voc", "class_folders"])
def test_every_format_gives_the_same_example(tmp_path, fmt):
    root, out = tmp_path / "data", tmp_path / "out"
    same_image_in(root, fmt)
    summary = ingest_beam.ingest_to_tfrecords(str(root), LENIENT, str(out))
    ((filename, example),) = read_examples(out).items()
    assert (summary["format"], summary["records"], summary["accepted"]) == (fmt, 1, 1)
    assert example.features.feature["label"].bytes_list.value == [b"dog"]
    decoded = tf.io.decode_image(example.features.feature["image"].bytes_list.value[0], channels=3).numpy()
    assert image_fixtures.red_box(decoded) == (5, 6, 21, 16)
    if fmt == "class_folders":
        assert summary["has_boxes"] is False and "xmin" not in example.features.feature
    else:
        assert summary["has_boxes"] is True
        assert box_of(example) == [round(v, 4) for v in (5 / 40, 6 / 30, 21 / 40, 16 / 30)]


def test_coco_multi_box_images_are_counted(tmp_path):
    root = tmp_path / "data"
    image_fixtures.write_image(root / "a.png")
    image_fixtures.write_image(root / "b.png")
    image_fixtures.write_coco(
        root / "coco.json",
        [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}],
        [
            {"image_id": 1, "category_id": 1, "bbox": [0, 0, 4, 4]},
            {"image_id": 1, "category_id": 2, "bbox": [5, 5, 15, 10]},
            {"image_id": 2, "category_id": 1, "bbox": [5, 5, 15, 10]},
            {"image_id": 3, "category_id": 1, "bbox": [5, 5, 15, 10]},  # no such image
        ],
        ["cat", "dog"],
    )
    largest = ingest_beam.ingest_to_tfrecords(
        str(root), ingest_beam.IngestSettings(max_reject_fraction=1.0), str(tmp_path / "largest")
    )
    assert (largest["records"], largest["accepted"], largest["multi_box_images"]) == (3, 2, 1)
    assert largest["rejected_by_reason"] == {"bad_annotation": 1}
    assert read_examples(tmp_path / "largest")["a.png"].features.feature["label"].bytes_list.value == [b"dog"]
    rejecting = ingest_beam.ingest_to_tfrecords(
        str(root),
        ingest_beam.IngestSettings(multi_box_policy="reject", max_reject_fraction=1.0),
        str(tmp_path / "reject"),
    )
    assert rejecting["rejected_by_reason"] == {"bad_annotation": 1, "multiple_boxes": 1}


def test_reject_reasons_are_all_documented():
    # Every reason the code can produce has a sentence users can read; tests above exercise each of them.
    assert all(isinstance(text, str) and text for text in REASONS.values())


@pytest.mark.slow
def test_two_worker_processes_give_the_same_result(tmp_path):
    root = tmp_path / "data"
    messy_csv_dataset(root)
    settings = ingest_beam.IngestSettings(
        max_reject_fraction=1.0,
        example=ingest.ExampleSettings(column_types={"hour": "int"}, max_pixels=30_000, labels=("cat", "dog")),
    )
    one = ingest_beam.ingest_to_tfrecords(str(root), settings, str(tmp_path / "one"))
    two = ingest_beam.ingest_to_tfrecords(
        str(root),
        settings,
        str(tmp_path / "two"),
        ["--direct_running_mode=multi_processing", "--direct_num_workers=2"],
    )
    assert one == two
    assert sorted(read_examples(tmp_path / "one")) == sorted(read_examples(tmp_path / "two"))


def ingested_messy_dataset(tmp_path):
    """The messy dataset ingested without a limit, with Beam's counts put back so that `finish` (what the
    ExampleGen executor calls after Beam) can run again with other settings."""
    root, out = tmp_path / "data", tmp_path / "out"
    messy_csv_dataset(root)
    summary = ingest_beam.ingest_to_tfrecords(str(root), LENIENT, str(out))
    counts = {"records": summary["records"], "accepted": summary["accepted"]}
    (out / ingest_beam._COUNTS_FILE).write_text(json.dumps(counts))
    return ingest_beam.formats.detect(str(root), "auto"), out, summary


def test_a_run_stopped_on_rejects_keeps_them_outside_its_output(tmp_path):
    """TFX deletes a failed execution's outputs: the list the error names must live elsewhere."""
    dataset, out, summary = ingested_messy_dataset(tmp_path)
    kept = tmp_path / "stopped" / "7"
    with pytest.raises(IngestError) as raised:
        ingest_beam.finish(dataset, ingest_beam.IngestSettings(), str(out), keep_if_stopped_in=str(kept))
    assert raised.value.rejects_path == str(kept / ingest_beam.REJECTS_FILE)
    assert str(raised.value).endswith(f"Each reject and its reason is in {kept / ingest_beam.REJECTS_FILE}")
    assert read_rejects(kept) == read_rejects(out) and len(read_rejects(kept)) == summary["rejected"] == 13
    assert json.loads((kept / ingest_beam.SUMMARY_FILE).read_text())["rejected"] == 13


def test_a_run_within_the_reject_limit_keeps_nothing_outside_its_output(tmp_path):
    dataset, out, _ = ingested_messy_dataset(tmp_path)
    kept = tmp_path / "stopped" / "7"
    ingest_beam.finish(dataset, LENIENT, str(out), keep_if_stopped_in=str(kept))
    assert not kept.exists()


def test_the_stopped_rejects_sit_beside_the_examples_artifact():
    from components.ingest import example_gen

    assert example_gen.stopped_rejects_dir("s3://b/root/ImageExampleGen/examples/12/") == (
        "s3://b/root/ImageExampleGen/stopped/12"
    )


def test_a_metadata_side_table_joins_any_format_and_counts_what_did_not_match(tmp_path):
    """Class folders carry no metadata; a side table adds it, joined on the path or, for a bare name, the
    file name. An image without a row keeps its metadata missing; a row without an image is counted."""
    root, out = tmp_path / "data", tmp_path / "out"
    for path in ("cat/a.png", "cat/b.png", "dog/c.png"):
        image_fixtures.write_image(root / path)
    (root / "metadata.csv").write_text("filename,location,hour\ncat/a.png,north,7\nc.png,south,19\ngone.png,x,1\n")
    settings = ingest_beam.IngestSettings(
        format="class_folders",
        metadata="metadata.csv",
        example=ingest.ExampleSettings(column_types={"hour": "int"}),
    )
    summary = ingest_beam.ingest_to_tfrecords(str(root), settings, str(out))
    assert (summary["accepted"], summary["rejected"]) == (3, 0)
    assert summary["metadata_columns"] == ["location", "hour"]
    assert (summary["images_without_metadata_row"], summary["metadata_rows_without_image"]) == (1, 1)
    examples = read_examples(out)
    a, b, c = (examples[name].features.feature for name in ("cat/a.png", "cat/b.png", "dog/c.png"))
    assert (a["location"].bytes_list.value, a["hour"].int64_list.value) == ([b"north"], [7])
    assert (c["location"].bytes_list.value, c["hour"].int64_list.value) == ([b"south"], [19])
    assert "location" not in b and "hour" not in b


def test_a_side_table_must_say_which_file_each_row_is_for(tmp_path):
    from components.ingest import formats

    image_fixtures.write_image(tmp_path / "cat" / "a.png")
    (tmp_path / "m.csv").write_text("name,location\na.png,north\n")
    with pytest.raises(IngestError, match="needs a `filename` column; the header is name,location"):
        formats.detect(str(tmp_path), "auto", "m.csv")
    (tmp_path / "m.csv").write_text("filename,label\na.png,dog\n")
    with pytest.raises(IngestError, match="label clash with features ingest writes itself"):
        formats.detect(str(tmp_path), "auto", "m.csv")
    (tmp_path / "m.csv").write_text("filename,location\na.png,north\n./a.png,south\n")
    with pytest.raises(IngestError, match="line 3: './a.png' has a row already"):
        formats.detect(str(tmp_path), "auto", "m.csv")
    with pytest.raises(IngestError, match="no metadata table at"):
        formats.detect(str(tmp_path), "auto", "missing.csv")
