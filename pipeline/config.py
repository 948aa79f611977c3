"""Typed run configuration, parsed once from YAML at the entry point.

Every section is a frozen dataclass, parsed strictly by `components.settings` (an unknown key, a missing
required key or a value of the wrong type raises `ConfigError`, naming the key by its dotted path). The sections
a step's code reads live beside that code (`components/transform/settings.py`, `components/trainer/settings.py`)
so that no component imports this module; the rest, and the cross-field rules, are here.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from components.evaluator.settings import EvaluationConfig, check_evaluation
from components.ingest.settings import IngestConfig
from components.settings import ConfigError, asdict, section_from_dict
from components.trainer.settings import (
    BACKBONE_BLOCKS,
    BACKBONE_MIN_SIZE,
    WEIGHTS_SUFFIXES,
    AugmentConfig,
    ModelConfig,
    PhaseConfig,
    TrainingConfig,
)
from components.transform.kinds import CATEGORICAL_KINDS, FeatureKind
from components.transform.settings import FeatureConfig, check_feature, derived_columns
from pipeline import workspace as workspace_lib
from pipeline.kubeflow.naming import MAX_PIPELINE_NAME, check_pipeline_name

if TYPE_CHECKING:
    from components.transform.features import TransformSettings

# The names above are this module's too: the pipeline, the CLI and the tests read every section from here.
__all__ = [
    "AugmentConfig",
    "CATEGORICAL_KINDS",
    "IngestConfig",
    "ConfigError",
    "EvaluationConfig",
    "MAX_PIPELINE_NAME",
    "FeatureConfig",
    "FeatureKind",
    "ModelConfig",
    "PhaseConfig",
    "TrainingConfig",
    "WEIGHTS_SUFFIXES",
    "asdict",
    "check_pipeline_name",
    "section_from_dict",
]


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    # Hash buckets per split; examples are assigned by a hash of their filename, so a file never changes split.
    # train fits the model; val is what the Trainer watches (its curves, early stopping); eval is held out for
    # TFMA and the gates only, so no choice made on the validation curves leaks into the gate.
    train: int = 7
    val: int = 1
    eval: int = 2


@dataclasses.dataclass(frozen=True)
class ImageConfig:
    size: int = 71  # Xception's minimum input size.
    # How a non-square image becomes size x size: "stretch" (keeps everything, distorts shapes), "crop" (the
    # centred square; may cut objects at the sides) or "pad" (letterbox). Boxes are mapped the same way, and
    # the served box is mapped back to the original image.
    resize: Literal["stretch", "crop", "pad"] = "stretch"
    # How Transform hands the resized image to the Trainer: "jpeg" (encoded once at `size`, decoded in the
    # Trainer's input pipeline and in serving alike) or "pixels" (int64 0..255). At 299 px JPEG took 0.15 of the
    # bytes and read about 4x faster (benchmarks/input_pipeline.py, README); "pixels" is lossless.
    stored_as: Literal["jpeg", "pixels"] = "jpeg"
    jpeg_quality: int = 95


@dataclasses.dataclass(frozen=True)
class MlflowConfig:
    # Empty means the workspace's own sqlite store, `sqlite:///<workspace>/mlflow.db`.
    tracking_uri: str = ""
    experiment: str = ""  # Empty means the pipeline name.


@dataclasses.dataclass(frozen=True)
class ResourcesConfig:
    """Requests and limits of one pipeline step, in cores and gigabytes as KFP's ResourceSpec takes them."""

    cpu_request: float = 1.0
    cpu_limit: float = 2.0
    memory_request_gb: float = 4.0
    memory_limit_gb: float = 8.0


@dataclasses.dataclass(frozen=True)
class TolerationConfig:
    key: str
    operator: Literal["Exists", "Equal"] = "Exists"
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = "NoSchedule"


