"""The `kubeflow:` config section: defaults that parse, and the mistakes it refuses in one line."""

from __future__ import annotations

import pytest
import yaml

from pipeline import config as config_lib
from tests.helpers import SAMPLE_CONFIG


def sample(**kubeflow) -> dict:
    raw = yaml.safe_load(SAMPLE_CONFIG.read_text())
    raw["kubeflow"] = kubeflow
    return raw


def test_sample_config_gets_the_defaults():
    config = config_lib.load_config(SAMPLE_CONFIG)
    assert config.kubeflow.gpu_count == 1
    assert config.kubeflow.pipeline_root.startswith("s3://")


def test_a_kubeflow_section_parses_typed():
    config = config_lib.config_from_dict(
        sample(
            gpu_count=2,
            node_selector={"pool": "gpu"},
            tolerations=[{"key": "gpu", "operator": "Equal", "value": "a100", "effect": "NoSchedule"}],
            component_beam_args={"Transform": ["--runner=FlinkRunner"]},
            trainer_resources={"cpu_request": 2, "cpu_limit": 4, "memory_request_gb": 8, "memory_limit_gb": 16},
        )
    )
    assert config.kubeflow.node_selector == {"pool": "gpu"}
    assert config.kubeflow.tolerations[0].value == "a100"
    assert config.kubeflow.component_beam_args == {"Transform": ("--runner=FlinkRunner",)}
    assert config.kubeflow.trainer_resources.cpu_limit == 4.0


@pytest.mark.parametrize(
    ("kubeflow", "message"),
    [
        (
            {"beam_args": ["--s3_secret_access_key=abc"]},
            "kubeflow.beam_args: --s3_secret_access_key carries a credential",
        ),
        ({"component_beam_args": {"Transform": ["--aws_session_token=x"]}}, "component_beam_args.Transform"),
        ({"pipeline_root": "s3://key:secret@bucket/root"}, "kubeflow.pipeline_root: no credentials in URIs"),
        ({"pipeline_root": "/local/folder"}, "kubeflow.pipeline_root: expected a URI"),
        ({"node_selector": {"pool": 1}}, "kubeflow.node_selector.pool: expected a string"),
        ({"tolerations": [{"key": "gpu", "effect": "Sometimes"}]}, "kubeflow.tolerations"),
        ({"gpu_count": -1}, "kubeflow.gpu_count: must be >= 0"),
        ({"resources": {"cpu_request": 4, "cpu_limit": 2}}, "kubeflow.resources: need 0 < cpu_request <= cpu_limit"),
        ({"secret_env": {"MLFLOW_TRACKING_URI": ""}}, "kubeflow.secret_env.MLFLOW_TRACKING_URI"),
        ({"gpu": 1}, "kubeflow.gpu: unknown key"),
    ],
)
def test_mistakes_are_refused(kubeflow, message):
    with pytest.raises(config_lib.ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        config_lib.config_from_dict(sample(**kubeflow))


@pytest.mark.parametrize(
    "name, message",
    [
        ("Xfer-Sample", "not a lowercase RFC 1123 label"),
        ("xfer_sample", "not a lowercase RFC 1123 label"),
        ("xfer-", "not a lowercase RFC 1123 label"),
        ("x" * 58, "at most 57"),
    ],
)
def test_a_pipeline_name_argo_or_kubernetes_would_refuse_is_refused_naming_the_rule(name, message):
    raw = yaml.safe_load(SAMPLE_CONFIG.read_text())
    raw["pipeline_name"] = name
    with pytest.raises(config_lib.ConfigError, match=f"pipeline_name: .*{message}"):
        config_lib.config_from_dict(raw)


def test_the_longest_pipeline_name_is_accepted():
    raw = yaml.safe_load(SAMPLE_CONFIG.read_text())
    raw["pipeline_name"] = "x" * 57
    assert config_lib.config_from_dict(raw).pipeline_name == "x" * 57
