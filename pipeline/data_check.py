"""The config against the dataset, before Beam starts: every declared feature must read a column the examples
will have. Without this a feature naming a missing column ran ingest, statistics and validation and then
failed inside Transform ("... is not a column of the data"), half a minute in.

The dataset's columns are what ingest writes for each record (components/ingest/examples.py
`record_to_example`): filename, label, the image's size, the box corners when the format carries boxes, and the
metadata columns the reader found. Finding them reads only the annotation file's header or the folder's
listing, not the images.
"""

from __future__ import annotations

from components import names
from components.ingest import formats
from components.settings import ConfigError
from pipeline import config as config_lib

# Written for every record by ingest, whatever the format.
ALWAYS = ("filename", "label", "image_width", "image_height")


def dataset_columns(dataset: formats.Dataset) -> tuple[str, ...]:
    """The columns of the raw examples ingest will write for this dataset, in the order ingest writes them."""
    boxes = names.BOX_CORNERS if dataset.has_boxes else ()
    return (*ALWAYS, *boxes, *dataset.metadata_columns)


def check_features_against_data(config: config_lib.Config) -> formats.Dataset:
    """The dataset `config.data` holds; ConfigError naming each declared feature that reads no column of it,
    and the columns it has."""
    dataset = formats.detect(config.data, config.ingest.format, config.ingest.metadata)
    columns = dataset_columns(dataset)
    missing = [name for name in config.transform_settings.raw_metadata_columns if name not in columns]
    if missing:
        quoted = ", ".join(repr(name) for name in missing)
        raise ConfigError(
            f"features: {quoted} {'is not a column' if len(missing) == 1 else 'are not columns'} of the "
            f"{dataset.format} dataset at {config.data}; its columns are {', '.join(columns)}"
            + ("" if dataset.metadata_columns else f" (the {dataset.format} reader found no metadata columns)")
        )
    return dataset
