"""Step 2, validation: the curated schema against the statistics, and the gate that stops a bad run.

The node is `gate.AnomaliesGate` (between ExampleValidator and Transform). `schema_inference` bootstraps a
schema for a folder (`xfer schema infer`); `statistics_page` renders TFDV's statistics as one static page
(`xfer validate`, every run's report); `statistics` reads the statistics protos.
"""
