"""Names that every floor of xfer shares: the DAG's node ids, its splits, and the environment a pod reads.

This module imports nothing, so anything may import it: the components, the pipeline that wires them, the
runners and the tracking that read ML Metadata back by node id, and the tests.
"""

# The DAG's node ids, in the order the data flows. ML Metadata records executions under these, the KFP package
# names its tasks after them, and the run record and the MLflow logging look nodes up by them.
INGEST = "ImageExampleGen"
STATISTICS = "StatisticsGen"
SCHEMA = "ImportSchemaGen"
VALIDATOR = "ExampleValidator"
GATE = "AnomaliesGate"
TRANSFORM = "Transform"
TRAINER = "Trainer"
CHAMPION = "Champion"
EVALUATOR = "Evaluator"
PUSHER = "Pusher"
# Kubeflow only: the dataset's fingerprint, which keys the cache of a compiled pipeline's scheduled runs.
FINGERPRINT = "DataFingerprint"

# The splits, as the data flows: train fits the model (and Transform learns its vocabularies there), val is
# what the Trainer watches (its curves, early stopping), eval is held out for TFMA and the gates only.
TRAIN_SPLIT = "train"
VAL_SPLIT = "val"
EVAL_SPLIT = "eval"
SPLITS = (TRAIN_SPLIT, VAL_SPLIT, EVAL_SPLIT)

# The raw feature that holds the encoded image (JPEG or PNG bytes), in the examples and in every request.
IMAGE = "image"

# A box's corners, as the annotations, the raw features, the model's output and the served answer name them:
# fractions of the image, (xmin, ymin) the top left.
BOX_CORNERS = ("xmin", "ymin", "xmax", "ymax")

# Environment variables a pod (or `xfer run`'s own process) reads.
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"  # MLflow's own name for it.
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"  # MLflow's own name for it.
MLFLOW_RUN_ID_ENV = "XFER_MLFLOW_RUN_ID"  # The run the Trainer logs its epochs to, live.
KFP_RUN_ENV = "XFER_KFP_RUN"  # The Argo workflow name: one MLflow run per KFP run.
MLFLOW_PARAMS_ENV = "XFER_MLFLOW_PARAMS"  # The run's config, as JSON, for the pods that log it.
# Which attempt a pod is: KFP 2.17 sets it from Argo's {{retries}} in a retried task's pod (0 first).
RETRY_INDEX_ENV = "KFP_RETRY_INDEX"
RETRY_LIMIT_ENV = "XFER_KFP_RETRIES"  # The retries the compiled package asks for: the last attempt's index.
