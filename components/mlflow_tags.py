"""The names of the MLflow tags xfer writes and reads, on runs and on registered model versions.

A tag written in one place is read in another (the next run, `xfer kubeflow run`, `xfer workspace move`, the
MLflow UI's columns and searches), so each name is spelled once, here. Under components/ because the Trainer
tags its run too (components/trainer/live_tracking.py); like `names`, it imports nothing.
"""

# What the run decided. The runs table shows them; `outcome` is what `xfer kubeflow run` reports and
# exits by, and registry.version_tags copies the four onto the registered version.
OUTCOME = "outcome"
BLESSED = "blessed"
GATE_FAILURES = "gate_failures"
CHAMPION_VERSION = "champion_version"
CHAMPION_COMPARISON = "champion_comparison"

# What the run was and produced, for a person reading the run (the UI).
PIPELINE_RUN = "pipeline_run"
NODES = "nodes"
UNFREEZE_EPOCH = "unfreeze_epoch"
REGISTERED_MODEL = "registered_model"
PUSHED_MODEL = "pushed_model"  # The Kubeflow Pusher's output artifact.
# The ingest summary's keys -> their tags.
INGEST = {"format": "ingest_format", "has_boxes": "ingest_has_boxes"}
TFX_VERSION = "tfx_version"
TENSORFLOW_VERSION = "tensorflow_version"
TFT_VERSION = "tft_version"
TFMA_VERSION = "tfma_version"

# Why a run failed: `xfer kubeflow run` prints it. A Kubeflow pod that will be retried tags
# `failed_attempt.<node>` instead.
FAILURE_REASON = "failure_reason"
FAILED_ATTEMPT = "failed_attempt"

# Locations. The run's Trainer model (relative to the workspace) is how a later run served from the cache finds
# the run that trained it (mlflow_log.trained_in_run), which it then names in `trained_in_run` (the UI links it;
# tools check it). `pushed_path` is on the run and on its registered version, where `xfer workspace move`
# rewrites it along with `trainer_model` (pipeline/workspace_move.py).
TRAINER_MODEL = "trainer_model"
TRAINED_IN_RUN = "trained_in_run"
PUSHED_PATH = "pushed_path"
# The digest of the version's training data (its run's dataset input), on a registered version.
DATA_DIGEST = "data_digest"

# Set when the caller named the run (`xfer run --run-name`): mlflow_log then never renames it.
CHOSEN_NAME = "xfer.run_name_chosen"

# Kubeflow: every pod of a KFP run finds the one MLflow run by `kfp_run` (its Argo workflow's name), and
# `xfer kubeflow run` finds it among the runs whose `runner` is kubeflow.
KFP_RUN = "kfp_run"
RUNNER = "runner"

# MLflow's own tags: the run page shows them as the description and the source (mlflow.utils.mlflow_tags).
DESCRIPTION = "mlflow.note.content"
SOURCE_TYPE = "mlflow.source.type"
SOURCE_NAME = "mlflow.source.name"
SOURCE_GIT_COMMIT = "mlflow.source.git.commit"
