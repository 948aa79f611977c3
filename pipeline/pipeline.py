"""The one DAG: `create_pipeline()` is what every runner (local Beam, Kubeflow) builds and runs."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx

from components import champion as champion_lib
from components import evaluator as evaluator_lib
from components import example_gen, features, ingest, transform_cache, validation_gate
from components import pusher as pusher_lib
from pipeline import config as config_lib

CHAMPION_NODE = "Champion"
TRANSFORM_FN = "components.transform_module.preprocessing_fn"
RUN_FN = "components.trainer_module.run_fn"
_ROOT = Path(__file__).resolve().parent.parent
# The modules each node's executor runs. TFX fingerprints its inputs and properties, not code loaded by
# module path, so a hash of these files goes into each node's properties: a code change reruns the node
# instead of being served a stale result from the cache.
_INGEST_CODE = (
    "components/ingest.py",
    "components/example_gen.py",
    "components/formats.py",
    "components/image_io.py",
    "components/records.py",
    "components/ingest_beam.py",
)
_TRANSFORM_CODE = (
    "components/features.py",
    "components/transform_module.py",
    "components/transform_cache.py",
    "pipeline/config.py",
)
_TRAINER_CODE = _TRANSFORM_CODE + (
    "components/model.py",
    "components/training.py",
    "components/export.py",
    "components/metrics.py",
    "components/trainer_module.py",
    "components/live_tracking.py",
)

_CHAMPION_CODE = ("components/champion.py",)


def code_fingerprint(paths: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.encode())
        digest.update((_ROOT / path).read_bytes())
    return digest.hexdigest()[:16]


def eval_config(config: config_lib.Config) -> tfma.EvalConfig:
    """What TFMA computes on the eval split, and the gates: absolute lower bounds, and lower bounds on the
    change against the champion, both from the config.

    Gated: accuracy and mean box IoU. Reported: per-class precision and recall, the confusion matrix, the share
    of boxes with IoU >= evaluation.hit_iou; overall and for each value of the `evaluation.slice_by` features.
    """

    def at_least(value: float, change: float | None) -> list[tfma.PerSliceMetricThreshold]:
        threshold = tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(lower_bound={"value": value}))
        if change is not None:
            # candidate - champion >= change. The Evaluator ignores it when it is given no champion.
            threshold.change_threshold.CopyFrom(
                tfma.GenericChangeThreshold(direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": change})
            )
        # On the overall slice only: a plain `threshold` would hold every slice (each camera) to it too, where a
        # handful of images decide, and the gate table, which shows the overall values, would not explain it.
        return [tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold)]

    evaluation = config.evaluation
    class_metrics = [
        tfma.MetricConfig(
            class_name="SparseCategoricalAccuracy",
            per_slice_thresholds=at_least(evaluation.min_accuracy, evaluation.min_accuracy_change),
        ),
        tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
    ]
    num_classes = len(config.ingest.labels) or _schema_label_count(config.schema)
    metrics_specs = [tfma.MetricsSpec(output_names=["probabilities"], metrics=class_metrics)]
    if num_classes:
        # One-vs-rest per class; needs the class count up front, which the label list or the schema gives.
        metrics_specs.append(
            tfma.MetricsSpec(
                output_names=["probabilities"],
                binarize=tfma.BinarizationOptions(class_ids={"values": list(range(num_classes))}),
                metrics=[tfma.MetricConfig(class_name="Precision"), tfma.MetricConfig(class_name="Recall")],
            )
        )
    box_specs = [
        tfma.MetricsSpec(
            output_names=["box"],
            metrics=[
                tfma.MetricConfig(
                    class_name="BoxIoU",
                    module="components.metrics",
                    config='"name": "box_iou"',
                    per_slice_thresholds=at_least(evaluation.min_iou, evaluation.min_iou_change),
                ),
                tfma.MetricConfig(
                    class_name="BoxHitRate",
                    module="components.metrics",
                    config=f'"name": "box_hit_rate", "iou_threshold": {evaluation.hit_iou}',
                ),
            ],
        )
    ]
    if config.task == "detection":
        metrics_specs.extend(box_specs)
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name="serving_default",
                # Labels are transformed features (class index, box vector), so TFMA runs the Transform graph.
                preprocessing_function_names=["transform_features"],
                label_keys={"probabilities": features.LABEL_ID}
                if config.task == "classification"
                else {"probabilities": features.LABEL_ID, "box": features.BOX},
            )
        ],
        slicing_specs=[tfma.SlicingSpec(), *(tfma.SlicingSpec(feature_keys=[name]) for name in evaluation.slice_by)],
        metrics_specs=metrics_specs,
    )


def _schema_label_count(schema_path: str) -> int:
    """Number of values in the curated schema's label domain; 0 when it has none."""
    for feature in ingest.load_schema(schema_path).feature:
        if feature.name == features.LABEL and feature.HasField("string_domain"):
            return len(feature.string_domain.value)
    return 0


