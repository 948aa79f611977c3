"""The one DAG: `create_pipeline()` is what every runner (local Beam, Kubeflow) builds and runs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2

# TFX's modules, not `tfx.v1`: importing `tfx.v1` loads every extension too (Google Cloud AI Platform, BigQuery),
# about 11 s of every `xfer run`, for nodes this pipeline never uses.
from tfx.components import ExampleValidator, StatisticsGen, Trainer
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.dsl.components.base import base_component
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.proto import pusher_pb2, trainer_pb2

from components import names
from components.champion import component as champion_lib
from components.evaluator import executor as evaluator_lib
from components.evaluator import verdict
from components.ingest import example_gen
from components.ingest import examples as ingest
from components.pusher import executor as pusher_lib
from components.transform import cache as transform_cache
from components.transform import features
from components.validation import gate as validation_gate
from pipeline import code_version as code_version_lib
from pipeline import config as config_lib

TRANSFORM_FN = "components.transform.module.preprocessing_fn"
RUN_FN = "components.trainer.module.run_fn"


def executor_module(component_class: type[base_component.BaseComponent]) -> str:
    """The module of a component's executor class: where its code starts."""
    return component_class.EXECUTOR_SPEC.executor_class.__module__


def node_code_modules(eval_config_: tfma.EvalConfig) -> dict[str, list[str]]:
    """The modules each node with project code starts from: its executor's module, and the modules it is told
    to load by name (the Transform and Trainer module functions, TFMA's custom metrics)."""
    metric_modules = sorted(
        {metric.module for spec in eval_config_.metrics_specs for metric in spec.metrics if metric.module}
    )
    roots = {
        names.INGEST: [example_gen.Executor.__module__],
        names.GATE: [validation_gate.__name__],
        names.TRANSFORM: [executor_module(transform_cache.CachingTransform), code_version_lib.module_of(TRANSFORM_FN)],
        names.TRAINER: [code_version_lib.module_of(RUN_FN)],
        names.CHAMPION: [champion_lib.__name__],
        names.EVALUATOR: [executor_module(evaluator_lib.ChampionEvaluator), *metric_modules],
        names.PUSHER: [executor_module(pusher_lib.AtomicPusher)],
    }
    return roots


def node_code_versions(eval_config_: tfma.EvalConfig) -> dict[str, str]:
    """Each node's code version (pipeline/code_version.py): a hash of its modules and all they import."""
    return {node: code_version_lib.code_version(modules) for node, modules in node_code_modules(eval_config_).items()}


def eval_config(config: config_lib.Config) -> tfma.EvalConfig:
    """The Evaluator's TFMA config for this run (components/evaluator/verdict.py builds it from the gates)."""
    num_classes = len(config.ingest.labels) or _schema_label_count(config.schema)
    return verdict.eval_config(config.evaluation, config.task, num_classes)


def _schema_label_count(schema_path: str) -> int:
    """Number of values in the curated schema's label domain; 0 when it has none."""
    for feature in ingest.load_schema(schema_path).feature:
        if feature.name == features.LABEL and feature.HasField("string_domain"):
            return len(feature.string_domain.value)
    return 0


@dataclasses.dataclass(frozen=True)
class DataValidationNodes:
    """Ingest, statistics and schema validation: the head of the DAG, also run alone by `xfer validate`."""

    example_gen: base_component.BaseComponent
    statistics_gen: base_component.BaseComponent
    schema_gen: base_component.BaseComponent
    example_validator: base_component.BaseComponent
    anomalies_gate: base_component.BaseComponent

    def as_list(self) -> list[base_component.BaseComponent]:
        return [
            self.example_gen,
            self.statistics_gen,
            self.schema_gen,
            self.example_validator,
            self.anomalies_gate,
        ]


def data_validation_nodes(
    config: config_lib.Config, code_versions: dict[str, str] | None = None
) -> DataValidationNodes:
    versions = code_versions or node_code_versions(eval_config(config))
    example_gen_node = example_gen.ImageExampleGen(
        data_dir=str(config.data),
        split_buckets={
            names.TRAIN_SPLIT: config.split.train,
            names.VAL_SPLIT: config.split.val,
            names.EVAL_SPLIT: config.split.eval,
        },
        settings=example_gen.IngestSettings.from_config(
            config.ingest, ingest.schema_column_types(config.schema), config_lib.derived_columns(config.features)
        ),
        code_version=versions[names.INGEST],
    )
    statistics_gen = StatisticsGen(examples=example_gen_node.outputs["examples"])
    schema_file = Path(config.schema).resolve()
    # TFX caches ImportSchemaGen on the file's path, not its content: an edited schema would not be read again.
    schema_gen = code_version_lib.add_to_component(
        ImportSchemaGen(schema_file=str(schema_file)), code_version_lib.code_version((), extra_files=[schema_file])
    )
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    anomalies_gate = validation_gate.AnomaliesGate(
        anomalies=example_validator.outputs["anomalies"],
        statistics=statistics_gen.outputs["statistics"],
        label=features.LABEL,
        train_split=names.TRAIN_SPLIT,
        code_version=versions[names.GATE],
    )
    return DataValidationNodes(example_gen_node, statistics_gen, schema_gen, example_validator, anomalies_gate)


