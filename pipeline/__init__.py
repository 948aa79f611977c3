"""The config, `create_pipeline()`, the runners (local Beam, Kubeflow) and the tracking of a run.

Imports `components` first, so TF_USE_LEGACY_KERAS is set before any module of the pipeline imports TensorFlow.
"""

import components  # noqa: F401
