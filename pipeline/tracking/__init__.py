"""The tracking of a run: what ML Metadata recorded (`mlmd`), the run's outputs read once (`result`), what is
logged to MLflow (`mlflow_log`) and how it reads there (`mlflow_text`: names, tags, the gate table), the MLflow UI
(`ui`; `make ui-check` looks at it from tools/ui_check.py), the run report (`report/`) and the model registry
(`registry`)."""
