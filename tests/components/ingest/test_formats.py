"""Each annotation format, detected and read into the same `Record`s; broken annotations become rejects."""

import pytest

from components.ingest import formats
from components.ingest.records import Box, IngestError, Record, Reject
from tests.helpers import image_fixtures


def read_all(dataset: formats.Dataset, policy: formats.MultiBoxPolicy = "largest") -> list:
    return [
        item for source in dataset.sources for item in formats.read_source(dataset.root, dataset.format, source, policy)
    ]


def test_csv_with_boxes_and_metadata(tmp_path):
    image_fixtures.write_csv(
        tmp_path,
        [
            {"filename": "a.png", "label": "cat", "xmin": 1, "ymin": 2, "xmax": 3, "ymax": 4, "hour": 7},
            {"filename": "b.png", "label": "dog", "xmin": "x", "ymin": 2, "xmax": 3, "ymax": 4, "hour": ""},
        ],
    )
    dataset = formats.detect(str(tmp_path))
    assert (dataset.format, dataset.has_boxes, dataset.metadata_columns) == ("csv", True, ("hour",))
    first, second = read_all(dataset)
    assert first == Record("a.png", "annotations.csv:2", "cat", Box("1", "2", "3", "4"), {"hour": "7"}, num_boxes=1)
    assert second.box == Box("x", "2", "3", "4")  # Checked later, when the image size is known.
    assert second.source == "annotations.csv:3"


def test_csv_without_box_columns_is_classification(tmp_path):
    image_fixtures.write_csv(tmp_path, [{"filename": "a.png", "label": "cat"}])
    dataset = formats.detect(str(tmp_path))
    assert not dataset.has_boxes
    assert read_all(dataset)[0].box is None


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (("filename", "xmin"), "missing column"),
        (("filename", "label", "xmin"), "all four box columns"),
        (("filename", "label", "image"), "clash"),
    ],
)
def test_csv_header_problems_stop_the_run(tmp_path, columns, message):
    (tmp_path / "annotations.csv").write_text(",".join(columns) + "\n")
    with pytest.raises(IngestError, match=message):
        formats.detect(str(tmp_path))


def test_class_folders_like_keras(tmp_path):
    image_fixtures.write_image(tmp_path / "cat" / "1.jpg", image_format="JPEG")
    image_fixtures.write_image(tmp_path / "cat" / "nested" / "2.PNG")
    image_fixtures.write_image(tmp_path / "dog" / "3.png")
    image_fixtures.write_image(tmp_path / "loose.png")
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    (tmp_path / "dog" / ".DS_Store").write_bytes(b"\0")
    (tmp_path / "README.md").write_text("about the data")
    dataset = formats.detect(str(tmp_path))
    assert (dataset.format, dataset.has_boxes) == ("class_folders", False)
    items = read_all(dataset)
    records = sorted((item.filename, item.label) for item in items if isinstance(item, Record))
    assert records == [("cat/1.jpg", "cat"), ("cat/nested/2.PNG", "cat"), ("dog/3.png", "dog")]
    rejects = sorted((item.filename, item.reason) for item in items if isinstance(item, Reject))
    assert rejects == [("dog/notes.txt", "unsupported_format"), ("loose.png", "no_annotation")]


def coco_dataset(root, annotations, images=None, categories=("cat", "dog")):
    images = images or [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}]
    return image_fixtures.write_coco(
        root / "annotations" / "instances_default.json", images, annotations, list(categories)
    )


def test_coco_box_is_converted_from_xywh(tmp_path):
    coco_dataset(tmp_path, [{"image_id": 1, "category_id": 2, "bbox": [5, 6, 10, 4]}])
    dataset = formats.detect(str(tmp_path))
    assert (dataset.format, dataset.sources, dataset.has_boxes) == (
        "coco",
        ("annotations/instances_default.json",),
        True,
    )
    (record,) = read_all(dataset)
    assert (record.label, record.box, record.declared_size, record.num_boxes) == (
        "dog",
        Box(5, 6, 15, 10),
        (40, 30),
        1,
    )
    # CVAT keeps the JSON in annotations/ and the images in images/ or at the root.
    assert record.filename == "annotations/a.png"
    assert record.fallback_filenames == ("a.png", "images/a.png")


def test_coco_multiple_boxes_follow_the_policy(tmp_path):
    coco_dataset(
        tmp_path,
        [
            {"image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2]},
            {"image_id": 1, "category_id": 2, "bbox": [1, 1, 10, 10]},
            {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10]},
        ],
    )
    dataset = formats.detect(str(tmp_path))
    (largest,) = read_all(dataset, "largest")
    assert (largest.label, largest.box, largest.num_boxes) == ("dog", Box(1, 1, 11, 11), 3)
    (rejected,) = read_all(dataset, "reject")
    assert (rejected.reason, rejected.filename) == ("multiple_boxes", "a.png")


