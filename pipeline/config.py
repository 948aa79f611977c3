"""Typed run configuration, parsed once from YAML at the entry point.

Every section is a frozen dataclass. Parsing is strict: an unknown key, a missing required key or a value of the
wrong type raises `ConfigError` with a one-line message that names the offending key by its dotted path
(`training.finetune.learning_rate: expected a number, got 'fast'`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A configuration file that cannot be used as written."""


FeatureKind = Literal["numeric", "bucketized", "vocabulary", "vocabulary_list", "hash", "identity", "crossed"]
CATEGORICAL_KINDS = ("bucketized", "vocabulary", "vocabulary_list", "hash", "identity", "crossed")


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """One metadata column and its treatment: the feature-column vocabulary, as tensorflow-transform.

    numeric          float, normalised by `normalization` (zscore, minmax or none)   ~ numeric_column
    bucketized       bucket id from fixed `boundaries`, or from `quantiles` buckets    ~ bucketized_column
                     whose boundaries TFT computes on the data
    vocabulary       id from a vocabulary computed on the data (`top_k` most frequent, ~ categorical_column_with_
                     then `num_oov_buckets` hashed buckets for everything else)          vocabulary_file
    vocabulary_list  id from the fixed `vocabulary` list, then `num_oov_buckets`      ~ ..._with_vocabulary_list
    hash             hash of the value into `hash_buckets`                             ~ ..._with_hash_bucket
    identity         an integer already in 0..num_buckets-1; anything else goes to     ~ ..._with_identity
                     one extra bucket
    crossed          hash of the ids of two or more categorical features into         ~ crossed_column
                     `hash_buckets`
    Every categorical kind feeds the model as an embedding of `embedding_dim`, or one-hot when it is 0
    (indicator_column). `default` fills a missing value (serving requests included) before the transform.
    """

    name: str
    kind: FeatureKind
    normalization: Literal["zscore", "minmax", "none"] = "zscore"
    boundaries: tuple[float, ...] = ()
    quantiles: int = 0
    top_k: int = 1000
    num_oov_buckets: int = 1
    vocabulary: tuple[str, ...] = ()
    num_buckets: int = 0
    inputs: tuple[str, ...] = ()
    hash_buckets: int = 0
    embedding_dim: int = 0
    default: float | str | None = None


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    # Hash buckets per split; examples are assigned by a hash of their filename, so a file never changes split.
    # train fits the model; val is what the Trainer watches (its curves, early stopping); eval is held out for
    # TFMA and the gates only, so no choice made on the validation curves leaks into the gate.
    train: int = 7
    val: int = 1
    eval: int = 2


@dataclasses.dataclass(frozen=True)
class IngestConfig:
    # Stop the run when more than this share of the records is rejected (every reject is listed either way).
    max_reject_fraction: float = 0.05
    # Decompression-bomb guard: images with more pixels are rejected before they are decoded.
    max_pixels: int = 50_000_000
    # When given, a record whose label is not listed is rejected; when empty, every label is a class.
    labels: tuple[str, ...] = ()
    # Annotation format of the dataset folder; "auto" detects it (see components/formats.py for the layouts).
    format: Literal["auto", "csv", "class_folders", "coco", "voc"] = "auto"
    # An image with several boxes (COCO, VOC) keeps its largest box, or is rejected; the log counts them.
    multi_box_policy: Literal["largest", "reject"] = "largest"
    # The pixel grid boxes refer to in photos with an EXIF orientation, when the annotation does not state the
    # image size: "displayed" (upright, as browsers and most labeling tools show it) or "stored" (the raw grid).
    exif_box_frame: Literal["displayed", "stored"] = "displayed"


@dataclasses.dataclass(frozen=True)
class ImageConfig:
    size: int = 71  # Xception's minimum input size.
    # How a non-square image becomes size x size: "stretch" (keeps everything, distorts shapes), "crop" (the
    # centred square; may cut objects at the sides) or "pad" (letterbox). Boxes are mapped the same way, and
    # the served box is mapped back to the original image.
    resize: Literal["stretch", "crop", "pad"] = "stretch"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    backbone: Literal["xception", "resnet50", "mobilenet_v2", "efficientnet_b0"] = "xception"
    # "imagenet" (downloaded by Keras), "none" (random init) or a path to a local weights file.
    weights: str = "none"
    dropout_rate: float = 0.2
    head_units: int = 128
    class_loss_weight: float = 1.0
    box_loss_weight: float = 1.0
    # The box head's size parameterisation: "linear" predicts (cx, cy, w, h) and regresses on the corners;
    # "sqrt" predicts (cx, cy, sqrt w, sqrt h) and regresses there, so the same error in width costs more on a
    # small box than on a large one (as in YOLO). The model outputs corners either way.
    box_size: Literal["linear", "sqrt"] = "linear"
    # The box head: "dense" flattens the two feature maps into a dense layer (each position learnt on its own);
    # "spatial" scores every cell of the stride-16 map, takes the softmax-weighted centre, offset and size
    # (a soft argmax, the same convolution at every place). benchmarks/box_settings.py compares them.
    box_head: Literal["dense", "spatial"] = "dense"
    # The IoU-family term of the box loss, beside the smooth L1: "iou", "giou" (Rezatofighi et al. 2019) or
    # "diou" (Zheng et al. 2020), both of which keep a gradient when the boxes do not overlap.
    box_iou_loss: Literal["iou", "giou", "diou"] = "iou"


