"""What one pipeline run did, read back from ML Metadata: each node's state and output artifacts.

LocalDagRunner returns nothing, so this is how `xfer run` (and the tests) learn which nodes ran or came from the
cache, and where the model, the evaluation, the blessing and the pushed model are.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components import names

_STATES = {
    metadata_store_pb2.Execution.COMPLETE: "COMPLETE",
    metadata_store_pb2.Execution.CACHED: "CACHED",
    metadata_store_pb2.Execution.FAILED: "FAILED",
    metadata_store_pb2.Execution.RUNNING: "RUNNING",
    metadata_store_pb2.Execution.CANCELED: "CANCELED",
    metadata_store_pb2.Execution.NEW: "NEW",
}


@dataclasses.dataclass(frozen=True)
class Output:
    uri: str
    properties: dict[str, Any]

    def split_names(self) -> list[str]:
        """The splits the artifact holds, as TFX recorded them (its `split_names` property); every split xfer
        writes when it does not say (older stores)."""
        recorded = self.properties.get("split_names")
        return json.loads(recorded) if recorded else list(names.SPLITS)


@dataclasses.dataclass(frozen=True)
class NodeRecord:
    node_id: str
    state: str
    outputs: dict[str, list[Output]]

    def output(self, key: str) -> Output:
        return self.outputs[key][0]


@dataclasses.dataclass(frozen=True)
class RunRecord:
    run_id: str
    nodes: dict[str, NodeRecord]

    def state(self, node_id: str) -> str:
        return self.nodes[node_id].state if node_id in self.nodes else "NOT_RUN"


def latest_run(connection_config: metadata_store_pb2.ConnectionConfig, pipeline_name: str) -> RunRecord | None:
    """The newest run of `pipeline_name` in the store, or None if it has never run."""
    store = metadata_store.MetadataStore(connection_config)
    pipeline_context = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline_context is None:
        return None
    pipeline_executions = {execution.id for execution in store.get_executions_by_context(pipeline_context.id)}
    runs = [
        context
        for context in store.get_contexts_by_type("pipeline_run")
        if any(e.id in pipeline_executions for e in store.get_executions_by_context(context.id))
    ]
    if not runs:
        return None
    run = max(runs, key=lambda context: (context.create_time_since_epoch, context.id))
    executions = store.get_executions_by_context(run.id)
    node_type = store.get_context_type("node")
    nodes = {}
    for execution in executions:
        node_contexts = [c for c in store.get_contexts_by_execution(execution.id) if c.type_id == node_type.id]
        node_id = node_contexts[0].name.split(".", 1)[-1] if node_contexts else str(execution.id)
        nodes[node_id] = NodeRecord(
            node_id, _STATES.get(execution.last_known_state, "UNKNOWN"), _outputs(store, execution)
        )
    return RunRecord(run.name, nodes)


def _outputs(store: metadata_store.MetadataStore, execution: metadata_store_pb2.Execution) -> dict[str, list[Output]]:
    events = [
        event
        for event in store.get_events_by_execution_ids([execution.id])
        if event.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
    ]
    artifacts = {artifact.id: artifact for artifact in store.get_artifacts_by_id([e.artifact_id for e in events])}
    outputs: dict[str, list[Output]] = {}
    for event in events:
        key = event.path.steps[0].key if event.path.steps else "output"
        artifact = artifacts[event.artifact_id]
        # Typed properties (an Examples' `split_names`) and custom ones (a pushed model's `pushed_destination`).
        properties = {
            name: _value(value) for name, value in [*artifact.properties.items(), *artifact.custom_properties.items()]
        }
        outputs.setdefault(key, []).append(Output(artifact.uri, properties))
    return outputs


def _value(value: metadata_store_pb2.Value) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None