def test_coco_broken_annotations_are_rejects(tmp_path):
    images = [
        {"id": 1, "file_name": "unknown_category.png"},
        {"id": 2, "file_name": "bad_bbox.png"},
        {"id": 3, "file_name": "no_boxes.png"},
        {"id": 3, "file_name": "same_id.png"},
    ]
    coco_dataset(
        tmp_path,
        [
            {"image_id": 1, "category_id": 9, "bbox": [0, 0, 1, 1]},
            {"image_id": 2, "category_id": 1, "bbox": [0, 0, "wide", 1]},
            {"image_id": 77, "category_id": 1, "bbox": [0, 0, 1, 1]},
        ],
        images=images,
    )
    rejects = sorted((item.filename, item.reason) for item in read_all(formats.detect(str(tmp_path))))
    assert rejects == [
        ("", "bad_annotation"),
        ("bad_bbox.png", "bad_box"),
        ("no_boxes.png", "no_annotation"),
        ("same_id.png", "bad_annotation"),
        ("unknown_category.png", "bad_annotation"),
    ]


def test_voc_in_the_devkit_layout(tmp_path):
    image_fixtures.write_voc(tmp_path / "Annotations" / "a.xml", "a.jpg", 40, 30, [("cat", (1, 2, 11, 12))])
    image_fixtures.write_image(tmp_path / "JPEGImages" / "a.jpg", image_format="JPEG")
    dataset = formats.detect(str(tmp_path))
    assert (dataset.format, dataset.sources, dataset.has_boxes) == ("voc", ("Annotations/a.xml",), True)
    (record,) = read_all(dataset)
    assert (record.label, record.box, record.declared_size) == ("cat", Box(1.0, 2.0, 11.0, 12.0), (40, 30))
    assert "JPEGImages/a.jpg" in (record.filename, *record.fallback_filenames)


def test_voc_problems_are_rejects(tmp_path):
    image_fixtures.write_voc(tmp_path / "a.xml", "a.png", 40, 30, [("cat", (1, 1, 5, 5)), ("dog", (0, 0, 20, 20))])
    image_fixtures.write_voc(tmp_path / "b.xml", "b.png", 40, 30, [])
    image_fixtures.write_voc(tmp_path / "c.xml", "c.png", 40, 30, [("cat", (1, "one", 5, 5))])
    (tmp_path / "d.xml").write_text("<annotation><filename>d.png</filename>")
    dataset = formats.detect(str(tmp_path))
    by_file = {item.filename: item for item in read_all(dataset, "reject")}
    assert {name: item.reason for name, item in by_file.items()} == {
        "a.png": "multiple_boxes",
        "b.png": "no_annotation",
        "c.png": "bad_box",
        "d.xml": "bad_annotation",
    }
    assert by_file["d.xml"].source == "d.xml"
    largest = next(item for item in read_all(dataset, "largest") if isinstance(item, Record))
    assert (largest.label, largest.num_boxes) == ("dog", 2)


def test_detection_order_and_forcing(tmp_path):
    # A VOC dataset keeps its images in a subfolder, which alone would pass for class folders.
    image_fixtures.write_voc(tmp_path / "Annotations" / "a.xml", "a.png", 40, 30, [("cat", (1, 1, 5, 5))])
    image_fixtures.write_image(tmp_path / "JPEGImages" / "a.png")
    assert formats.detect(str(tmp_path)).format == "voc"
    forced = formats.detect(str(tmp_path), "class_folders")
    assert (forced.format, forced.sources) == ("class_folders", (".", "Annotations", "JPEGImages"))
    with pytest.raises(IngestError, match="does not hold a coco dataset"):
        formats.detect(str(tmp_path), "coco")


