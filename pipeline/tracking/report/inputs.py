"""What the report's parts read, each read once: the run, the eval split scored by the served model, the anomalies.

A part that needs something another part failed to read fails too, with the first error, which is not retried.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import tensorflow as tf
import tf_keras
from tfx.utils import path_utils

from components import names
from components.evaluator import scores as eval_scores
from components.validation import gate as validation_gate
from pipeline import config as config_lib
from pipeline.tracking import result as result_lib

Value = TypeVar("Value")


class _Once(Generic[Value]):
    """A value made on first use; an error it raised is raised again on each later use, not retried."""

    def __init__(self, make: Callable[[], Value]):
        self._make = make
        self._value: Value | None = None
        self._error: BaseException | None = None
        self._made = False

    def get(self) -> Value:
        if not self._made:
            self._made = True
            try:
                self._value = self._make()
            except Exception as error:
                self._error = error
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def get_or_none(self) -> Value | None:
        try:
            return self.get()
        except Exception:
            return None


@dataclasses.dataclass(frozen=True)
class ScoredEval:
    """The eval split's raw examples, the served SavedModel, and its answers on them."""

    serialized: list[bytes]
    serving_model: Any
    scores: eval_scores.EvalScores


class RunForReport:
    """One run, as the report's parts read it. `load_network(model_dir)` gives the trained Keras network."""

    def __init__(
        self,
        config: config_lib.Config,
        result: result_lib.RunResult,
        load_network: Callable[[str], tf_keras.Model],
    ):
        self.config = config
        self.result = result
        self.model_dir = path_utils.serving_model_path(result.trainer_model_uri)
        self._eval = _Once(self._score_eval)
        self._network = _Once(lambda: load_network(self.model_dir))
        self._anomalies = _Once(lambda: run_anomalies(result))

    def scored_eval(self) -> ScoredEval:
        return self._eval.get()

    def scored_eval_if_any(self) -> ScoredEval | None:
        """The scored eval split, or None when it could not be scored (that part's failure says why)."""
        return self._eval.get_or_none()

    def network(self) -> tf_keras.Model:
        return self._network.get()

    def anomalies(self) -> list[str]:
        return self._anomalies.get()

    def anomalies_if_any(self) -> list[str] | None:
        return self._anomalies.get_or_none()

    def _score_eval(self) -> ScoredEval:
        serialized = read_examples(self.result.examples_uri, names.EVAL_SPLIT)
        serving_model = tf.saved_model.load(self.model_dir)
        scores = eval_scores.score_examples(serving_model.signatures["serving_default"], serialized)
        return ScoredEval(serialized, serving_model, scores)


def read_examples(examples_uri: str, split: str, limit: int | None = None) -> list[bytes]:
    """The serialized raw `tf.Example`s of one split of an ImageExampleGen output (GZIP TFRecords); the first
    `limit` of them when given, without reading the rest."""
    files = sorted(tf.io.gfile.glob(posixpath.join(examples_uri, f"Split-{split}", "*")))
    if not files:
        raise FileNotFoundError(f"no {split} examples under {examples_uri}")
    records = tf.data.TFRecordDataset(files, compression_type="GZIP")
    if limit is not None:
        records = records.take(limit)
    return [record.numpy() for record in records]


def run_anomalies(result: result_lib.RunResult) -> list[str]:
    """ExampleValidator's anomalies (its output), one plain line each (none when the data is clean)."""
    return validation_gate.anomaly_lines(result.anomalies.uri, result.anomalies.split_names())