def _default_secret_env() -> dict[str, str]:
    # Env var -> key in the Kubernetes Secret: MLflow's server and login, and the object store the pipeline
    # root lives in (boto3, Beam's S3 filesystem and tensorflow-io all read these names).
    return {
        "MLFLOW_TRACKING_URI": "mlflow-tracking-uri",
        "MLFLOW_TRACKING_USERNAME": "mlflow-tracking-username",
        "MLFLOW_TRACKING_PASSWORD": "mlflow-tracking-password",
        "AWS_ACCESS_KEY_ID": "aws-access-key-id",
        "AWS_SECRET_ACCESS_KEY": "aws-secret-access-key",
        "AWS_ENDPOINT_URL": "aws-endpoint-url",
        "AWS_REGION": "aws-region",
    }


@dataclasses.dataclass(frozen=True)
class KubeflowConfig:
    """How `xfer compile` turns the one DAG into a KFP pipeline; unused by `xfer run`."""

    # Where every artifact goes; the cluster has no view of the local workspace.
    pipeline_root: str = "s3://xfer/pipeline_root"
    # The dataset and the serving folder as the pods see them.
    data: str = "s3://xfer/data/sample"
    serving_dir: str = "s3://xfer/serving"
    # The schema is baked into the image at this folder (the Dockerfile's WORKDIR), next to the code.
    image_workdir: str = "/app"
    image: str = "registry.example.com/xfer:0.1.0-cpu"
    gpu_image: str = "registry.example.com/xfer:0.1.0-gpu"
    gpu_count: int = 1
    gpu_resource: str = "nvidia.com/gpu"
    resources: ResourcesConfig = ResourcesConfig()
    trainer_resources: ResourcesConfig = ResourcesConfig(
        cpu_request=4.0, cpu_limit=8.0, memory_request_gb=16.0, memory_limit_gb=24.0
    )
    # Labels the GPU pool's nodes carry (the GPU operator's feature discovery sets this one).
    node_selector: dict[str, str] = dataclasses.field(default_factory=lambda: {"nvidia.com/gpu.present": "true"})
    tolerations: tuple[TolerationConfig, ...] = (TolerationConfig(key="nvidia.com/gpu"),)
    secret_name: str = "xfer-pipeline"
    secret_env: dict[str, str] = dataclasses.field(default_factory=_default_secret_env)
    # Retries absorb node preemption and flaky object-store calls; a real bug fails every attempt anyway.
    retries: int = 2
    retry_backoff_seconds: int = 60
    # DirectRunner in the pod for every Beam-powered step; multi_processing uses the cores the pod's CPU
    # limit grants, so keep direct_num_workers equal to resources.cpu_limit.
    beam_args: tuple[str, ...] = ("--direct_running_mode=multi_processing", "--direct_num_workers=2")
    # Node id -> Beam args replacing `beam_args` for that node, e.g. Flink or Dataflow for a big Transform.
    component_beam_args: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    mlflow_experiment: str = ""  # Empty means the top-level mlflow.experiment, then the pipeline name.


