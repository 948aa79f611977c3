"""Transform with tensorflow-transform's analyzer cache carried from run to run, on any runner.

TFX feeds the cache through an `analyzer_cache` input that only a Resolver node can fill, and self-hosted
Kubeflow has no Resolver executor. This executor keeps the newest cache at a fixed place beside Transform's
outputs instead: it passes it in when present and replaces it after every run. TFT keys cache entries by the
examples' location and each analyzer's fingerprint, so an entry is reused only for the same examples (an
ExampleGen served from TFX's cache) and the same analyzer; anything else is recomputed.
"""

from __future__ import annotations

import logging
import os

import tensorflow as tf
from tfx.components.transform import component as transform_component
from tfx.components.transform import executor as transform_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs

from components import names

LATEST_DIR = "analyzer_cache_latest"


def latest_cache_dir(updated_cache_uri: str) -> str:
    """.../Transform/updated_analyzer_cache/<execution> -> .../Transform/analyzer_cache_latest."""
    return os.path.join(os.path.dirname(os.path.dirname(updated_cache_uri.rstrip("/"))), LATEST_DIR)


def replace_dir(source: str, destination: str) -> None:
    """Copies `source` over `destination` so that a reader sees the old or the new tree, never half of one."""
    staging = destination + ".staging"
    if tf.io.gfile.exists(staging):
        tf.io.gfile.rmtree(staging)
    _copy_tree(source, staging)
    retired = destination + ".old"
    if tf.io.gfile.exists(destination):
        tf.io.gfile.rename(destination, retired, overwrite=True)
    tf.io.gfile.rename(staging, destination)
    if tf.io.gfile.exists(retired):
        tf.io.gfile.rmtree(retired)


def _copy_tree(source: str, destination: str) -> None:
    for directory, _, files in tf.io.gfile.walk(source):
        target = os.path.join(destination, os.path.relpath(directory, source))
        tf.io.gfile.makedirs(target)
        for name in files:
            tf.io.gfile.copy(os.path.join(directory, name), os.path.join(target, name), overwrite=True)


class Executor(transform_executor.Executor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        updated = output_dict.get(standard_component_specs.UPDATED_ANALYZER_CACHE_KEY)
        latest = latest_cache_dir(artifact_utils.get_single_uri(updated)) if updated else None
        if latest and not input_dict.get(standard_component_specs.ANALYZER_CACHE_KEY) and tf.io.gfile.exists(latest):
            cache = standard_artifacts.TransformCache()
            cache.uri = latest
            input_dict = {**input_dict, standard_component_specs.ANALYZER_CACHE_KEY: [cache]}
            logging.info("Transform: reusing the analyzer cache in %s", latest)
        super().Do(input_dict, output_dict, exec_properties)
        if latest:
            replace_dir(artifact_utils.get_single_uri(updated), latest)


class CachingTransform(transform_component.Transform):
    """TFX's Transform with the executor above. Its node id stays "Transform"."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.with_id(names.TRANSFORM)