@dataclasses.dataclass(frozen=True)
class DataValidationNodes:
    """Ingest, statistics and schema validation: the head of the DAG, also run alone by `xfer validate`."""

    example_gen: Any
    statistics_gen: Any
    schema_gen: Any
    example_validator: Any
    anomalies_gate: Any

    def as_list(self) -> list[Any]:
        return [
            self.example_gen,
            self.statistics_gen,
            self.schema_gen,
            self.example_validator,
            self.anomalies_gate,
        ]


def data_validation_nodes(config: config_lib.Config) -> DataValidationNodes:
    example_gen_node = example_gen.ImageExampleGen(
        data_dir=str(config.data),
        split_buckets={"train": config.split.train, "eval": config.split.eval},
        settings=example_gen.IngestSettings.from_config(config.ingest, ingest.schema_column_types(config.schema)),
        code_version=code_fingerprint(_INGEST_CODE),
    )
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen_node.outputs["examples"])
    schema_gen = tfx.components.ImportSchemaGen(schema_file=str(Path(config.schema).resolve()))
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    anomalies_gate = validation_gate.AnomaliesGate(anomalies=example_validator.outputs["anomalies"])
    return DataValidationNodes(example_gen_node, statistics_gen, schema_gen, example_validator, anomalies_gate)


def transform_node(config: config_lib.Config, data_nodes: DataValidationNodes) -> transform_cache.CachingTransform:
    """Transform, run only once the data passed validation."""
    transform = transform_cache.CachingTransform(
        examples=data_nodes.example_gen.outputs["examples"],
        schema=data_nodes.schema_gen.outputs["schema"],
        preprocessing_fn=TRANSFORM_FN,
        custom_config={
            **features.TransformSettings.from_config(config).to_dict(),
            "code_version": code_fingerprint(_TRANSFORM_CODE),
        },
    )
    transform.add_upstream_node(data_nodes.anomalies_gate)
    return transform


def create_pipeline(
    config: config_lib.Config,
    pipeline_root: str,
    serving_dir: str,
    metadata_connection_config: Any = None,
    beam_pipeline_args: list[str] | None = None,
    champion_version: str = "",
    tracking_uri: str = "",
) -> tfx.dsl.Pipeline:
    """The DAG. `champion_version`: the registry version to compare with (`champion.NO_CHAMPION` for none), as
    resolved when the run starts; "" resolves it when the Champion node runs (Kubeflow, where one compiled
    pipeline serves many runs). `tracking_uri`: the MLflow registry; "" is the environment's."""
    transform_settings = features.TransformSettings.from_config(config)
    data_nodes = data_validation_nodes(config)
    example_gen_node, schema_gen = data_nodes.example_gen, data_nodes.schema_gen
    transform = transform_node(config, data_nodes)
    trainer = tfx.components.Trainer(
        run_fn=RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(splits=["train"]),
        eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        custom_config={
            "transform": transform_settings.to_dict(),
            "model": config_lib.asdict(config.model),
            "training": config_lib.asdict(config.training),
            "code_version": code_fingerprint(_TRAINER_CODE),
        },
    )
    champion = champion_lib.ChampionModel(
        registered_model=config.registered_model_name,
        tracking_uri=tracking_uri,
        version=champion_version,
        task=config.task,
        code_version=code_fingerprint(_CHAMPION_CODE),
    ).with_id(CHAMPION_NODE)
    # TFX's Evaluator, which skips the comparison when there is no champion, or when it is the candidate.
    evaluator = evaluator_lib.ChampionEvaluator(
        examples=example_gen_node.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=champion.outputs["champion"],
        eval_config=eval_config(config),
    ).with_id("Evaluator")
    # TFX's Pusher, except that a version folder appears complete or not at all (components/pusher.py).
    pusher = pusher_lib.AtomicPusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_dir)
        ),
    ).with_id("Pusher")
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=pipeline_root,
        components=[*data_nodes.as_list(), transform, trainer, champion, evaluator, pusher],
        enable_cache=True,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args or list(config.beam_args),
    )
