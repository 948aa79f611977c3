"""The feature kinds: one entry per kind, holding everything that changes from one kind to the next.

The config check (`settings.check_feature`), Transform (`features`), the model's metadata tower (through
`features.categorical_cardinalities` and `features.numeric_features`) and the run's MLflow params
(`pipeline/tracking/mlflow_text.FEATURE_KEYS`) read this table, so a new kind is one entry here plus its
TensorFlow op in `features.TRANSFORMS`. Plain Python: the config check and the tracking read it without
loading TensorFlow, which is why the ops themselves live in `features`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal, Protocol

from components.settings import ConfigError

# What Transform feeds a kind: a raw column's values as numbers (a derived value is a number, so it can feed
# these kinds only), as strings, or the ids of other features (computed first).
Reads = Literal["number", "string", "features"]


class Feature(Protocol):
    """The fields of a feature's config (`settings.FeatureConfig`) that the kinds read. Named here, not imported:
    settings.py takes its `kind:` choices from this table, and an import back would close a circle."""

    name: str
    kind: str
    normalization: str
    boundaries: tuple[float, ...]
    quantiles: int
    top_k: int
    num_oov_buckets: int
    vocabulary: tuple[str, ...]
    num_buckets: int
    inputs: tuple[str, ...]
    hash_buckets: int


@dataclasses.dataclass(frozen=True)
class Kind:
    name: str
    # The keys of a feature's config (settings.FeatureConfig fields) this kind reads; the others are unused defaults,
    # which the run's MLflow params leave out.
    keys: tuple[str, ...]
    reads: Reads
    # How many distinct ids a feature of this kind yields, given `vocabulary_size(name)` of a vocabulary
    # Transform computed; None for a kind that feeds the model a float. The tower embeds (or one-hot encodes,
    # embedding_dim 0) every kind with ids and passes floats through as one column.
    ids: Callable[[Feature, Callable[[str], int]], int] | None
    # The rules of the kind's own keys, as ConfigErrors naming the key (`where`); `declared` is every feature.
    check: Callable[[Feature, str, tuple[Feature, ...]], None]
    # What Transform does, for the readable summary (`features.describe`).
    describe: Callable[[Feature], str]

    @property
    def categorical(self) -> bool:
        return self.ids is not None


def _check_nothing(feature: Feature, where: str, declared: tuple[Feature, ...]) -> None:
    """numeric: the parser's types say it all (normalization is one of its choices)."""


def _check_bucketized(feature: Feature, where: str, declared: tuple[Feature, ...]) -> None:
    if bool(feature.boundaries) == bool(feature.quantiles):
        raise ConfigError(f"{where}: a bucketized feature needs either boundaries or quantiles")
    if list(feature.boundaries) != sorted(set(feature.boundaries)):
        raise ConfigError(f"{where}.boundaries: must be strictly increasing")
    if feature.quantiles == 1 or feature.quantiles < 0:
        raise ConfigError(f"{where}.quantiles: needs at least 2 buckets")


def _check_oov(feature: Feature, where: str) -> None:
    if feature.num_oov_buckets < 1:
        raise ConfigError(f"{where}.num_oov_buckets: needs at least 1, so unseen values have an id")


def _check_vocabulary(feature: Feature, where: str, declared: tuple[Feature, ...]) -> None:
    _check_oov(feature, where)
    if feature.top_k < 1:
        raise ConfigError(f"{where}.top_k: must be >= 1")


def _check_vocabulary_list(feature: Feature, where: str, declared: tuple[Feature, ...]) -> None:
    _check_oov(feature, where)
    if not feature.vocabulary:
        raise ConfigError(f"{where}.vocabulary: a vocabulary_list feature needs its list of values")
    if len(set(feature.vocabulary)) != len(feature.vocabulary):
        raise ConfigError(f"{where}.vocabulary: values must be unique")


def _check_hash(feature: Feature, where: str, declared: tuple[Feature, ...]) -> None:
    if feature.hash_buckets < 2:
        raise ConfigError(f"{where}.hash_buckets: a {feature.kind} feature needs hash_buckets >= 2")