@dataclasses.dataclass(frozen=True)
class PhaseConfig:
    epochs: int
    learning_rate: float
    # "constant", or "cosine": decays from learning_rate towards 0 over the phase's epochs.
    schedule: Literal["constant", "cosine"] = "constant"
    # Fine-tuning only: 0 unfreezes the whole backbone, N > 0 only its last N layers, or its last N blocks
    # (BACKBONE_BLOCKS below: Xception has 14, block1..block14). Set one of the two.
    unfreeze_top_layers: int = 0
    unfreeze_top_blocks: int = 0


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Train-split augmentation; the box moves with the image. All off by default."""

    flip: bool = False  # Horizontal flip with probability 1/2.
    zoom: float = 0.0  # Random square window of side 1 - zoom .. 1 of the image, resized back.
    brightness: float = 0.0  # Uniform shift of up to +-brightness pixel levels (0..255 scale).


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    frozen: PhaseConfig
    finetune: PhaseConfig
    batch_size: int = 16
    seed: int = 42
    shuffle_buffer: int = 1000
    augment: AugmentConfig = AugmentConfig()
    # Stop a phase after this many epochs without a better val_loss, keeping its best weights; 0 = off.
    early_stopping_patience: int = 0


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    # Absolute gates: the model is blessed (and pushed) only when every one holds on the eval split.
    min_accuracy: float = 0.5
    min_iou: float = 0.3
    # Change gates against the current champion (the registry version with the alias `champion`): the
    # candidate's value minus the champion's must be at least this. -0.01 tolerates a drop of one point, 0 allows
    # no drop, a positive value demands a gain; null turns the gate off. The first run has no champion and is
    # held to the absolute gates only; so is a candidate that is the champion itself (nothing new to push).
    min_accuracy_change: float | None = -0.01
    min_iou_change: float | None = -0.01
    # A predicted box "hits" when its IoU with the true box is at least this; TFMA reports the hit rate.
    hit_iou: float = 0.5
    # Raw features to slice the evaluation by (each value gets its own metrics), besides the overall slice.
    slice_by: tuple[str, ...] = ()


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
    workspace: str = "workspace"
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
    def tracking_uri(self) -> str:
        return self.mlflow.tracking_uri or f"sqlite:///{self.workspace_path / 'mlflow.db'}"

    @property
    def experiment_name(self) -> str:
        return self.mlflow.experiment or self.pipeline_name

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
    config = _build(Config, raw, "")
    _check(config)
    return config


def asdict(section: Any) -> dict[str, Any]:
    return dataclasses.asdict(section)


def section_from_dict(cls: type, raw: dict[str, Any], where: str = "") -> Any:
    """One config section (a dataclass above) from its dict form, e.g. as carried in a component's custom_config."""
    return _build(cls, raw, where)


def _check_feature(feature: FeatureConfig, where: str, declared: tuple[FeatureConfig, ...]) -> None:
    if feature.kind == "bucketized":
        if bool(feature.boundaries) == bool(feature.quantiles):
            raise ConfigError(f"{where}: a bucketized feature needs either boundaries or quantiles")
        if list(feature.boundaries) != sorted(set(feature.boundaries)):
            raise ConfigError(f"{where}.boundaries: must be strictly increasing")
        if feature.quantiles == 1 or feature.quantiles < 0:
            raise ConfigError(f"{where}.quantiles: needs at least 2 buckets")
    if feature.kind in ("vocabulary", "vocabulary_list") and feature.num_oov_buckets < 1:
        raise ConfigError(f"{where}.num_oov_buckets: needs at least 1, so unseen values have an id")
    if feature.kind == "vocabulary" and feature.top_k < 1:
        raise ConfigError(f"{where}.top_k: must be >= 1")
    if feature.kind == "vocabulary_list":
        if not feature.vocabulary:
            raise ConfigError(f"{where}.vocabulary: a vocabulary_list feature needs its list of values")
        if len(set(feature.vocabulary)) != len(feature.vocabulary):
            raise ConfigError(f"{where}.vocabulary: values must be unique")
    if feature.kind == "identity" and feature.num_buckets < 1:
        raise ConfigError(f"{where}.num_buckets: an identity feature needs num_buckets >= 1")
    if feature.kind in ("hash", "crossed") and feature.hash_buckets < 2:
        raise ConfigError(f"{where}.hash_buckets: a {feature.kind} feature needs hash_buckets >= 2")
    if feature.kind == "crossed":
        if len(feature.inputs) < 2:
            raise ConfigError(f"{where}.inputs: a crossed feature needs two or more inputs")
        for name in feature.inputs:
            source = next((f for f in declared if f.name == name), None)
            if source is None:
                raise ConfigError(f"{where}.inputs: unknown feature {name!r}")
            if source.kind not in CATEGORICAL_KINDS or source.kind == "crossed":
                raise ConfigError(f"{where}.inputs: {name!r} is {source.kind}; cross categorical features")
    elif feature.inputs:
        raise ConfigError(f"{where}.inputs: only crossed features take inputs")


