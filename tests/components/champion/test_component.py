"""Fetching the registry's champion for the Evaluator (components/champion/), against a real sqlite registry."""

import os
import shutil

import pytest

from components.champion import component as champion
from pipeline.tracking import registry
from tests.helpers import eval_fixtures

NAME = "xfer-test"


def _register(tracking, model_dir: str) -> str:
    """Registers `<model_dir>/Format-Serving` as xfer's pushes do; returns the new version."""
    uri, client, experiment = tracking
    run_id = client.create_run(experiment).info.run_id
    serving = os.path.join(model_dir, "Format-Serving")
    example = registry.input_example(serving, [eval_fixtures.serving_example()])
    return str(registry.register_champion(uri, run_id, serving, NAME, example).version)


def test_fingerprint_is_the_same_for_a_copy_and_changes_with_any_byte(tmp_path):
    model = eval_fixtures.tiny_model(str(tmp_path / "model"), skill=0.5, box_shift=0.0)
    copy = shutil.copytree(model, tmp_path / "copy")
    assert champion.fingerprint(model) == champion.fingerprint(str(copy))
    variables = next((copy / "Format-Serving" / "variables").glob("*.data-*"))
    data = bytearray(variables.read_bytes())
    data[-1] ^= 1
    variables.write_bytes(bytes(data))
    assert champion.fingerprint(model) != champion.fingerprint(str(copy))


def test_no_registered_model_means_no_champion(tmp_path, tracking):
    uri = tracking[0]
    assert champion.resolve_version(uri, NAME) == champion.NO_CHAMPION
    found = champion.fetch_champion(uri, NAME, "", "detection", str(tmp_path / "out"))
    assert not found.found and found.fingerprint == ""
    assert "no champion yet" in found.note
    assert not (tmp_path / "out").exists()


def test_the_champion_is_fetched_as_a_trainer_laid_out_copy(tmp_path, tracking):
    uri = tracking[0]
    first = eval_fixtures.tiny_model(str(tmp_path / "first"), skill=0.5, box_shift=0.0)
    second = eval_fixtures.tiny_model(str(tmp_path / "second"), skill=0.9, box_shift=0.0)
    assert _register(tracking, first) == "1"
    assert _register(tracking, second) == "2"
    assert champion.resolve_version(uri, NAME) == "2"

    latest = champion.fetch_champion(uri, NAME, "", "detection", str(tmp_path / "latest"))
    assert (latest.version, latest.note) == ("2", f"{NAME} version 2")
    # Byte for byte the registered SavedModel, where the Evaluator looks for a model.
    assert latest.fingerprint == champion.fingerprint(os.path.join(second, "Format-Serving"))
    assert champion.fingerprint(str(tmp_path / "latest" / "Format-Serving")) == latest.fingerprint

    # A version given (as `xfer run` resolves it when it starts) is fetched even after the alias moved on.
    pinned = champion.fetch_champion(uri, NAME, "1", "detection", str(tmp_path / "pinned"))
    assert pinned.version == "1"
    assert pinned.fingerprint == champion.fingerprint(os.path.join(first, "Format-Serving"))


def test_a_champion_without_the_box_head_is_no_baseline_for_a_detection_model(tmp_path, tracking):
    uri = tracking[0]
    _register(tracking, eval_fixtures.tiny_model(str(tmp_path / "cls"), skill=0.5, box_shift=0.0, with_box=False))
    found = champion.fetch_champion(uri, NAME, "", "detection", str(tmp_path / "out"))
    assert not found.found
    assert found.note == (
        f"{NAME} version 1 is not comparable: its serving signature has no box output, which a detection "
        "candidate is scored on"
    )
    # The same model is a fine baseline for a classification candidate.
    assert champion.fetch_champion(uri, NAME, "", "classification", str(tmp_path / "cls_out")).version == "1"


def test_a_champion_whose_files_are_gone_is_an_error_that_names_it(tmp_path, tracking):
    uri, client, _ = tracking
    _register(tracking, eval_fixtures.tiny_model(str(tmp_path / "model"), skill=0.5, box_shift=0.0))
    location = champion.model_location(client, client.get_model_version(NAME, "1"))
    shutil.rmtree(location.removeprefix("file://"))
    with pytest.raises(champion.ChampionError, match=f"cannot download {NAME} version 1 from "):
        champion.fetch_champion(uri, NAME, "1", "detection", str(tmp_path / "out"))
