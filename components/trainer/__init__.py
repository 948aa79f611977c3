"""Step 4, trainer: an Xception (keras.applications) with a class head and a box head, frozen then fine-tuned.

`module.run_fn` is the Trainer module file, a thin adapter over `training` (the two phases), `model` (the
network), `augment`, `metrics` (box IoU), `live_tracking` (per-epoch MLflow metrics) and `export` (the
serving signature on raw inputs, which `predict` calls); `settings` holds the model and training sections.
"""
