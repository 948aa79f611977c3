"""TFX Transform module: adapts `components.transform.features.transform` to TFX's `preprocessing_fn` signature."""

from components.transform import features


def preprocessing_fn(inputs, custom_config):
    return features.transform(inputs, features.TransformSettings.from_dict(custom_config))