def test_undetectable_folder_says_what_it_expected(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(IngestError, match="--format"):
        formats.detect(str(tmp_path))
    with pytest.raises(IngestError, match="does not exist"):
        formats.detect(str(tmp_path / "nowhere"))


def test_coco_image_fields_coco_does_not_define_are_metadata(tmp_path):
    """COCO Camera Traps' image entries: location, datetime, seq_id, frame_num; a list is no column."""
    images = [
        {
            "id": 1,
            "file_name": "a.png",
            "width": 40,
            "height": 30,
            "date_captured": "2019",
            "location": "cam_07",
            "datetime": "2019-06-01 05:42:10",
            "seq_id": "s1",
            "frame_num": 1,
            "night": True,
            "tags": ["x"],
        },
        {"id": 2, "file_name": "b.png", "width": 40, "height": 30, "location": 12, "frame_num": 2.0, "rain": 0.5},
    ]
    annotations = [
        {"image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]},
        {"image_id": 2, "category_id": 2, "bbox": [1, 1, 4, 4]},
    ]
    coco_dataset(tmp_path, annotations, images)
    dataset = formats.detect(str(tmp_path))
    assert dataset.metadata_columns == ("location", "datetime", "seq_id", "frame_num", "night", "rain")
    first, second = read_all(dataset)
    assert first.metadata == {
        "location": "cam_07",
        "datetime": "2019-06-01 05:42:10",
        "seq_id": "s1",
        "frame_num": "1",
        "night": "true",
        "rain": "",
    }
    # A field an entry lacks is missing (""), as an empty CSV cell is; 2.0 is written as the int it is.
    assert second.metadata == {
        "location": "12",
        "datetime": "",
        "seq_id": "",
        "frame_num": "2",
        "night": "",
        "rain": "0.5",
    }


def test_coco_fields_named_like_what_ingest_writes_are_not_metadata(tmp_path):
    images = [{"id": 1, "file_name": "a.png", "label": "x", "image_width": 3, "xmin": 0, "site": "n"}]
    coco_dataset(tmp_path, [{"image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]}], images)
    assert formats.detect(str(tmp_path)).metadata_columns == ("site",)


def test_voc_elements_voc_does_not_define_are_metadata(tmp_path):
    extra = "<location>cam_07</location><datetime>2019-06-01 05:42:10</datetime><weather><sky>clear</sky></weather>"
    first = image_fixtures.voc_xml("a.png", 40, 30, [("cat", (1, 1, 5, 5))]).replace(
        "</annotation>", extra + "</annotation>"
    )
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "a.xml").write_text(first)
    second = image_fixtures.voc_xml("b.png", 40, 30, [("dog", (1, 1, 5, 5))])
    (tmp_path / "Annotations" / "b.xml").write_text(
        second.replace("</annotation>", "<camera> c2 </camera></annotation>")
    )
    dataset = formats.detect(str(tmp_path))
    # <weather> has children (no single value); <folder>, <size>, <object>... are VOC's own.
    assert dataset.metadata_columns == ("location", "datetime", "camera")
    a, b = read_all(dataset)
    assert a.metadata == {"location": "cam_07", "datetime": "2019-06-01 05:42:10"}
    assert b.metadata == {"camera": "c2"}


def test_images_with_no_object_are_kept_as_their_class_or_rejected(tmp_path):
    """COCO Camera Traps: an `empty` category whose annotations have no bbox; an image with no annotation."""
    images = [{"id": i, "file_name": f"{i}.png", "width": 40, "height": 30} for i in (1, 2, 3)]
    annotations = [
        {"image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]},
        {"image_id": 2, "category_id": 2},  # `empty`: no bbox at all.
    ]
    coco_dataset(tmp_path / "coco", annotations, images, categories=("deer", "empty"))
    dataset = formats.detect(str(tmp_path / "coco"))
    kept = [formats.read_source(dataset.root, "coco", source, no_object_class="empty") for source in dataset.sources]
    records = sorted((item for items in kept for item in items), key=lambda r: r.filename)
    assert [(r.filename.split("/")[-1], r.label, r.box) for r in records] == [
        ("1.png", "deer", Box(1.0, 1.0, 5.0, 5.0)),
        ("2.png", "empty", None),
        ("3.png", "empty", None),
    ]
    rejected = read_all(dataset)  # ingest.no_object: reject (the default)
    assert sorted((r.filename, r.reason) for r in rejected if isinstance(r, Reject)) == [
        ("2.png", "bad_box"),
        ("3.png", "no_annotation"),
    ]

    image_fixtures.write_voc(tmp_path / "voc" / "a.xml", "a.png", 40, 30, [])
    image_fixtures.write_voc(tmp_path / "voc" / "b.xml", "b.png", 40, 30, [("empty", (0, 0, 0, 0))])
    voc = formats.detect(str(tmp_path / "voc"))
    kept = [
        item for source in voc.sources for item in formats.read_source(voc.root, "voc", source, no_object_class="empty")
    ]
    assert [(r.label, r.box) for r in kept] == [("empty", None), ("empty", None)]

    rows = [
        {"filename": "a.png", "label": "empty", "xmin": "", "ymin": "", "xmax": "", "ymax": ""},
        {"filename": "b.png", "label": "deer", "xmin": "", "ymin": "", "xmax": "", "ymax": ""},
    ]
    image_fixtures.write_csv(tmp_path / "csv", rows)
    csv_records = list(formats.read_source(str(tmp_path / "csv"), "csv", "annotations.csv", no_object_class="empty"))
    # Only the no-object class may leave its box empty; a deer without a box is still a bad box later.
    assert [(r.label, r.box) for r in csv_records] == [("empty", None), ("deer", Box("", "", "", ""))]