@dataclasses.dataclass(frozen=True)
class Config:
    pipeline_name: str
    data: str
    training: TrainingConfig
    # "detection": a class and one box per image. "classification": a class only (e.g. class-folder datasets):
    # no box head, no IoU metrics or gate.
    task: Literal["detection", "classification"] = "detection"
    features: tuple[FeatureConfig, ...] = ()
    workspace: str = workspace_lib.DEFAULT_ROOT
    schema: str = "schemas/schema.pbtxt"
    beam_args: tuple[str, ...] = ("--direct_running_mode=in_memory", "--direct_num_workers=1")
    split: SplitConfig = SplitConfig()
    ingest: IngestConfig = IngestConfig()
    image: ImageConfig = ImageConfig()
    model: ModelConfig = ModelConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    mlflow: MlflowConfig = MlflowConfig()
    kubeflow: KubeflowConfig = KubeflowConfig()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    @property
    def workspace_path(self) -> Path:
        return Path(self.workspace).resolve()

    @property
    def workspace_layout(self) -> workspace_lib.Workspace:
        """Where a local run keeps each of its stores and outputs."""
        return workspace_lib.Workspace(self.workspace_path)

    @property
    def tracking_uri(self) -> str:
        return self.mlflow.tracking_uri or self.workspace_layout.tracking_uri

    @property
    def experiment_name(self) -> str:
        return self.mlflow.experiment or self.pipeline_name

    @functools.cached_property
    def transform_settings(self) -> TransformSettings:
        """What Transform, the Trainer and the exporter read of this config, derived once per run."""
        from components.transform.features import TransformSettings  # TensorFlow loads only when it is asked for.

        return TransformSettings(
            image_size=self.image.size,
            features=self.features,
            resize=self.image.resize,
            stored_as=self.image.stored_as,
            jpeg_quality=self.image.jpeg_quality,
            boxes=self.task == "detection",
            no_object_class=self.ingest.no_object_class if self.ingest.no_object == "keep" else "",
        )

    @property
    def registered_model_name(self) -> str:
        """The MLflow registered model that pushed versions go to, and whose `champion` new models must beat."""
        return self.pipeline_name


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Reads a YAML file into a validated `Config`; `overrides` are top-level keys applied on top."""
    path = Path(path)
    raw = _with_base(_read_mapping(path, "config file not found"), path, seen=(path.resolve(),))
    raw.update({key: value for key, value in (overrides or {}).items() if value is not None})
    return config_from_dict(raw)


BASE_KEY = "base"


def _read_mapping(path: Path, missing: str) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{missing}: {path}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}".replace("\n", " ")) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return raw


def _with_base(raw: dict[str, Any], path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """`base: other.yaml` (relative to this file) is read first and this file's keys merged over it, mapping
    by mapping: a preset states only what it changes (configs/pretrained.yaml over configs/sample.yaml)."""
    if BASE_KEY not in raw:
        return raw
    base_path = (path.parent / str(raw.pop(BASE_KEY))).resolve()
    if base_path in seen:
        raise ConfigError(f"{path}: base: {base_path} is already being read (a cycle of base files)")
    base = _read_mapping(base_path, f"{path}: base: config file not found")
    return _merged(_with_base(base, base_path, (*seen, base_path)), raw)


def _merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        both_mappings = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merged(merged[key], value) if both_mappings else value
    return merged


def config_from_dict(raw: dict[str, Any]) -> Config:
    config = section_from_dict(Config, raw)
    _check(config)
    return config


def _check_weights(weights: str) -> None:
    """A weights file is checked before the run ingests anything (its content when the Trainer loads it)."""
    if weights.lower() in ("none", "imagenet"):
        return
    if not weights.endswith(WEIGHTS_SUFFIXES):
        raise ConfigError(f"model.weights: {weights!r} is none, imagenet or a Keras HDF5 weights file (.h5)")
    if "://" not in weights and not Path(weights).is_file():
        raise ConfigError(f"model.weights: {weights} does not exist")


def _check(config: Config) -> None:
    """Cross-field rules that types alone cannot express."""
    check_pipeline_name(config.pipeline_name)
    names = [feature.name for feature in config.features]
    for feature in config.features:
        where = f"features.{feature.name}"
        if names.count(feature.name) > 1:
            raise ConfigError(f"{where}: feature declared twice")
        check_feature(feature, where, config.features)
        if feature.embedding_dim < 0:
            raise ConfigError(f"{where}.embedding_dim: must be >= 0")
    derived_columns(config.features)
    min_size = BACKBONE_MIN_SIZE[config.model.backbone]
    if config.image.size < min_size:
        raise ConfigError(
            f"image.size: {config.model.backbone} needs at least {min_size} pixels, got {config.image.size}"
        )
    if not 1 <= config.image.jpeg_quality <= 100:
        raise ConfigError(f"image.jpeg_quality: 1 to 100 (libjpeg's scale), got {config.image.jpeg_quality}")
    if config.training.cache_max_mb < 0:
        raise ConfigError(f"training.cache_max_mb: must be >= 0 (0 never caches), got {config.training.cache_max_mb}")
    finetune = config.training.finetune
    for key in ("unfreeze_top_layers", "unfreeze_top_blocks"):
        if getattr(finetune, key) < 0:
            raise ConfigError(f"training.finetune.{key}: must be >= 0 (0 unfreezes everything)")
    if finetune.unfreeze_top_layers and finetune.unfreeze_top_blocks:
        raise ConfigError("training.finetune: set unfreeze_top_layers or unfreeze_top_blocks, not both")
    blocks = BACKBONE_BLOCKS[config.model.backbone]
    if finetune.unfreeze_top_blocks > blocks:
        raise ConfigError(
            f"training.finetune.unfreeze_top_blocks: {config.model.backbone} has {blocks} blocks, "
            f"got {finetune.unfreeze_top_blocks}"
        )
    if not 0 <= config.ingest.max_reject_fraction <= 1:
        raise ConfigError("ingest.max_reject_fraction: must be between 0 and 1")
    if min(config.split.train, config.split.val, config.split.eval) < 1:
        raise ConfigError("split: train, val and eval need at least one hash bucket each")
    _check_weights(config.model.weights)
    for phase_name in ("frozen", "finetune"):
        phase = getattr(config.training, phase_name)
        if phase.epochs < 0:
            raise ConfigError(f"training.{phase_name}.epochs: must be >= 0")
        if phase.learning_rate <= 0:
            raise ConfigError(f"training.{phase_name}.learning_rate: must be > 0")
    if config.training.frozen.epochs + config.training.finetune.epochs == 0:
        raise ConfigError("training: frozen.epochs + finetune.epochs must be at least 1")
    augment = config.training.augment
    if not 0 <= augment.zoom < 1:
        raise ConfigError(f"training.augment.zoom: must be in [0, 1), got {augment.zoom}")
    if not 0 <= augment.brightness <= 255:
        raise ConfigError(f"training.augment.brightness: must be in [0, 255], got {augment.brightness}")
    if config.training.batch_size < 1:
        raise ConfigError("training.batch_size: must be >= 1")
    check_evaluation(config.evaluation)
    _check_kubeflow(config.kubeflow)


# Beam flags that carry credentials. Whatever is in the beam args is written into the compiled pipeline, so
# these must come from the Secret as environment variables instead.
_SECRET_FLAG_WORDS = ("secret", "password", "token", "access_key", "credential")


def _check_kubeflow(kubeflow: KubeflowConfig) -> None:
    where = "kubeflow"
    for key in ("pipeline_root", "data", "serving_dir"):
        value = getattr(kubeflow, key)
        if "://" not in value:
            raise ConfigError(f"{where}.{key}: expected a URI the pods reach (s3://, gs://), got {value!r}")
        if "@" in value.split("://", 1)[1].split("/", 1)[0]:
            raise ConfigError(f"{where}.{key}: no credentials in URIs; use the Secret {kubeflow.secret_name}")
    if kubeflow.gpu_count < 0:
        raise ConfigError(f"{where}.gpu_count: must be >= 0")
    if kubeflow.retries < 0 or kubeflow.retry_backoff_seconds < 0:
        raise ConfigError(f"{where}.retries: retries and retry_backoff_seconds must be >= 0")
    for name in ("resources", "trainer_resources"):
        resources = getattr(kubeflow, name)
        if not 0 < resources.cpu_request <= resources.cpu_limit:
            raise ConfigError(f"{where}.{name}: need 0 < cpu_request <= cpu_limit")
        if not 0 < resources.memory_request_gb <= resources.memory_limit_gb:
            raise ConfigError(f"{where}.{name}: need 0 < memory_request_gb <= memory_limit_gb")
    for env_name, secret_key in kubeflow.secret_env.items():
        if not env_name.isidentifier() or not secret_key:
            raise ConfigError(f"{where}.secret_env.{env_name}: needs an env var name and a Secret key")
    all_args = {"beam_args": kubeflow.beam_args}
    for node, args in kubeflow.component_beam_args.items():
        all_args[f"component_beam_args.{node}"] = args
    for key, args in all_args.items():
        for arg in args:
            flag = arg.split("=", 1)[0].lower()
            if any(word in flag for word in _SECRET_FLAG_WORDS):
                raise ConfigError(
                    f"{where}.{key}: {flag} carries a credential, which would be written into the compiled "
                    f"pipeline; put it in the Secret {kubeflow.secret_name} (kubeflow.secret_env) instead"
                )
