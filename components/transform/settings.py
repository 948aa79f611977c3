"""The `features:` config section: one metadata column and its treatment, as tensorflow-transform feature columns."""

from __future__ import annotations

import dataclasses
from typing import Literal

FeatureKind = Literal["numeric", "bucketized", "vocabulary", "vocabulary_list", "hash", "identity", "crossed"]
CATEGORICAL_KINDS = ("bucketized", "vocabulary", "vocabulary_list", "hash", "identity", "crossed")
# What `derive:` may ask of a raw column (components/transform/derive.py computes them), and the kinds a
# derived number can feed.
DeriveKind = Literal["", "hour", "day_of_week", "month", "day_of_year", "number"]
DATETIME_PARTS = ("hour", "day_of_week", "month", "day_of_year")
DERIVE_KINDS = (*DATETIME_PARTS, "number")
DERIVED_FEATURE_KINDS = ("numeric", "bucketized", "identity")
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
