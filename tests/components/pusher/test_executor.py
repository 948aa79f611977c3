"""The atomic Pusher: a version folder appears complete or not at all."""

import json
import os

import pytest
from tfx.dsl.io import fileio
from tfx.types import standard_artifacts
from tfx.utils import io_utils

from components.pusher import executor as pusher
from components.serving import predict


def _fake_saved_model(root) -> str:
    model_dir = root / "Format-Serving"
    (model_dir / "variables").mkdir(parents=True)
    (model_dir / "variables" / "variables.index").write_bytes(b"index")
    (model_dir / "variables" / "variables.data-00000-of-00001").write_bytes(b"weights" * 1000)
    (model_dir / "assets.extra").mkdir()
    (model_dir / "assets.extra" / "raw_features.json").write_text('{"image": "string"}')
    (model_dir / pusher.SAVED_MODEL_FILE).write_bytes(b"graph")
    return str(model_dir)


def _files(root) -> dict[str, bytes]:
    return {
        os.path.relpath(os.path.join(folder, name), root): open(os.path.join(folder, name), "rb").read()
        for folder, _, names in os.walk(root)
        for name in names
    }


def test_push_copies_the_whole_model_into_the_version_folder(tmp_path):
    model_dir = _fake_saved_model(tmp_path / "model")
    serving = tmp_path / "serving"
    destination = pusher.push_atomically(model_dir, str(serving), "1700000000")
    assert destination == str(serving / "1700000000")
    assert _files(destination) == _files(model_dir)
    assert os.listdir(serving) == ["1700000000"]  # No staging folder left behind.


def test_a_failure_mid_copy_leaves_no_visible_version(tmp_path, monkeypatch):
    model_dir = _fake_saved_model(tmp_path / "model")
    serving = tmp_path / "serving"
    (serving / "1600000000").mkdir(parents=True)  # An earlier version, untouched by the failed push.
    seen_while_copying = {}
    real_copy_file = io_utils.copy_file

    def failing_copy_file(src, dst, *args, **kwargs):
        if src.endswith(pusher.SAVED_MODEL_FILE):
            # Everything but the graph is already copied: what a server polling the folder would find now.
            seen_while_copying["entries"] = sorted(os.listdir(serving))
            seen_while_copying["newest"] = predict.resolve_model_dir(str(serving))
            raise OSError("disk full")
        return real_copy_file(src, dst, *args, **kwargs)

    monkeypatch.setattr(io_utils, "copy_file", failing_copy_file)
    with pytest.raises(OSError, match="disk full"):
        pusher.push_atomically(model_dir, str(serving), "1700000000")
    staging = [name for name in seen_while_copying["entries"] if name != "1600000000"]
    assert len(staging) == 1 and staging[0].startswith(".") and not staging[0].isdigit()
    assert seen_while_copying["newest"] == str(serving / "1600000000")
    assert os.listdir(serving) == ["1600000000"]


def test_an_existing_version_is_never_overwritten(tmp_path):
    model_dir = _fake_saved_model(tmp_path / "model")
    serving = tmp_path / "serving"
    (serving / "1700000000").mkdir(parents=True)
    (serving / "1700000000" / "marker").write_text("old")
    with pytest.raises(FileExistsError):
        pusher.push_atomically(model_dir, str(serving), "1700000000")
    assert (serving / "1700000000" / "marker").read_text() == "old"


def test_object_stores_get_the_graph_last_copy_in_place(tmp_path, monkeypatch):
    assert not pusher.renames_atomically("s3://bucket/serving")
    assert not pusher.renames_atomically("gs://bucket/serving")
    assert pusher.renames_atomically("/srv/serving") and pusher.renames_atomically("file:///srv/serving")
    model_dir = _fake_saved_model(tmp_path / "model")
    serving = tmp_path / "serving"
    monkeypatch.setattr(pusher, "renames_atomically", lambda path: False)
    copied = []
    real_copy = fileio.copy

    def recording_copy(src, dst, *args, **kwargs):
        copied.append(os.path.basename(src))
        return real_copy(src, dst, *args, **kwargs)

    monkeypatch.setattr(fileio, "copy", recording_copy)
    destination = pusher.push_atomically(model_dir, str(serving), "1700000000")
    assert copied[-1] == pusher.SAVED_MODEL_FILE and len(copied) == 4
    assert _files(destination) == _files(model_dir) and os.listdir(serving) == ["1700000000"]


def _run_executor(tmp_path, blessed: bool):
    _fake_saved_model(tmp_path / "trainer_model")
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "trainer_model")
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    blessing.set_int_custom_property("blessed", int(blessed))
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    destination = {"filesystem": {"baseDirectory": str(tmp_path / "serving")}}
    pusher.Executor().Do(
        {"model": [model], "model_blessing": [blessing]},
        {"pushed_model": [pushed]},
        {"push_destination": json.dumps(destination)},
    )
    return pushed


def test_executor_pushes_a_blessed_model_and_records_where(tmp_path):
    pushed = _run_executor(tmp_path, blessed=True)
    assert pushed.get_int_custom_property("pushed") == 1
    destination = pushed.get_string_custom_property("pushed_destination")
    version = pushed.get_string_custom_property("pushed_version")
    assert destination == str(tmp_path / "serving" / version) and version.isdigit()
    assert _files(destination) == _files(tmp_path / "trainer_model" / "Format-Serving")
    assert os.listdir(tmp_path / "serving") == [version]


def test_executor_does_not_push_an_unblessed_model(tmp_path):
    pushed = _run_executor(tmp_path, blessed=False)
    assert pushed.get_int_custom_property("pushed") == 0
    assert not (tmp_path / "serving").exists()


def test_atomic_pusher_is_a_pusher_with_the_atomic_executor():
    from tfx import v1 as tfx

    component = pusher.AtomicPusher(
        model=tfx.dsl.Channel(type=standard_artifacts.Model),
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory="/tmp/serving")
        ),
    ).with_id("Pusher")
    assert isinstance(component, tfx.components.Pusher)
    assert component.id == "Pusher"
    assert component.executor_spec.executor_class is pusher.Executor
