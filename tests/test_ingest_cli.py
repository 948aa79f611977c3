"""`xfer schema infer` and `xfer validate` on a tiny class-folders dataset: the schema workflow end to end."""

import image_fixtures
import pytest
import yaml

from pipeline import cli


def class_folders(root, per_class=6):
    for label_index, label in enumerate(("cat", "dog")):
        for index in range(per_class):
            image_fixtures.write_image(root / label / f"{index}.png", seed=10 * label_index + index)


def write_config(path, schema, workspace):
    path.write_text(yaml.safe_dump({
        "pipeline_name": "xfer-test",
        "data": "unused",
        "workspace": str(workspace),
        "schema": str(schema),
        "beam_args": ["--direct_running_mode=in_memory", "--direct_num_workers=1"],
        "training": {
            "frozen": {"epochs": 1, "learning_rate": 0.001}, "finetune": {"epochs": 0, "learning_rate": 0.001}
        },
    }))
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

    config = write_config(tmp_path / "config.yaml", schema, tmp_path / "workspace")
    assert cli.main(["validate", "--data", str(data), "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "class_folders dataset, boxes off: 12 records, 12 accepted, 0 rejected" in out
    assert "anomalies      none" in out
    assert (tmp_path / "workspace" / "reports" / "statistics.html").read_text().count("facets") > 0

    # A label the schema has never seen is an anomaly, told in plain words, and the exit code says so.
    image_fixtures.write_image(data / "bird" / "0.png")
    assert cli.main(["validate", "--data", str(data), "--config", str(config), "--format", "class_folders"]) == 1
    out = capsys.readouterr().out
    assert "feature 'label'" in out and "bird" in out


def test_ingest_options_reach_the_config(tmp_path):
    config = write_config(tmp_path / "config.yaml", "schemas/schema.pbtxt", tmp_path / "workspace")
    args = cli._parser().parse_args([
        "validate", "--data", "/some/data", "--config", str(config), "--format", "voc",
        "--beam-arg=--direct_running_mode=multi_processing", "--beam-arg=--direct_num_workers=2",
    ])
    loaded = cli._load_config(args)
    assert (loaded.data, loaded.ingest.format) == ("/some/data", "voc")
    assert loaded.beam_args[-2:] == ("--direct_running_mode=multi_processing", "--direct_num_workers=2")


def test_metadata_column_types_are_read_from_the_values():
    from components import data_report

    assert [data_report.value_type(text) for text in ("7", "-3", "7.0", "1e3", "48.1", "cam_01", "nan")] == [
        "int", "int", "float", "float", "float", "string", "float",
    ]
    assert data_report._widest(["int", "float", "int"]) == "float"
    assert data_report._widest(["int", "string"]) == "string"
