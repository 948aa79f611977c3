"""The tracking of a run: what ML Metadata recorded (`run_record`), what is logged to MLflow (`run_log`), how
it reads in the UI (`run_story`, `ui`; `make ui-check` looks at it from tools/ui_check.py), the run report
(`report`) and the model registry (`registry`)."""
