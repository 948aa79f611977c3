"""xfer's DAG, one package a step: ingest, validation, transform, trainer, evaluator, champion, pusher.

Each package holds its TFX node (or module file) and the plain functions that node adapts; `names` holds what
every floor shares, and `settings` parses the config sections the steps read.

Importing any of them sets TF_USE_LEGACY_KERAS first, this one place: TFT, TFMA and the Transform layer are
built on tf_keras (Keras 2), and the variable counts only when it is set before TensorFlow is imported. The
entry points (the CLI, the pod entrypoint, the benchmarks) import `components` before TensorFlow for that.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
