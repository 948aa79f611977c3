"""A workspace that can be moved: locations stored in its MLflow and ML Metadata stores follow it.

MLflow keeps every artifact location as an absolute URI (the experiment's `file:///.../mlartifacts`, each
run's and each logged model's under it), and ML Metadata every artifact's path; there is no relative form.
So a renamed or copied checkout would open with artifact views pointing at the old folder, and a registered
model whose files cannot be found. `xfer run` and `xfer ui` call `relocate()` first: when the experiment's
artifact location is not under the workspace any more, the old root is replaced by the new one in the
columns that hold locations. Values that record what happened (params, most tags, descriptions) are left
as they were.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from components import mlflow_tags
from pipeline.workspace import ARTIFACTS_FOLDER, Workspace

# (table, column) of the MLflow store holding artifact locations.
MLFLOW_LOCATIONS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "storage_location"),
    ("model_versions", "source"),
)
# Run tags whose values are locations the pipeline looks up again (the Trainer's model, which is relative to
# the workspace since it is written so; an older store may hold absolute ones).
MLFLOW_LOCATION_TAGS = (mlflow_tags.TRAINER_MODEL,)
# Registered versions' tags that are locations (pipeline/tracking/registry.py: where the version's SavedModel
# was pushed).
MLFLOW_VERSION_LOCATION_TAGS = (mlflow_tags.PUSHED_PATH,)
# ML Metadata: each artifact's URI, and string properties such as the Pusher's destination.
MLMD_LOCATIONS = (("Artifact", "uri"), ("ArtifactProperty", "string_value"))


def recorded_root(mlflow_db: Path) -> Path | None:
    """The workspace the store was written in: the parent of its experiments' `mlartifacts` folder."""
    with sqlite3.connect(mlflow_db) as connection:
        rows = connection.execute("SELECT artifact_location FROM experiments").fetchall()
    for (location,) in rows:
        path = (location or "").removeprefix("file://")
        if path.rstrip("/").endswith("/" + ARTIFACTS_FOLDER):
            return Path(path.rstrip("/")).parent
    return None


def _replace_prefix(
    connection: sqlite3.Connection, table: str, column: str, old: str, new: str, where: str = ""
) -> int:
    # Prefixes with the trailing slash, so /w/space does not match /w/space-2; the URI and the plain path form.
    changed = 0
    for before, after in ((f"file://{old}/", f"file://{new}/"), (f"{old}/", f"{new}/")):
        cursor = connection.execute(
            f"UPDATE {table} SET {column} = ? || substr({column}, ?) WHERE substr({column}, 1, ?) = ?{where}",
            (after, len(before) + 1, len(before), before),
        )
        changed += cursor.rowcount
    return changed


def relocate(workspace: Path) -> Path | None:
    """Points the workspace's stores at where it is now; returns the old root when it had moved, else None."""
    workspace = workspace.resolve()
    mlflow_db = Workspace(workspace).mlflow_db
    if not mlflow_db.exists():
        return None
    old_root = recorded_root(mlflow_db)
    if old_root is None or old_root == workspace:
        return None
    old, new = str(old_root), str(workspace)
    changed = 0
    with sqlite3.connect(mlflow_db) as connection:  # One transaction: all locations move, or none.
        for table, column in MLFLOW_LOCATIONS:
            changed += _replace_prefix(connection, table, column, old, new)
        keys = ", ".join(f"'{key}'" for key in MLFLOW_LOCATION_TAGS)
        changed += _replace_prefix(connection, "tags", "value", old, new, where=f" AND key IN ({keys})")
        keys = ", ".join(f"'{key}'" for key in MLFLOW_VERSION_LOCATION_TAGS)
        changed += _replace_prefix(connection, "model_version_tags", "value", old, new, where=f" AND key IN ({keys})")
    metadata_db = Workspace(workspace).metadata_db
    if metadata_db.exists():
        with sqlite3.connect(metadata_db) as connection:
            for table, column in MLMD_LOCATIONS:
                changed += _replace_prefix(connection, table, column, old, new)
    logging.info("The workspace moved from %s to %s: %d stored locations now point here", old, new, changed)
    return old_root
