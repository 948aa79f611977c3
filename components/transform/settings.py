"""The `features:` config section: one metadata column and its treatment, as tensorflow-transform feature columns."""

from __future__ import annotations

import dataclasses
from typing import Literal

from components.settings import ConfigError
from components.transform.kinds import DERIVED_FEATURE_KINDS, FLOAT_KINDS, KINDS, FeatureKind

# What `derive:` may ask of a raw column (components/transform/derive.py computes them); the kinds a derived
# number can feed are in components/transform/kinds.py.
DeriveKind = Literal["", "hour", "day_of_week", "month", "day_of_year", "number"]
DATETIME_PARTS = ("hour", "day_of_week", "month", "day_of_year")
DERIVE_KINDS = (*DATETIME_PARTS, "number")
Cyclical = Literal["", "sin", "cos"]


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
    What each kind reads, checks and yields is its entry in components/transform/kinds.py.

    `source` names the raw column the feature reads (its own name when empty), so one raw column can feed
    several features. `derive` turns that column into a number first (components/transform/derive.py): a
    part of a date-time string (hour, day_of_week, month, day_of_year) or a number read out of a string;
    `cyclical: sin | cos` encodes a date-time part on the circle (23 h next to 0 h). Derived values feed the
    numeric kinds: numeric, bucketized, identity.
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
    source: str = ""
    derive: DeriveKind = ""
    cyclical: Cyclical = ""

    @property
    def raw_column(self) -> str:
        """The raw column this feature reads (crossed features read other features, not a column)."""
        return self.source or self.name


def check_feature(feature: FeatureConfig, where: str, declared: tuple[FeatureConfig, ...]) -> None:
    """The rules of one declared feature that its types alone cannot express; ConfigError naming the key."""
    kind = KINDS[feature.kind]
    kind.check(feature, where, declared)
    if feature.inputs and kind.reads != "features":
        raise ConfigError(f"{where}.inputs: only crossed features take inputs")
    _check_derived(feature, where)


def _check_derived(feature: FeatureConfig, where: str) -> None:
    if KINDS[feature.kind].reads == "features" and (feature.source or feature.derive):
        raise ConfigError(f"{where}: a crossed feature reads its inputs, not a source column")
    if feature.derive and feature.kind not in DERIVED_FEATURE_KINDS:
        raise ConfigError(
            f"{where}.derive: a derived value is a number; use it with kind {', '.join(DERIVED_FEATURE_KINDS)}"
        )
    if feature.cyclical:
        if feature.derive not in DATETIME_PARTS:
            raise ConfigError(f"{where}.cyclical: needs derive: one of {', '.join(DATETIME_PARTS)}")
        if feature.kind not in FLOAT_KINDS:
            raise ConfigError(
                f"{where}.cyclical: a cyclical encoding is a numeric feature (kind: {', '.join(FLOAT_KINDS)})"
            )
    if feature.derive and feature.default is not None and not isinstance(feature.default, (int, float)):
        raise ConfigError(f"{where}.default: a derived feature's default is a number, got {feature.default!r}")


def derived_columns(features: tuple[FeatureConfig, ...]) -> dict[str, str]:
    """Raw column -> what ingest must be able to read in it ("datetime" or "number") for the derived
    features; ConfigError when two features ask one column for both."""
    found: dict[str, str] = {}
    for feature in features:
        if feature.derive:
            kind = "datetime" if feature.derive in DATETIME_PARTS else "number"
            if found.setdefault(feature.raw_column, kind) != kind:
                raise ConfigError(
                    f"features.{feature.name}: column {feature.raw_column!r} is read as a date-time by one "
                    "feature and as a number by another"
                )
    return found
