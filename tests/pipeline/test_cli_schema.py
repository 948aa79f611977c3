"""`xfer schema infer` and `xfer validate` on a tiny class-folders dataset: the schema workflow end to end."""

import pytest
import yaml

from pipeline import cli
from tests.helpers import image_fixtures


def class_folders(root, per_class=6):
    for label_index, label in enumerate(("cat", "dog")):
        for index in range(per_class):
            image_fixtures.write_image(root / label / f"{index}.png", seed=10 * label_index + index)


def write_config(path, schema, workspace, data="unused"):
    path.write_text(
        yaml.safe_dump(
            {
                "pipeline_name": "xfer-test",
                "data": str(data),
                "workspace": str(workspace),
                "schema": str(schema),
                "beam_args": ["--direct_running_mode=in_memory", "--direct_num_workers=1"],
                "training": {
                    "frozen": {"epochs": 1, "learning_rate": 0.001},
                    "finetune": {"epochs": 0, "learning_rate": 0.001},
                },
            }
        )
    )
    return path


@pytest.mark.e2e
def test_schema_infer_then_validate(tmp_path, capsys):
    data = tmp_path / "data"
    class_folders(data)
    schema = tmp_path / "schema.pbtxt"

    assert cli.main(["schema", "infer", "--data", str(data), "--out", str(schema)]) == 0
    text = schema.read_text()
    assert text.startswith("# Inferred by `xfer schema infer`")
    assert 'value: "cat"' in text and 'value: "dog"' in text
    assert 'name: "xmin"' not in text  # Class folders carry no boxes.
    assert "inferred 5 features from 12 examples (class_folders, boxes off" in capsys.readouterr().out

    # The data comes from the config when --data is not given.
    config = write_config(tmp_path / "config.yaml", schema, tmp_path / "workspace", data=data)
    assert cli.main(["validate", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "class_folders dataset, boxes off: 12 records, 12 accepted, 0 rejected" in out
    assert "anomalies      none" in out
    reports = tmp_path / "workspace" / "reports"
    assert "0 anomalies: the data matches the schema." in (reports / "statistics.html").read_text()
    assert "<script" not in (reports / "statistics.html").read_text()  # It renders offline.
    assert (reports / "statistics_facets.html").read_text().count("facets") > 0

    # A label the schema has never seen is an anomaly, told in plain words, and the exit code says so.
    image_fixtures.write_image(data / "bird" / "0.png")
    assert cli.main(["validate", "--data", str(data), "--config", str(config), "--format", "class_folders"]) == 1
    out = capsys.readouterr().out
    assert "feature 'label'" in out and "bird" in out
    assert "1 anomalies:" in (reports / "statistics.html").read_text()


def test_ingest_options_reach_the_config(tmp_path):
    config = write_config(tmp_path / "config.yaml", "schemas/schema.pbtxt", tmp_path / "workspace")
    args = cli._parser().parse_args(
        [
            "validate",
            "--data",
            "/some/data",
            "--config",
            str(config),
            "--format",
            "voc",
            "--beam-arg=--direct_running_mode=multi_processing",
            "--beam-arg=--direct_num_workers=2",
        ]
    )
    loaded = cli._load_config(args)
    assert (loaded.data, loaded.ingest.format) == ("/some/data", "voc")
    assert loaded.beam_args[-2:] == ("--direct_running_mode=multi_processing", "--direct_num_workers=2")


def test_metadata_column_types_are_read_from_the_values():
    from components.validation import schema_inference

    # "nan" and "inf" read as floats but ingest rejects them in a numeric column, so they count as text.
    assert [
        schema_inference.value_type(text) for text in ("7", "-3", "7.0", "1e3", "48.1", "cam_01", "nan", "inf")
    ] == [
        "int",
        "int",
        "float",
        "float",
        "float",
        "string",
        "string",
        "string",
    ]


def test_a_column_is_numeric_when_most_of_its_values_are_numbers():
    from components.validation.schema_inference import ColumnInference

    assert ColumnInference({"int": 29, "string": 1}).column_type == "int"
    assert ColumnInference({"int": 29, "string": 1}).rejected_values == 1
    assert ColumnInference({"int": 20, "float": 1, "string": 3}).column_type == "float"
    assert ColumnInference({"int": 2, "string": 2}).column_type == "string"  # A tie cannot reject half the data.
    assert ColumnInference({"int": 1, "string": 5}).column_type == "string"
    assert ColumnInference({"int": 1, "string": 5}).rejected_values == 0
    assert ColumnInference({}).column_type == "string"


def metadata_csv(root, rows=30, bad_hours=(7,)):
    """A CSV dataset with an int column (`hour`, "noon" on the rows in `bad_hours`), a 3-value category
    (`camera_id`), a float (`latitude`) and an identifier (`record_id`, one per row)."""
    annotations = []
    for index in range(rows):
        name = f"img_{index:02d}.png"
        image_fixtures.write_image(root / name, seed=index)
        annotations.append(
            {
                "filename": name,
                "label": ("cat", "dog")[index % 2],
                "xmin": 5,
                "ymin": 5,
                "xmax": 20,
                "ymax": 15,
                "hour": "noon" if index in bad_hours else index % 24,
                "camera_id": f"cam_{index % 3}",
                "latitude": 40 + index * 0.5,
                "record_id": f"r{index:04d}",
            }
        )
    image_fixtures.write_csv(root, annotations)
    return root


@pytest.mark.slow
def test_schema_infer_types_columns_by_majority_and_rejects_the_odd_record(tmp_path, capsys):
    import json

    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    from components.ingest import examples as ingest

    data = metadata_csv(tmp_path / "data")
    out = tmp_path / "schemas" / "mine.pbtxt"
    assert cli.main(["schema", "infer", "--data", str(data), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    text = out.read_text()
    schema = text_format.Parse(text, schema_pb2.Schema())
    features = {feature.name: feature for feature in schema.feature}

    assert features["hour"].type == schema_pb2.INT and not features["hour"].HasField("domain_info")
    assert features["latitude"].type == schema_pb2.FLOAT
    assert "inferred 13 features from 29 examples (csv, boxes on; 1 records rejected)" in printed
    assert "column 'hour' is int: 1 value(s) are not numbers" in printed
    # The odd record is rejected with its reason, in a file that outlives the command's work folder.
    rejects_path = tmp_path / "schemas" / "mine.rejects.jsonl"
    assert f"rejects        {rejects_path}" in printed
    rejects = [json.loads(line) for line in rejects_path.read_text().splitlines()]
    assert rejects == [
        {
            "filename": "img_07.png",
            "reason": "bad_metadata",
            "source": "annotations.csv:9",
            "detail": "column 'hour' should be a number, got 'noon'",
        }
    ]
    # Identifiers get no vocabulary (it would list every file, and fail the next dataset); a category keeps its.
    assert not features["filename"].HasField("domain_info")
    assert not features["record_id"].HasField("domain_info")
    assert {domain.name for domain in schema.string_domain} == {"camera_id", "label"}
    # Ranges are proposed as comments, not enforced; the box fractions keep their known range.
    assert "# hour: values from 0 to 23 in 29 examples." in text
    assert "add inside this feature: int_domain { min: 0 max: 23 }" in text
    assert "float_domain { min: 40 max: 54.5 }" in text
    assert features["xmin"].float_domain.max == 1.0
    # The schema is consistent with what ingest will write: the config would read hour as an int.
    assert ingest.schema_column_types(out)["hour"] == "int"


@pytest.mark.slow
def test_too_many_rejects_name_a_rejects_file_that_exists(tmp_path, capsys):
    data = metadata_csv(tmp_path / "data", rows=20, bad_hours=(1, 2, 3))
    out = tmp_path / "mine.pbtxt"
    assert cli.main(["schema", "infer", "--data", str(data), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "3 of 20 records rejected (15.0%), more than max_reject_fraction 5.0% (bad_metadata: 3)" in error
    named = error.rsplit("Each reject and its reason is in ", 1)[1].strip()
    assert named == str(tmp_path / "mine.rejects.jsonl")
    assert len((tmp_path / "mine.rejects.jsonl").read_text().splitlines()) == 3
    assert not out.exists()


def test_validate_without_data_anywhere_says_where_to_set_it(tmp_path, capsys):
    config = write_config(tmp_path / "config.yaml", "schemas/schema.pbtxt", tmp_path / "workspace", tmp_path / "none")
    assert cli.main(["validate", "--config", str(config)]) == 2
    assert f"dataset folder {tmp_path / 'none'} does not exist (set `data` in {config}" in capsys.readouterr().err


def test_the_closing_hint_names_the_command_for_the_workspace(tmp_path, monkeypatch):
    from pipeline import config as config_lib

    monkeypatch.chdir(tmp_path)
    (tmp_path / "Makefile").write_text("ui:\n")

    def hint(**overrides):
        config = config_lib.load_config(write_config(tmp_path / "c.yaml", "s.pbtxt", "workspace"), overrides)
        return cli.ui_hint(config)

    assert hint() == "see it with `make ui`"
    assert hint(workspace=str(tmp_path / "other")) == f"see it with `xfer ui --workspace {tmp_path / 'other'}`"
    (tmp_path / "Makefile").unlink()  # Outside the checkout `make ui` does not exist.
    assert hint() == f"see it with `xfer ui --workspace {tmp_path / 'workspace'}`"


@pytest.mark.slow
def test_schema_infer_proposes_a_coco_exports_image_fields_with_their_types(tmp_path, capsys):
    """A COCO Camera Traps-style export: the metadata is on the image entries, and reaches the schema."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    data = tmp_path / "data"
    images, annotations = [], []
    for index in range(12):
        name = f"img_{index:02d}.png"
        image_fixtures.write_image(data / "images" / name, seed=index)
        images.append(
            {
                "id": index,
                "file_name": name,
                "location": f"site_{index % 3}",
                "datetime": f"2019-06-{index + 1:02d} {index:02d}:30:00",
                "frame_num": index % 3 + 1,
            }
        )
        annotations.append({"image_id": index, "category_id": 1 + index % 2, "bbox": [5, 5, 15, 10]})
    image_fixtures.write_coco(data / "annotations.json", images, annotations, ["cat", "dog"])
    out = tmp_path / "schema.pbtxt"
    assert cli.main(["schema", "infer", "--data", str(data), "--out", str(out)]) == 0
    assert "inferred 12 features from 12 examples (coco, boxes on" in capsys.readouterr().out
    schema = text_format.Parse(out.read_text(), schema_pb2.Schema())
    features = {feature.name: feature for feature in schema.feature}
    assert features["location"].type == schema_pb2.BYTES and features["location"].HasField("domain")
    assert features["datetime"].type == schema_pb2.BYTES
    assert features["frame_num"].type == schema_pb2.INT
