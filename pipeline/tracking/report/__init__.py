"""Every run's report, logged to its MLflow run under `report/`: one module per part (`curves`, `eval_plots`,
`network`, `data`, `card`), each a function `part(run, out) -> files`. `build.build_run_report` runs them and logs
what they wrote; `plots` draws the figures; `inputs` reads what the parts share (the eval split scored once, the
network, the anomalies).
"""
