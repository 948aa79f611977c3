"""A pushed model in use: its serving contract, the MLflow pyfunc the registry serves, and scoring.

`contract` and `pyfunc` ship with every registered model (MLflow's `code_paths`) and so import only what
serving needs: TensorFlow, numpy, pandas and MLflow, never TFX, Beam or Transform's Python package. `predict`
(one image) and `batch` (a folder, in Beam) are the clients `xfer predict` runs; they stay in the checkout.
"""
