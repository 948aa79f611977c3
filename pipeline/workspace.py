"""The workspace's layout: where a local run keeps each of its stores and outputs, under one folder.

`xfer run` and `xfer validate` write there, `xfer ui` and `xfer predict` read the MLflow store there, and
`xfer workspace move` rewrites the locations stored in its two databases; each asks this class for the path.
Plain paths (no TFX, no MLflow), so the CLI can read them before anything heavy loads.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

# The workspace when neither the config (`workspace:`) nor the command line (`--workspace`) names one.
DEFAULT_ROOT = "workspace"
# MLflow's artifact folder: mlflow_log creates the experiment there, and workspace_move recognises a moved
# workspace by it.
ARTIFACTS_FOLDER = "mlartifacts"


@dataclasses.dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def pipeline_root(self) -> Path:
        """Every TFX node's outputs, as `<Node>/<output>/<execution id>/`."""
        return self.root / "pipeline_root"

    @property
    def metadata_db(self) -> Path:
        """ML Metadata: what ran, from what, and what was cached."""
        return self.root / "metadata.sqlite"

    @property
    def mlflow_db(self) -> Path:
        """The MLflow store (its sqlite backend): runs and the model registry."""
        return self.root / "mlflow.db"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.mlflow_db}"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / ARTIFACTS_FOLDER

    @property
    def serving_dir(self) -> Path:
        """The pushed models, one `<version>/` each."""
        return self.root / "serving"

    @property
    def reports(self) -> Path:
        """What `xfer validate` writes: the statistics page."""
        return self.root / "reports"
