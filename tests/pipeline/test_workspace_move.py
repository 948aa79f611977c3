"""A moved workspace: its MLflow and ML Metadata stores point at the new folder (pipeline/workspace_move.py)."""

import shutil

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline import workspace_move


def _workspace(root):
    """A workspace as `xfer run` leaves it: an experiment in <workspace>/mlartifacts, a run with an artifact, a
    logged model with a registered version, and an ML Metadata artifact under pipeline_root/."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    workspace = root / "workspace"
    workspace.mkdir(parents=True)
    client = MlflowClient(tracking_uri=f"sqlite:///{workspace / 'mlflow.db'}")
    experiment = client.create_experiment("xfer-move", artifact_location=(workspace / "mlartifacts").as_uri())
    run = client.create_run(experiment)
    client.log_text(run.info.run_id, "hello\n", "report/hello.txt")
    client.set_tag(run.info.run_id, "trainer_model", str(workspace / "pipeline_root" / "Trainer" / "model" / "1"))
    client.set_tag(run.info.run_id, "note", str(workspace / "kept-as-written"))
    model = client.create_logged_model(experiment_id=experiment, name="model", source_run_id=run.info.run_id)
    client.create_registered_model("xfer-move")
    client.create_model_version(
        "xfer-move",
        model.artifact_location,
        run.info.run_id,
        model_id=model.model_id,
        tags={"pushed_path": str(workspace / "serving" / "17")},
    )
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(workspace / "metadata.sqlite")
    config.sqlite.connection_mode = 3
    store = metadata_store.MetadataStore(config)
    type_id = store.put_artifact_type(metadata_store_pb2.ArtifactType(name="Examples"))
    [artifact_id] = store.put_artifacts(
        [metadata_store_pb2.Artifact(type_id=type_id, uri=str(workspace / "pipeline_root" / "examples" / "1"))]
    )
    return workspace, run.info.run_id, artifact_id, model.model_id


def _mlmd_uri(workspace, artifact_id):
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(workspace / "metadata.sqlite")
    [artifact] = metadata_store.MetadataStore(config).get_artifacts_by_id([artifact_id])
    return artifact.uri


def test_a_moved_workspace_opens_with_its_artifacts_where_they_are_now(tmp_path):
    workspace, run_id, artifact_id, model_id = _workspace(tmp_path / "old")
    moved = tmp_path / "new-checkout" / "workspace"
    moved.parent.mkdir()
    shutil.move(str(workspace), str(moved))
    client = MlflowClient(tracking_uri=f"sqlite:///{moved / 'mlflow.db'}")
    # Before: MLflow looks for the artifacts in the old folder.
    with pytest.raises(MlflowException, match="Failed to download"):
        client.download_artifacts(run_id, "report/hello.txt", str(tmp_path))

    assert workspace_move.relocate(moved) == workspace

    run = client.get_run(run_id)
    assert run.info.artifact_uri.startswith(moved.as_uri() + "/mlartifacts/")
    path = client.download_artifacts(run_id, "report/hello.txt", str(tmp_path))
    assert open(path).read() == "hello\n"
    version = client.get_model_version("xfer-move", "1")
    assert version.source.startswith(moved.as_uri() + "/mlartifacts/")
    assert version.tags["pushed_path"] == str(moved / "serving" / "17")
    assert client.get_logged_model(model_id).artifact_location.startswith(moved.as_uri())
    assert client.get_experiment(run.info.experiment_id).artifact_location == (moved / "mlartifacts").as_uri()
    # The location the next run looks its Trainer up by moved; a tag that only records a path did not.
    assert run.data.tags["trainer_model"] == str(moved / "pipeline_root" / "Trainer" / "model" / "1")
    assert run.data.tags["note"] == str(workspace / "kept-as-written")
    assert _mlmd_uri(moved, artifact_id) == str(moved / "pipeline_root" / "examples" / "1")
    assert workspace_move.relocate(moved) is None  # Where it was written now: nothing to do.


def test_a_workspace_that_did_not_move_is_left_alone(tmp_path):
    workspace, run_id, _, _ = _workspace(tmp_path)
    before = (workspace / "mlflow.db").read_bytes()
    assert workspace_move.relocate(workspace) is None
    assert (workspace / "mlflow.db").read_bytes() == before
    assert workspace_move.relocate(tmp_path / "no-store-here") is None


def test_a_sibling_folder_with_the_same_prefix_is_not_rewritten(tmp_path):
    workspace, run_id, _, _ = _workspace(tmp_path / "w")
    client = MlflowClient(tracking_uri=f"sqlite:///{workspace / 'mlflow.db'}")
    sibling = str(workspace) + "-2/pipeline_root/Trainer/model/9"
    client.set_tag(run_id, "trainer_model", sibling)
    moved = tmp_path / "elsewhere"
    shutil.move(str(workspace), str(moved))
    workspace_move.relocate(moved)
    assert client.get_run(run_id).data.tags["trainer_model"] == sibling
