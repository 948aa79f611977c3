"""A Pusher whose new model version appears all at once: a server never sees a half-written version folder.

TFX's own Pusher copies straight into `<base>/<version>/` (saved_model.pb last). TF Serving polls the base
folder and loads any numbered folder it finds, so one that is still being written can be picked up with
missing variables. Here the copy goes into a hidden folder next to the destination, which no server treats
as a version, and is renamed to `<base>/<version>` only once it is complete.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from typing import Any

from tfx import types
from tfx.components.pusher import component as pusher_component
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from components.evaluator import verdict

SAVED_MODEL_FILE = "saved_model.pb"
NOT_PUSHED_REASON_PROPERTY = "not_pushed_reason"
_STAGING_PREFIX = ".pushing-"


def staging_dir(base_directory: str, version: str) -> str:
    """A hidden sibling of the version folder: not numeric, so TF Serving and `xfer predict` skip it."""
    return os.path.join(base_directory, f"{_STAGING_PREFIX}{version}-{uuid.uuid4().hex[:8]}")


def push_atomically(model_path: str, base_directory: str, version: str) -> str:
    """Copies the SavedModel at `model_path` to `<base_directory>/<version>`; returns that path.

    The destination either does not exist or holds the whole model. On a local or POSIX filesystem the final
    step is one `rename(2)`, which is atomic. On object stores (S3, GCS) there are no folders to rename:
    `rename` copies and deletes object by object, so readers can see a partial version for a moment. There
    saved_model.pb, copied last as TFX's Pusher does, is the marker servers wait for; it is copied last into
    the staging folder here too, so the same guarantee holds wherever the rename is not atomic.
    """
    destination = os.path.join(base_directory, version)
    if fileio.exists(destination):
        raise FileExistsError(f"model version {destination} already exists")
    fileio.makedirs(base_directory)
    if not renames_atomically(base_directory):
        # Object stores cannot rename a folder (tf.io.gfile refuses or copies object by object), so staging
        # would buy nothing there: copy in place, graph last, as TFX does.
        _copy_graph_last(model_path, destination)
        return destination
    staging = staging_dir(base_directory, version)
    try:
        _copy_graph_last(model_path, staging)
        fileio.rename(staging, destination)
    except BaseException:
        if fileio.exists(staging):
            fileio.rmtree(staging)
        raise
    return destination


def renames_atomically(path: str) -> bool:
    """True for local paths, where a folder rename is one atomic rename(2)."""
    return "://" not in path or path.startswith("file://")


def _copy_graph_last(model_path: str, destination: str) -> None:
    io_utils.copy_dir(model_path, destination, deny_regex_patterns=[rf"{SAVED_MODEL_FILE}$"])
    io_utils.copy_file(os.path.join(model_path, SAVED_MODEL_FILE), os.path.join(destination, SAVED_MODEL_FILE))


class Executor(pusher_executor.Executor):
    """TFX's Pusher executor with the filesystem copy replaced by `push_atomically`."""

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        blessing = artifact_utils.get_single_instance(input_dict[standard_component_specs.MODEL_BLESSING_KEY])
        if verdict.is_already_champion(blessing):
            # The Evaluator found the candidate to be the champion's very files: pushing it would only add a
            # copy as a new version, and a new registry version would become the champion, and so on each run.
            logging.info("Not pushed: the model is already the champion")
            self._MarkNotPushed(model_push)
            model_push.set_string_custom_property(NOT_PUSHED_REASON_PROPERTY, "already the champion")
            return
        model_path = self.GetModelPath(input_dict)
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        if destination.WhichOneof("destination") != "filesystem":
            raise ValueError(f"AtomicPusher pushes to a filesystem, not {destination.WhichOneof('destination')}")
        versioning = destination.filesystem.versioning
        if versioning not in (pusher_pb2.Versioning.AUTO, pusher_pb2.Versioning.UNIX_TIMESTAMP):
            raise ValueError(f"unsupported versioning {versioning}")
        version = str(int(time.time()))
        serving_path = push_atomically(model_path, destination.filesystem.base_directory, version)
        logging.info("Model pushed to %s", serving_path)
        # As TFX's Pusher does: the pushed artifact keeps its own copy, so MLMD lineage outlives the serving folder.
        io_utils.copy_dir(model_path, model_push.uri)
        self._MarkPushed(model_push, pushed_destination=serving_path, pushed_version=version)


class AtomicPusher(pusher_component.Pusher):
    """`tfx.components.Pusher` with the atomic executor; same inputs, outputs and properties.

    Subclassing is TFX's supported way to swap the executor (`custom_executor_spec` is deprecated). The node
    id would default to the class name, so pipelines set it with `.with_id("Pusher")`.
    """

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
