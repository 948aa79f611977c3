"""The pods' entrypoint: S3 settings for tensorflow-io, and one MLflow run per KFP run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components import mlflow_tags
from pipeline.kubeflow import entrypoint as kubeflow_entrypoint
from pipeline.kubeflow import s3 as kubeflow_s3
from pipeline.tracking import mlflow_log
from tests.helpers import SAMPLE_CONFIG


@pytest.mark.parametrize("endpoint", ["http://minio.xfer.svc.cluster.local:9000", "https://s3.eu-west-1.amazonaws.com"])
def test_s3_environment_from_the_aws_endpoint_keeps_the_scheme(endpoint):
    # tensorflow-io takes http or https from S3_ENDPOINT itself (tests/pipeline/kubeflow/test_s3.py proves it on
    # an S3 API).
    assert kubeflow_s3.s3_environment({"AWS_ENDPOINT_URL": endpoint}) == {"S3_ENDPOINT": endpoint}


def test_s3_environment_leaves_an_explicit_setting_alone():
    assert kubeflow_s3.s3_environment({"AWS_ENDPOINT_URL": "http://a:1", "S3_ENDPOINT": "b:2"}) == {}
    assert kubeflow_s3.s3_environment({}) == {}


def test_output_uri_from_the_executor_input():
    invocation = json.dumps({"outputs": {"artifacts": {"evaluation": {"artifacts": [{"uri": "s3://r/e/1"}]}}}})
    assert kubeflow_entrypoint.output_uri(invocation, "evaluation") == "s3://r/e/1"


@pytest.fixture
def client(tmp_path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_every_pod_of_a_kfp_run_finds_the_same_mlflow_run(client):
    first = kubeflow_entrypoint.find_or_create_run(client, "xfer", "xfer-sample-abc12", {"training.seed": "42"})
    again = kubeflow_entrypoint.find_or_create_run(client, "xfer", "xfer-sample-abc12", {})
    other = kubeflow_entrypoint.find_or_create_run(client, "xfer", "xfer-sample-zz999", {})
    assert first == again != other
    assert client.get_run(first).data.params == {"training.seed": "42"}


def test_duplicates_from_parallel_root_pods_converge_on_the_oldest(client):
    experiment_id = client.create_experiment("xfer")
    tags = {mlflow_tags.KFP_RUN: "run-x"}
    oldest = client.create_run(experiment_id, tags=tags, start_time=1_000).info.run_id
    newer = client.create_run(experiment_id, tags=tags, start_time=2_000).info.run_id
    assert kubeflow_entrypoint.find_or_create_run(client, "xfer", "run-x", {}) == oldest
    assert client.get_run(newer).info.lifecycle_stage == "deleted"


class PeerRace:
    """The MLflow client of a root pod started together with another (as Argo starts root tasks): the peer
    creates its run just after this pod found none, and deletes this pod's run just after it was created."""

    def __init__(self, client, experiment_id):
        self._client = client
        self._experiment_id = experiment_id
        self._searched = False

    def search_runs(self, *args, **kwargs):
        if not self._searched:
            self._searched = True
            self._client.create_run(self._experiment_id, tags={mlflow_tags.KFP_RUN: "run-x"}, start_time=1)
            return []
        return self._client.search_runs(*args, **kwargs)

    def create_run(self, *args, **kwargs):
        created = self._client.create_run(*args, **kwargs)
        self._client.delete_run(created.info.run_id)  # The peer keeps its own, older run.
        return created

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_a_root_pod_whose_new_run_a_peer_deleted_joins_the_peers_run(client):
    experiment_id = client.create_experiment("xfer")
    racing = PeerRace(client, experiment_id)
    run_id = kubeflow_entrypoint.find_or_create_run(racing, "xfer", "run-x", {"training.seed": "42"})
    (active,) = client.search_runs([experiment_id], "tags.kfp_run = 'run-x'")
    assert run_id == active.info.run_id
    assert active.data.params == {"training.seed": "42"}


class ExperimentRace:
    """A root pod's client when another root pod creates the experiment between this pod's look-up and its own
    creation (the first run of a pipeline, root tasks started together)."""

    def __init__(self, client):
        self._client = client

    def get_experiment_by_name(self, name):
        found = self._client.get_experiment_by_name(name)
        if found is None:
            self._client.create_experiment(name)  # The peer wins the race.
        return found

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_a_root_pod_that_loses_the_race_to_create_the_experiment_uses_the_winners(client):
    run_id = kubeflow_entrypoint.find_or_create_run(ExperimentRace(client), "fresh", "run-y", {})
    assert client.get_run(run_id).info.experiment_id == client.get_experiment_by_name("fresh").experiment_id


