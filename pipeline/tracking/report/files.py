"""Where the report lands in an MLflow run, for the parts that write it and the registry that reads the model card.

Plain names, no imports: the registry reads the card from the Kubeflow Pusher's pod, which loads no TFX or Keras.
"""

# The report's folder among the run's artifacts.
ARTIFACT_DIR = "report"
# The model card, which the registry copies into each version's description.
CARD_FILE = "model_card.md"
# The parts that failed, one "part: error" line each; absent when every part was written.
FAILURES_FILE = "failures.txt"