def _check_identity(feature: Feature, where: str, declared: tuple[Feature, ...]) -> None:
    if feature.num_buckets < 1:
        raise ConfigError(f"{where}.num_buckets: an identity feature needs num_buckets >= 1")


def _check_crossed(feature: Feature, where: str, declared: tuple[Feature, ...]) -> None:
    _check_hash(feature, where, declared)
    if len(feature.inputs) < 2:
        raise ConfigError(f"{where}.inputs: a crossed feature needs two or more inputs")
    for name in feature.inputs:
        source = next((f for f in declared if f.name == name), None)
        if source is None:
            raise ConfigError(f"{where}.inputs: unknown feature {name!r}")
        if source.kind not in CROSSABLE_KINDS:
            raise ConfigError(f"{where}.inputs: {name!r} is {source.kind}; cross categorical features")


def _describe_bucketized(feature: Feature) -> str:
    if feature.quantiles:
        return f"{feature.quantiles} quantile buckets"
    return f"buckets at {list(feature.boundaries)}"


_KINDS = (
    Kind(
        "numeric",
        keys=("normalization", "default"),
        reads="number",
        ids=None,
        check=_check_nothing,
        describe=lambda feature: f"numeric, {feature.normalization}",
    ),
    Kind(
        "bucketized",
        keys=("boundaries", "quantiles", "embedding_dim", "default"),
        reads="number",
        ids=lambda feature, vocabulary_size: feature.quantiles or len(feature.boundaries) + 1,
        check=_check_bucketized,
        describe=_describe_bucketized,
    ),
    Kind(
        "vocabulary",
        keys=("top_k", "num_oov_buckets", "embedding_dim", "default"),
        reads="string",
        ids=lambda feature, vocabulary_size: int(vocabulary_size(feature.name)) + feature.num_oov_buckets,
        check=_check_vocabulary,
        describe=lambda feature: f"vocabulary (top {feature.top_k}) + {feature.num_oov_buckets} OOV",
    ),
    Kind(
        "vocabulary_list",
        keys=("vocabulary", "num_oov_buckets", "embedding_dim", "default"),
        reads="string",
        ids=lambda feature, vocabulary_size: len(feature.vocabulary) + feature.num_oov_buckets,
        check=_check_vocabulary_list,
        describe=lambda feature: f"list of {len(feature.vocabulary)} + {feature.num_oov_buckets} OOV",
    ),
    Kind(
        "hash",
        keys=("hash_buckets", "embedding_dim", "default"),
        reads="string",
        ids=lambda feature, vocabulary_size: feature.hash_buckets,
        check=_check_hash,
        describe=lambda feature: f"hash into {feature.hash_buckets}",
    ),
    Kind(
        "identity",
        keys=("num_buckets", "embedding_dim", "default"),
        reads="number",
        # One extra id for the values outside 0..num_buckets-1.
        ids=lambda feature, vocabulary_size: feature.num_buckets + 1,
        check=_check_identity,
        describe=lambda feature: f"identity 0..{feature.num_buckets - 1} (+1 out of range)",
    ),
    Kind(
        "crossed",
        keys=("inputs", "hash_buckets", "embedding_dim"),
        reads="features",
        ids=lambda feature, vocabulary_size: feature.hash_buckets,
        check=_check_crossed,
        describe=lambda feature: f"cross of {' x '.join(feature.inputs)} hashed into {feature.hash_buckets}",
    ),
)
KINDS = {kind.name: kind for kind in _KINDS}

# The config's `kind:` choices, in the table's order (the parser's error lists them so).
FeatureKind = Literal[tuple(KINDS)]
CATEGORICAL_KINDS = tuple(name for name, kind in KINDS.items() if kind.categorical)
# A derived value is a number, so it feeds the kinds that read numbers.
DERIVED_FEATURE_KINDS = tuple(name for name, kind in KINDS.items() if kind.reads == "number")
# A cross reads the ids of categorical features that read a column (not of another cross).
CROSSABLE_KINDS = tuple(name for name, kind in KINDS.items() if kind.categorical and kind.reads != "features")
# Kinds that feed the model a float as it is: the ones a cyclical (sin, cos) encoding can feed.
FLOAT_KINDS = tuple(name for name, kind in KINDS.items() if not kind.categorical)
