"""The current champion, handed to the Evaluator as its baseline without TFX's Resolver.

TFX finds a baseline with a Resolver node (latest blessed model), which self-hosted Kubeflow Pipelines cannot
execute, and which would only know models this pipeline's ML Metadata has seen. xfer's champion is the MLflow
Model Registry version with the alias `champion`: the model that is being served. `ChampionModel` looks it up
and copies its SavedModel into a Model artifact laid out as a Trainer's (`Format-Serving/`), which is what the
Evaluator reads a baseline from.

Caching: a node that reads the registry would be served from TFX's cache after the champion changed. So the
version to fetch is a property of the node: `xfer run` resolves the alias when it starts and passes the version
(the same champion -> the same cached artifact, so an unchanged candidate's evaluation stays cached too; a new
champion reruns the evaluation). On Kubeflow, where one compiled pipeline serves many scheduled runs, the
version is left empty, the node resolves the alias when it runs, and the compiled spec turns its cache off.
"""

# No `from __future__ import annotations`: TFX reads the component signature's annotations as live types.

import dataclasses
import hashlib
import json
import logging
import os
import tempfile

import tensorflow as tf
import yaml
from tensorflow.core.protobuf import saved_model_pb2
from tfx.dsl.component.experimental import annotations, decorators
from tfx.types import standard_artifacts
from tfx.utils import io_utils, path_utils

from components import names
from components.serving import contract

CHAMPION_ALIAS = "champion"
# The `version` property meaning "the registry had no champion when the run started".
NO_CHAMPION = "none"
# The signatures xfer's Evaluator calls (components/trainer/export.py), and the outputs each task's metrics read.
_SIGNATURES = ("serving_default", "transform_features")
_OUTPUTS = {"classification": ("probabilities",), "detection": ("probabilities", "box")}
# Custom properties of the champion artifact.
VERSION_PROPERTY = "champion_version"
FINGERPRINT_PROPERTY = "fingerprint"
NOTE_PROPERTY = "note"


class ChampionError(RuntimeError):
    """The registry names a champion that cannot be fetched."""


@dataclasses.dataclass(frozen=True)
class Champion:
    version: str  # "" when there is none to compare with.
    fingerprint: str  # Of the SavedModel's files; "" when there is no champion.
    note: str  # Why there is none, or which version it is, in words for the log.

    @property
    def found(self) -> bool:
        return bool(self.version)


