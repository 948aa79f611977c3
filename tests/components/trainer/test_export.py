"""The exported serving model holds the network's weights and nothing of its training, and still serves."""

from __future__ import annotations

import io
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from PIL import Image
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

from components import names
from components.serving import contract
from components.trainer import export, training
from components.trainer import model as model_lib
from components.transform import features
from pipeline import config as config_lib

SIZE = 32  # MobileNetV2's minimum: a small network, so the test stays quick.
SETTINGS = features.TransformSettings(
    image_size=SIZE,
    features=(config_lib.FeatureConfig(name="camera", kind="vocabulary", top_k=10, embedding_dim=2),),
)
# Shaped [1], as the curated schema declares every raw feature.
RAW_SPEC = {
    "image": tf.io.FixedLenFeature([1], tf.string),
    "label": tf.io.FixedLenFeature([1], tf.string),
    "camera": tf.io.FixedLenFeature([1], tf.string),
    **{name: tf.io.FixedLenFeature([1], tf.float32) for name in names.BOX_CORNERS},
}


def _png(color) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(buffer, format="PNG")
    return buffer.getvalue()


ROWS = [
    {"image": [_png((200, 10 * i, 0))], "label": [[b"cat", b"dog"][i % 2]], "camera": [[b"a", b"b"][i % 2]]}
    | {name: [value] for name, value in zip(names.BOX_CORNERS, (0.1, 0.2, 0.6, 0.7), strict=True)}
    for i in range(8)
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A network trained a few steps with Adam (so the optimizer has its slots), then exported."""
    root = tmp_path_factory.mktemp("export")
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(RAW_SPEC))
    with beam.Pipeline() as pipeline, tft_beam.Context(temp_dir=str(root / "tft"), force_tf_compat_v1=False):
        transform_fn = (pipeline | beam.Create(ROWS), metadata) | tft_beam.AnalyzeDataset(
            lambda inputs: features.transform(inputs, SETTINGS)
        )
        _ = transform_fn | tft_beam.WriteTransformFn(str(root / "transform"))
    # TFX's Transform writes the raw metadata beside the transform function; serving parses raw examples by it.
    metadata_io.write_metadata(metadata, str(root / "transform" / tft.TFTransformOutput.RAW_METADATA_DIR))
    output = tft.TFTransformOutput(str(root / "transform"))
    raw = {name: tf.constant([row[name] for row in ROWS]) for name in RAW_SPEC}
    # The network reads the stored image decoded, as the Trainer's input pipeline hands it over.
    transformed = features.decode_stored_images(output.transform_features_layer()(raw), SIZE)
    rows = {name: value.numpy() for name, value in transformed.items()}
    model_config = config_lib.ModelConfig(backbone="mobilenet_v2", weights="none")
    inputs = model_lib.model_inputs(SETTINGS, output.vocabulary_size_by_name)
    network = model_lib.build_model(model_config, SIZE, inputs, num_classes=2)
    model_lib.set_backbone_trainable(network, True)
    model_lib.compile_model(network, model_config, 1e-3)
    names = list(network.input.keys())
    x = {name: rows[name] for name in names}
    y = {output_name: rows[key] for output_name, key in training.LABEL_KEYS.items()}
    network.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert network.optimizer.variables  # Adam has its slots: there is training state that could be exported.
    export.export_serving_model(network, output, SETTINGS, str(root / "model"))
    return network, str(root / "model")


def test_the_variables_are_the_weights_only(exported):
    network, model_dir = exported
    reader = tf.train.load_checkpoint(f"{model_dir}/variables/variables")
    names = reader.get_variable_to_shape_map()
    assert not [name for name in names if "OPTIMIZER_SLOT" in name or name.startswith("optimizer/")]
    dtypes = reader.get_variable_to_dtype_map()
    stored = sum(int(np.prod(shape)) for name, shape in names.items() if dtypes[name].is_floating)
    weights = network.count_params()
    # The weights, plus at most a few scalars (e.g. the Transform layer's), not 3x for Adam's slots.
    assert weights <= stored <= 1.01 * weights
    size = sum(file.stat().st_size for file in (Path(model_dir) / "variables").iterdir())
    assert 0.9 * 4 * weights <= size <= 1.1 * 4 * weights


def test_the_lean_model_still_serves_raw_examples(exported):
    network, model_dir = exported
    loaded = tf.saved_model.load(model_dir)
    example = contract.make_raw_example(_png((200, 0, 0)), {"camera": "a"}, contract.load_raw_feature_types(model_dir))
    outputs = loaded.signatures["serving_default"](examples=tf.constant([example]))
    assert outputs["probabilities"].shape == (1, 2)
    assert np.isclose(float(tf.reduce_sum(outputs["probabilities"])), 1.0, atol=1e-5)
    assert outputs["box"].shape == (1, 4)


def test_the_pushed_model_reloads_as_the_network_it_is(exported):
    """What the report reads: `tf_keras.models.load_model` on the exported SavedModel gives back the network,
    layer for layer (the registered Normalize and BoxDecode, not Lambdas that come back broken), with the same
    answers as the network that was exported."""
    import tf_keras

    network, model_dir = exported
    reloaded = tf_keras.models.load_model(model_dir, compile=False)
    layers = {layer.name: type(layer) for layer in reloaded.layers}
    assert layers["normalize"] is model_lib.Normalize and layers[model_lib.BOX] is model_lib.BoxDecode
    assert [layer.name for layer in reloaded.layers] == [layer.name for layer in network.layers]
    rng = np.random.default_rng(0)
    inputs = {
        name: tf.constant(rng.integers(0, 256 if name == features.IMAGE else 3, (3, *spec.shape[1:])), spec.dtype)
        for name, spec in network.input.items()
    }
    expected, got = network(inputs, training=False), reloaded(inputs, training=False)
    for key in (model_lib.PROBABILITIES, model_lib.BOX):
        np.testing.assert_allclose(got[key].numpy(), expected[key].numpy(), atol=1e-5)