def transform_node(
    config: config_lib.Config, data_nodes: DataValidationNodes, code_version: str
) -> transform_cache.CachingTransform:
    """Transform, run only once the data passed validation."""
    transform = transform_cache.CachingTransform(
        examples=data_nodes.example_gen.outputs["examples"],
        schema=data_nodes.schema_gen.outputs["schema"],
        preprocessing_fn=TRANSFORM_FN,
        custom_config={
            **config.transform_settings.to_dict(),
            "code_version": code_version,
        },
    )
    transform.add_upstream_node(data_nodes.anomalies_gate)
    return transform


def create_pipeline(
    config: config_lib.Config,
    pipeline_root: str,
    serving_dir: str,
    metadata_connection_config: metadata_store_pb2.ConnectionConfig | None = None,
    beam_pipeline_args: list[str] | None = None,
    champion_version: str = "",
    tracking_uri: str = "",
) -> tfx_pipeline.Pipeline:
    """The DAG. `champion_version`: the registry version to compare with (`champion.NO_CHAMPION` for none), as
    resolved when the run starts; "" resolves it when the Champion node runs (Kubeflow, where one compiled
    pipeline serves many runs). `tracking_uri`: the MLflow registry; "" is the environment's.

    Long because it is the DAG: every node and every edge, in the order the data flows, in one place that every
    runner builds (the head of the DAG is `data_validation_nodes`, which `xfer validate` runs alone)."""
    transform_settings = config.transform_settings
    evaluation_config = eval_config(config)
    versions = node_code_versions(evaluation_config)
    data_nodes = data_validation_nodes(config, versions)
    example_gen_node, schema_gen = data_nodes.example_gen, data_nodes.schema_gen
    transform = transform_node(config, data_nodes, versions[names.TRANSFORM])
    trainer = Trainer(
        run_fn=RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=trainer_pb2.TrainArgs(splits=[names.TRAIN_SPLIT]),
        # The Trainer validates (and early-stops) on val; eval is the Evaluator's alone, so the gates judge
        # data no training choice has seen.
        eval_args=trainer_pb2.EvalArgs(splits=[names.VAL_SPLIT]),
        custom_config={
            "transform": transform_settings.to_dict(),
            "model": config_lib.asdict(config.model),
            "training": config_lib.asdict(config.training),
            "code_version": versions[names.TRAINER],
        },
    )
    champion = champion_lib.ChampionModel(
        registered_model=config.registered_model_name,
        tracking_uri=tracking_uri,
        version=champion_version,
        task=config.task,
        code_version=versions[names.CHAMPION],
    ).with_id(names.CHAMPION)
    # TFX's Evaluator, which skips the comparison when there is no champion, or when it is the candidate.
    evaluator = code_version_lib.add_to_component(
        evaluator_lib.ChampionEvaluator(
            examples=example_gen_node.outputs["examples"],
            model=trainer.outputs["model"],
            baseline_model=champion.outputs["champion"],
            eval_config=evaluation_config,
            example_splits=[names.EVAL_SPLIT],
        ).with_id(names.EVALUATOR),
        versions[names.EVALUATOR],
    )
    # TFX's Pusher, except that a version folder appears complete or not at all (components/pusher/executor.py).
    pusher = code_version_lib.add_to_component(
        pusher_lib.AtomicPusher(
            model=trainer.outputs["model"],
            model_blessing=evaluator.outputs["blessing"],
            push_destination=pusher_pb2.PushDestination(
                filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=serving_dir)
            ),
        ).with_id(names.PUSHER),
        versions[names.PUSHER],
    )
    return tfx_pipeline.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=pipeline_root,
        components=[*data_nodes.as_list(), transform, trainer, champion, evaluator, pusher],
        enable_cache=True,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args or list(config.beam_args),
    )
