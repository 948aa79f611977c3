"""Step 2, validation: the curated schema against the statistics, and the gate that stops a bad run.

The node is `gate.AnomaliesGate` (between ExampleValidator and Transform); `data_report` bootstraps a schema
and writes the statistics report for a folder (`xfer validate`, `xfer schema`).
"""
