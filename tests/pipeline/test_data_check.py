"""The config's features against the dataset's columns, answered before Beam starts."""

from __future__ import annotations

import pytest
import yaml

from components.settings import ConfigError
from pipeline import cli, data_check
from pipeline import config as config_lib
from tests.helpers import SAMPLE_CONFIG, image_fixtures


def csv_dataset(root, metadata=("capture_hour", "camera_id", "latitude", "longitude")):
    row = {"filename": "a.png", "label": "cat", "xmin": 1, "ymin": 1, "xmax": 5, "ymax": 5}
    image_fixtures.write_csv(root, [{**row, **{name: "1" for name in metadata}}])
    return root


def sample_config(data, **changes) -> config_lib.Config:
    return config_lib.load_config(SAMPLE_CONFIG, {"data": str(data)}).replace(**changes)


def test_the_columns_are_what_ingest_writes_for_the_format(tmp_path):
    from components.ingest import formats

    dataset = formats.detect(str(csv_dataset(tmp_path / "csv", metadata=("hour",))))
    assert data_check.dataset_columns(dataset) == (
        "filename",
        "label",
        "image_width",
        "image_height",
        "xmin",
        "ymin",
        "xmax",
        "ymax",
        "hour",
    )
    image_fixtures.write_image(tmp_path / "folders" / "cat" / "a.png")
    folders = formats.detect(str(tmp_path / "folders"))
    assert data_check.dataset_columns(folders) == ("filename", "label", "image_width", "image_height")


def test_the_sample_config_fits_a_dataset_with_its_columns(tmp_path):
    data_check.check_features_against_data(sample_config(csv_dataset(tmp_path / "data")))


def test_a_feature_without_a_column_names_the_columns_the_data_has(tmp_path):
    data = csv_dataset(tmp_path / "data", metadata=("capture_hour", "latitude", "longitude"))
    with pytest.raises(ConfigError) as raised:
        data_check.check_features_against_data(sample_config(data))
    assert str(raised.value) == (
        f"features: 'camera_id' is not a column of the csv dataset at {data}; its columns are filename, label, "
        "image_width, image_height, xmin, ymin, xmax, ymax, capture_hour, latitude, longitude"
    )


def test_xfer_run_refuses_the_config_before_any_pipeline_starts(tmp_path, capsys):
    data = csv_dataset(tmp_path / "data", metadata=())
    raw = yaml.safe_load(SAMPLE_CONFIG.read_text())
    raw.update(
        data=str(data),
        workspace=str(tmp_path / "workspace"),
        schema=str(SAMPLE_CONFIG.parent.parent / "schemas" / "schema.pbtxt"),
    )
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    assert cli.main(["run", "--config", str(config)]) == 2
    error = capsys.readouterr().err
    assert "'capture_hour', 'camera_id', 'latitude', 'longitude' are not columns of the csv dataset" in error
    assert "(the csv reader found no metadata columns)" in error
    assert not (tmp_path / "workspace" / "pipeline_root").exists()