def fingerprint(model_dir: str) -> str:
    """A digest of every file under `model_dir` (relative path and bytes). Copies of one model (the Trainer's
    output, the pushed folder, the registry's copy) have the same fingerprint."""
    digest = hashlib.sha256()
    files = []
    for root, _, file_names in tf.io.gfile.walk(model_dir):
        files.extend(os.path.join(root, name) for name in file_names)
    if not files:
        raise ChampionError(f"no model files under {model_dir}")
    for path in sorted(files):
        digest.update(os.path.relpath(path, model_dir).encode() + b"\0")
        with tf.io.gfile.GFile(path, "rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()[:32]


def resolve_version(tracking_uri: str, registered_model: str) -> str:
    """The version the alias `champion` points at, or NO_CHAMPION when the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        return str(
            MlflowClient(tracking_uri=tracking_uri).get_model_version_by_alias(registered_model, CHAMPION_ALIAS).version
        )
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return NO_CHAMPION
        raise


def incompatibility(model_dir: str, task: str) -> str:
    """Why a candidate for `task` cannot be compared with the SavedModel at `model_dir`; "" when it can."""
    with tf.io.gfile.GFile(os.path.join(model_dir, "saved_model.pb"), "rb") as handle:
        saved_model = saved_model_pb2.SavedModel.FromString(handle.read())
    signatures = saved_model.meta_graphs[0].signature_def
    missing = [name for name in _SIGNATURES if name not in signatures]
    if missing:
        return f"it has no {' or '.join(missing)} signature"
    outputs = set(signatures["serving_default"].outputs)
    missing = [name for name in _OUTPUTS[task] if name not in outputs]
    if missing:
        return f"its serving signature has no {', '.join(missing)} output, which a {task} candidate is scored on"
    return ""


def fetch_champion(tracking_uri: str, registered_model: str, version: str, task: str, output_uri: str) -> Champion:
    """Copies the champion's SavedModel to `<output_uri>/Format-Serving`.

    `version`: the registry version to fetch; "" resolves the alias now; NO_CHAMPION means there is none.
    A champion that cannot be compared with a `task` candidate (another task, an old export) is reported as
    none, with the reason; one the registry names but that cannot be downloaded is an error.
    """
    if not version:
        version = resolve_version(tracking_uri, registered_model)
    if version == NO_CHAMPION:
        return Champion("", "", f"no champion yet in the registry ({registered_model!r})")
    from mlflow import artifacts
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    model_version = client.get_model_version(registered_model, version)
    location = model_location(client, model_version).rstrip("/")
    destination = path_utils.serving_model_dir(output_uri)
    with tempfile.TemporaryDirectory() as scratch:
        try:
            # The pyfunc model's MLmodel says where under it the SavedModel artifact went (named after the
            # folder it was logged from).
            mlmodel = artifacts.download_artifacts(
                artifact_uri=f"{location}/MLmodel", dst_path=os.path.join(scratch, "meta"), tracking_uri=tracking_uri
            )
            with open(mlmodel) as handle:
                flavor = yaml.safe_load(handle)["flavors"]["python_function"]
            relative = flavor["artifacts"][contract.SAVED_MODEL_ARTIFACT]["path"]
            local = artifacts.download_artifacts(
                artifact_uri=f"{location}/{relative}",
                dst_path=os.path.join(scratch, "model"),
                tracking_uri=tracking_uri,
            )
        except Exception as error:
            raise ChampionError(
                f"cannot download {registered_model} version {version} from {location}: {type(error).__name__}: "
                f"{error}. The change gates need the champion: restore its files, or point the alias "
                f"`{CHAMPION_ALIAS}` at a version that has them (deleting the alias leaves the absolute gates only)"
            ) from error
        reason = incompatibility(local, task)
        if reason:
            return Champion("", "", f"{registered_model} version {version} is not comparable: {reason}")
        io_utils.copy_dir(local, destination)
    return Champion(version, fingerprint(destination), f"{registered_model} version {version}")


def model_location(client, model_version) -> str:
    """Where a registry version's files are: MLflow 3 registers a logged model (source `models:/<id>`), whose
    artifact location holds them; older versions name the artifact location as their source."""
    source = model_version.source or ""
    model_id = model_version.model_id or (source.removeprefix("models:/") if source.startswith("models:/") else "")
    return client.get_logged_model(model_id).artifact_location if model_id else source


@decorators.component
def ChampionModel(
    champion: annotations.OutputArtifact[standard_artifacts.Model],
    registered_model: annotations.Parameter[str],
    tracking_uri: annotations.Parameter[str],
    version: annotations.Parameter[str],
    task: annotations.Parameter[str],
    code_version: annotations.Parameter[str],
) -> None:
    """The registry's champion as a Model artifact; one without a model (`champion_version` "") when there is
    none to compare with. `tracking_uri` "" means the environment's MLFLOW_TRACKING_URI (the Kubeflow pods')."""
    del code_version  # Only part of the cache key: a code change reruns the node.
    found = fetch_champion(
        tracking_uri or os.environ.get(names.TRACKING_URI_ENV, ""), registered_model, version, task, champion.uri
    )
    logging.info("Champion: %s", found.note)
    champion.set_string_custom_property(VERSION_PROPERTY, found.version)
    champion.set_string_custom_property(FINGERPRINT_PROPERTY, found.fingerprint)
    champion.set_string_custom_property(NOTE_PROPERTY, found.note)
    with tf.io.gfile.GFile(os.path.join(champion.uri, "champion.json"), "w") as handle:
        json.dump(dataclasses.asdict(found), handle, indent=1)