@pytest.fixture
def pod_env(tmp_path, monkeypatch):
    """A pod's environment: MLflow from the Secret, the run name from the pod's labels, a stand-in TFX module."""
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    monkeypatch.setenv("XFER_KFP_RUN", "xfer-sample-run42")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "xfer-sample")
    monkeypatch.setenv("XFER_MLFLOW_PARAMS", json.dumps({"training": {"seed": 7}}))
    monkeypatch.delenv("XFER_MLFLOW_RUN_ID", raising=False)
    (tmp_path / "fake_step_ok.py").write_text(
        "import os, sys\nassert os.environ['XFER_MLFLOW_RUN_ID']\nassert sys.argv[1:] == ['--flag', 'x']\n"
    )
    (tmp_path / "fake_step_broken.py").write_text("raise RuntimeError('disk full')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("sys.argv", ["entrypoint"])
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    # A sqlite store would put a new experiment's artifacts under ./mlruns (the checkout); in the cluster the
    # tracking server serves them. The experiment exists, as it does after the first run.
    client.create_experiment("xfer-sample", artifact_location=(tmp_path / "artifacts").as_uri())
    return client


def kfp_run(client):
    (run,) = client.search_runs(
        [client.get_experiment_by_name("xfer-sample").experiment_id], "tags.kfp_run = 'xfer-sample-run42'"
    )
    return run


def test_a_failing_step_marks_the_run_failed_with_the_reason(pod_env):
    with pytest.raises(RuntimeError, match="disk full"):
        kubeflow_entrypoint.main(["--node", "Transform", "fake_step_broken"])
    run = kfp_run(pod_env)
    assert run.info.status == "FAILED"
    assert run.data.tags["failure_reason"] == "Transform: RuntimeError: disk full"
    assert run.data.params == {"training.seed": "7"}


def test_an_attempt_argo_will_retry_leaves_the_run_open_and_the_retry_finishes_it(pod_env, monkeypatch):
    monkeypatch.setenv("XFER_KFP_RETRIES", "2")
    monkeypatch.setenv("KFP_RETRY_INDEX", "0")  # KFP 2.17 sets it from Argo's {{retries}}.
    with pytest.raises(RuntimeError):
        kubeflow_entrypoint.main(["--node", "Pusher", "fake_step_broken"])
    run = kfp_run(pod_env)
    assert run.info.status == "RUNNING" and "failure_reason" not in run.data.tags
    assert run.data.tags["failed_attempt.Pusher"] == "attempt 1: RuntimeError: disk full"
    monkeypatch.setenv("KFP_RETRY_INDEX", "1")
    assert kubeflow_entrypoint.main(["--node", "Pusher", "fake_step_ok", "--flag", "x"]) == 0
    assert kfp_run(pod_env).info.status == "FINISHED"


def test_a_pod_never_reopens_or_finishes_a_failed_run(pod_env, monkeypatch):
    """Today's tasks run side by side: a pod that starts or ends after another task's last attempt failed the
    run leaves it FAILED, with the first reason."""
    monkeypatch.setenv("XFER_KFP_RETRIES", "1")
    monkeypatch.setenv("KFP_RETRY_INDEX", "1")  # The last attempt.
    with pytest.raises(RuntimeError):
        kubeflow_entrypoint.main(["--node", "Champion", "fake_step_broken"])
    assert kubeflow_entrypoint.main(["--node", "Trainer", "fake_step_ok", "--flag", "x"]) == 0
    assert kubeflow_entrypoint.main(["--node", "Pusher", "fake_step_ok", "--flag", "x"]) == 0
    with pytest.raises(RuntimeError):
        kubeflow_entrypoint.main(["--node", "Transform", "fake_step_broken"])
    run = kfp_run(pod_env)
    assert run.info.status == "FAILED"
    assert run.data.tags["failure_reason"] == "Champion: RuntimeError: disk full"


def test_the_last_attempt_is_read_from_kfps_retry_index_and_the_compiled_limit():
    last = kubeflow_entrypoint.last_attempt
    assert last({}) and last({"KFP_RETRY_INDEX": "0"})  # No retries compiled: every attempt is the last.
    assert not last({"KFP_RETRY_INDEX": "0", "XFER_KFP_RETRIES": "2"})
    assert last({"KFP_RETRY_INDEX": "2", "XFER_KFP_RETRIES": "2"})


class CountingClient:
    """The MLflow client, counting alias moves."""

    def __init__(self, client):
        self._client = client
        self.alias_moves = 0

    def set_registered_model_alias(self, *args):
        self.alias_moves += 1
        return self._client.set_registered_model_alias(*args)

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_a_pusher_retried_after_it_registered_registers_nothing_more_and_moves_the_alias_once(pod_env, monkeypatch):
    from pipeline.tracking import registry

    run_id = kubeflow_entrypoint.find_or_create_run(pod_env, "xfer-sample", "xfer-sample-run42", {})
    calls = []

    def register(tracking_uri, run, destination, name, example):  # What a first attempt does, minus the model.
        calls.append(run)
        pod_env.create_registered_model(name)
        version = pod_env.create_model_version(name, destination, run_id=run)
        pod_env.set_registered_model_alias(name, registry.CHAMPION_ALIAS, version.version)
        return version

    monkeypatch.setattr(registry, "register_champion", register)
    monkeypatch.setattr(registry, "placeholder_input_example", lambda destination: None)
    client = CountingClient(pod_env)
    kubeflow_entrypoint.register_once(client, run_id, "s3://xfer/serving/1", "xfer-sample")
    # The launcher failed after the program: Argo reruns the Pusher's pod, which pushes and registers again.
    kubeflow_entrypoint.register_once(client, run_id, "s3://xfer/serving/1", "xfer-sample")
    assert calls == [run_id] and client.alias_moves == 0
    (version,) = pod_env.search_model_versions("name = 'xfer-sample'")
    assert pod_env.get_model_version_by_alias("xfer-sample", "champion").version == version.version
    assert pod_env.get_run(run_id).data.tags["registered_model"] == f"xfer-sample/{version.version}"


def test_a_retry_after_registering_but_before_the_alias_moves_it_once(pod_env):
    run_id = kubeflow_entrypoint.find_or_create_run(pod_env, "xfer-sample", "xfer-sample-run42", {})
    pod_env.create_registered_model("xfer-sample")
    pod_env.create_model_version("xfer-sample", "s3://xfer/serving/1", run_id=run_id)
    client = CountingClient(pod_env)
    kubeflow_entrypoint.register_once(client, run_id, "s3://xfer/serving/1", "xfer-sample")
    kubeflow_entrypoint.register_once(client, run_id, "s3://xfer/serving/1", "xfer-sample")
    assert client.alias_moves == 1
    assert str(pod_env.get_model_version_by_alias("xfer-sample", "champion").version) == "1"


def test_only_s3_folder_markers_with_keys_under_them_are_removed():
    from pipeline.kubeflow import markers

    keys = {
        "root/T/1/examples/": 0,
        "root/T/1/examples/Split-train/": 0,
        "root/T/1/examples/Split-train/data.gz": 10,
        "root/T/1/examples/empty/": 0,  # Nothing under it: the launcher makes an empty file of it, harmlessly.
        "root/T/1/examples/real-empty-file": 0,
    }
    assert markers.directory_markers(keys) == ["root/T/1/examples/", "root/T/1/examples/Split-train/"]


def test_the_evaluator_step_logs_its_gates_and_the_champion_it_was_compared_with(pod_env, tmp_path, monkeypatch):
    """The Evaluator pod, after TFMA ran (for real, on tiny models): metrics, blessing, the gate table with the
    change gates, and which champion, in the KFP run's MLflow run."""
    from pipeline import config as config_lib
    from pipeline import pipeline as pipeline_lib
    from tests.helpers import eval_fixtures

    raw = config_lib.load_config(SAMPLE_CONFIG).to_dict()
    raw["evaluation"].update(min_accuracy=0.5, min_iou=0.5, min_accuracy_change=-0.05)
    config = config_lib.config_from_dict(raw)
    monkeypatch.setenv("XFER_MLFLOW_PARAMS", json.dumps(config.to_dict()))
    eval_fixtures.write_eval_examples(str(tmp_path / "examples"), eval_fixtures.make_examples(20))
    evaluation_uri, blessing = eval_fixtures.evaluate(
        tmp_path,
        str(tmp_path / "examples"),
        pipeline_lib.eval_config(config),
        eval_fixtures.tiny_model(str(tmp_path / "candidate"), skill=0.7, box_shift=0.0),
        eval_fixtures.champion_artifact(eval_fixtures.tiny_model(str(tmp_path / "champ"), skill=0.9, box_shift=0.0)),
    )
    invocation = json.dumps(
        {
            "outputs": {
                "artifacts": {
                    name: {"artifacts": [{"uri": uri}]}
                    for name, uri in (("evaluation", evaluation_uri), ("blessing", blessing.uri))
                }
            }
        }
    )
    run_id = kubeflow_entrypoint.find_or_create_run(pod_env, "xfer-sample", "xfer-sample-run42", {})
    kubeflow_entrypoint.log_node_results(pod_env, run_id, "Evaluator", invocation)
    run = pod_env.get_run(run_id)
    assert run.data.metrics["eval_accuracy"] == pytest.approx(0.7)
    assert run.data.tags["blessed"] == "false"
    assert "blessed" not in run.data.metrics  # One home: the tag, as `xfer run` logs it.
    assert "eval_box_box_iou" not in run.data.metrics and "eval_hit_rate" in run.data.metrics
    assert run.data.tags["champion_version"] == "7"
    assert run.data.metrics["champion_eval_accuracy"] == pytest.approx(0.9)
    assert run.data.tags["outcome"] == "blocked_by_gate"

    (tmp_path / "logged").mkdir()
    # As `xfer run` logs it: each failure in full in the artifact, the tag in brief and pointing there.
    failures = Path(pod_env.download_artifacts(run_id, mlflow_log.GATE_FAILURES_FILE, str(tmp_path / "logged")))
    assert "changed by -0.2000 against the champion" in failures.read_text()
    assert run.data.tags["gate_failures"].endswith(f"(see {mlflow_log.GATE_FAILURES_FILE})")
    table = Path(pod_env.download_artifacts(run_id, "evaluation/gates.txt", str(tmp_path / "logged"))).read_text()
    assert "change >= -0.05" in table and "FAIL" in table
    assert "champion: change gates against the champion, version 7" in table


def _pusher_invocation(tmp_path, metadata: dict) -> str:
    """The Pusher pod's executor input, and the executor output TFX's module wrote (as on KFP)."""
    output_file = tmp_path / "executor_output.json"
    pushed_uri = str(tmp_path / "pushed_model")
    output_file.write_text(
        json.dumps({"artifacts": {"pushed_model": {"artifacts": [{"uri": pushed_uri, "metadata": metadata}]}}})
    )
    return json.dumps(
        {
            "outputs": {
                "artifacts": {"pushed_model": {"artifacts": [{"uri": pushed_uri}]}},
                "outputFile": str(output_file),
            }
        }
    )


def test_the_pusher_step_registers_what_it_pushed_as_the_champion(pod_env, tmp_path, monkeypatch):
    from pipeline import config as config_lib
    from tests.helpers import eval_fixtures

    config = config_lib.load_config(SAMPLE_CONFIG)
    monkeypatch.setenv("XFER_MLFLOW_PARAMS", json.dumps(config.to_dict()))
    serving = eval_fixtures.tiny_model(str(tmp_path / "model"), skill=0.5, box_shift=0.0) + "/Format-Serving"
    run_id = kubeflow_entrypoint.find_or_create_run(pod_env, "xfer-sample", "xfer-sample-run42", {})

    not_pushed = _pusher_invocation(tmp_path, {"pushed": 0})
    kubeflow_entrypoint.log_node_results(pod_env, run_id, "Pusher", not_pushed)
    assert pod_env.search_model_versions("name = 'xfer-sample'") == []

    pushed = _pusher_invocation(tmp_path, {"pushed": 1.0, "pushed_destination": serving})
    kubeflow_entrypoint.log_node_results(pod_env, run_id, "Pusher", pushed)
    champion = pod_env.get_model_version_by_alias("xfer-sample", "champion")
    assert (str(champion.version), champion.run_id) == ("1", run_id)
    assert champion.tags["pushed_path"] == serving
    assert pod_env.get_run(run_id).data.tags["registered_model"] == "xfer-sample/1"


class RecordingExecutor:
    """A TFX executor that only records what TFX's container module parsed for it."""

    seen: dict = {}

    def __init__(self, context=None):
        self._context = context

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802  TFX's executor interface.
        RecordingExecutor.seen = {
            "inputs": {key: [type(item).__name__ for item in items] for key, items in input_dict.items()},
            "outputs": sorted(output_dict),
            "exec_properties": dict(exec_properties),
            "uri": input_dict["examples"][0].uri,
            "split_names": input_dict["examples"][0].split_names,
        }


EXAMPLES_SCHEMA = "title: tfx.Examples\ntype: object\nproperties:\n  split_names:\n    type: string\n"
STATISTICS_SCHEMA = "title: tfx.ExampleStatistics\ntype: object\n"


def driver_shaped_executor_input(tmp_path) -> dict:
    """An executor input as KFP 2.5's driver builds it for a task with one upstream artifact: the upstream
    artifact comes back from ML Metadata with a numeric name, its custom properties plus display_name as
    metadata and an empty instanceSchema (metadata/client.go GetOutputArtifactsByExecutionId, `Schema: ""`;
    converter.go toRuntimeArtifact); outputs carry the component's declared types plus `executor-logs`, which
    the driver adds when logs are published (driver.go provisionOutputs, PUBLISH_LOGS=true in the 2.5 manifests)."""
    return {
        "inputs": {
            "artifacts": {
                "examples": {
                    "artifacts": [
                        {
                            "name": "17",
                            "uri": str(tmp_path / "examples"),
                            "type": {"instanceSchema": ""},
                            "metadata": {
                                "display_name": "examples",
                                "split_names": '["train", "eval"]',
                                "store_session_info": "{}",
                            },
                        }
                    ]
                }
            },
            "parameterValues": {"exclude_splits": "[]"},
        },
        "outputs": {
            "artifacts": {
                "statistics": {
                    "artifacts": [{"uri": str(tmp_path / "statistics"), "type": {"instanceSchema": STATISTICS_SCHEMA}}]
                },
                "executor-logs": {
                    "artifacts": [{"uri": str(tmp_path / "logs"), "type": {"schemaTitle": "system.Artifact"}}]
                },
            },
            "outputFile": str(tmp_path / "kfp_outputs" / "output_metadata.json"),
        },
    }


def test_a_step_with_an_upstream_artifact_runs_with_what_the_kfp_driver_sends(tmp_path, monkeypatch):
    """TFX's own container module, given the driver's executor input through the entrypoint, reaches the
    executor with typed artifacts (tensorflow/tfx#7768: yaml.safe_load('') crashed it)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    inputs_spec = {
        "artifacts": {"examples": {"artifactType": {"instanceSchema": EXAMPLES_SCHEMA}}},
        "parameters": {"exclude_splits": {"parameterType": "STRING"}},
    }
    argv = [
        "--node",
        "StatisticsGen",
        "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor",
        "--executor_class_path",
        f"{__name__}.RecordingExecutor",
        "--json_serialized_invocation_args",
        json.dumps(driver_shaped_executor_input(tmp_path)),
        "--json_serialized_inputs_spec_args",
        json.dumps(inputs_spec),
    ]
    monkeypatch.setattr("sys.argv", ["entrypoint"])
    assert kubeflow_entrypoint.main(argv) == 0
    seen = RecordingExecutor.seen
    assert seen["inputs"] == {"examples": ["Examples"]}
    assert seen["outputs"] == ["statistics"]
    assert seen["uri"] == str(tmp_path / "examples") and seen["split_names"] == '["train", "eval"]'
    written = json.loads((tmp_path / "kfp_outputs" / "output_metadata.json").read_text())
    assert list(written["artifacts"]) == ["statistics"]


class OlderPeerLandsLate:
    """A root pod whose own run is the only one it sees, after which a peer's run lands that is older (the
    peer asked first, the busy server stored it later) and the peer deletes this pod's run as the newer one."""

    def __init__(self, client, experiment_id):
        self._client = client
        self._experiment_id = experiment_id
        self.peer_run = None

    def log_batch(self, run_id, *args, **kwargs):
        if self.peer_run is None:
            tags = {mlflow_tags.KFP_RUN: "run-x"}
            self.peer_run = self._client.create_run(self._experiment_id, tags=tags, start_time=1).info.run_id
            self._client.delete_run(run_id)
        return self._client.log_batch(run_id, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_a_root_pod_whose_kept_run_an_older_peer_deleted_joins_the_peers_run(client):
    experiment_id = client.create_experiment("xfer")
    racing = OlderPeerLandsLate(client, experiment_id)
    run_id = kubeflow_entrypoint.find_or_create_run(racing, "xfer", "run-x", {"training.seed": "42"})
    assert run_id == racing.peer_run
    (active,) = client.search_runs([experiment_id], "tags.kfp_run = 'run-x'")
    assert active.info.run_id == racing.peer_run
    assert active.data.params == {"training.seed": "42"}