# Smallest input each keras.applications backbone accepts (kept here so a bad config fails before TF loads).
_BACKBONE_MIN_SIZE = {"xception": 71, "resnet50": 32, "mobilenet_v2": 32, "efficientnet_b0": 32}
# How many blocks each backbone has (components/model.py finds them by layer name; a test checks the counts).
BACKBONE_BLOCKS = {"xception": 14, "resnet50": 16, "mobilenet_v2": 16, "efficientnet_b0": 16}


# What `model.weights` may name besides none and imagenet: Keras HDF5 files (components/model.py loads them).
WEIGHTS_SUFFIXES = (".h5", ".hdf5")


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
    names = [feature.name for feature in config.features]
    for feature in config.features:
        where = f"features.{feature.name}"
        if names.count(feature.name) > 1:
            raise ConfigError(f"{where}: feature declared twice")
        _check_feature(feature, where, config.features)
        if feature.embedding_dim < 0:
            raise ConfigError(f"{where}.embedding_dim: must be >= 0")
    min_size = _BACKBONE_MIN_SIZE[config.model.backbone]
    if config.image.size < min_size:
        raise ConfigError(
            f"image.size: {config.model.backbone} needs at least {min_size} pixels, got {config.image.size}"
        )
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
    for key in ("min_accuracy", "min_iou"):
        value = getattr(config.evaluation, key)
        if not 0 <= value <= 1.01:
            raise ConfigError(f"evaluation.{key}: must be between 0 and 1.01, got {value}")
    for key in ("min_accuracy_change", "min_iou_change"):
        value = getattr(config.evaluation, key)
        # Both metrics lie in [0, 1], so a change outside [-1, 1] could never fail (or never pass); 1.01 is
        # allowed, as for the absolute gates, to make a gate that cannot pass on purpose.
        if value is not None and not -1 <= value <= 1.01:
            raise ConfigError(f"evaluation.{key}: must be between -1 and 1.01 (or null for no gate), got {value}")
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


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {_show(raw)}")
    hints = typing.get_type_hints(cls)
    fields = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{_join(where, unknown[0])}: unknown key (known: {', '.join(sorted(fields))})")
    values = {}
    for name, field in fields.items():
        key_path = _join(where, name)
        if name not in raw:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{key_path}: required key is missing")
            continue
        values[name] = _coerce(hints[name], raw[name], key_path)
    return cls(**values)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: expected one of {', '.join(map(str, args))}, got {_show(value)}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (arg for arg in args if arg is not type(None)):
            try:
                return _coerce(option, value, where)
            except ConfigError:
                continue
        names = " or ".join(getattr(arg, "__name__", str(arg)) for arg in args if arg is not type(None))
        raise ConfigError(f"{where}: expected {names}, got {_show(value)}")
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {_show(value)}")
        key_hint, value_hint = args
        return {
            _coerce(key_hint, key, where): _coerce(value_hint, item, _join(where, str(key)))
            for key, item in value.items()
        }
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {_show(value)}")
        item_hint = args[0]
        if dataclasses.is_dataclass(item_hint):
            return tuple(
                _build(item_hint, item, _join(where, _item_name(item, index))) for index, item in enumerate(value)
            )
        return tuple(_coerce(item_hint, item, f"{where}[{index}]") for index, item in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {_show(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected a whole number, got {_show(value)}")
        return value
    if hint is float:
        # YAML reads `1e-4` (no dot) as a string; accept it, since people write learning rates that way.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {_show(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {_show(value)}")
        return value
    raise TypeError(f"unsupported config type {hint!r} at {where}")


def _item_name(item: Any, index: int) -> str:
    return str(item["name"]) if isinstance(item, dict) and "name" in item else f"[{index}]"


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _show(value: Any) -> str:
    return "nothing" if value is None else repr(value)
