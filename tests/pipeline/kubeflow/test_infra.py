"""infra/ without a cluster: kustomize builds, kubernetes-validate --strict accepts, and the security rules
hold for every container; the Dockerfiles and pins agree with the lock."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO_ROOT

ROOT = REPO_ROOT
K8S = ROOT / "infra" / "k8s"
BIN = Path(sys.executable).parent
OVERLAYS = sorted(path.name for path in (K8S / "overlays").iterdir() if path.is_dir())


def kustomize(path: Path) -> str:
    result = subprocess.run([str(BIN / "kubectl"), "kustomize", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def validate(manifests: str, tmp_path: Path) -> subprocess.CompletedProcess:
    built = tmp_path / "built.yaml"
    built.write_text(manifests)
    return subprocess.run(
        [str(BIN / "kubernetes-validate"), "--strict", "--quiet", str(built)], capture_output=True, text=True
    )


def pod_specs(documents: list[dict]):
    for document in documents:
        spec = document.get("spec", {})
        if document["kind"] in ("Deployment", "StatefulSet", "Job", "DaemonSet"):
            yield document["metadata"]["name"], spec["template"]["spec"]


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request) -> tuple[str, list[dict]]:
    text = kustomize(K8S / "overlays" / request.param)
    return text, [doc for doc in yaml.safe_load_all(text) if doc]


def test_there_is_an_overlay():
    assert OVERLAYS


def test_overlay_passes_strict_validation(overlay, tmp_path):
    result = validate(overlay[0], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_strict_validation_catches_a_misspelt_field(overlay, tmp_path):
    broken = overlay[0].replace("readOnlyRootFilesystem:", "readOnlyRootFileSystem:", 1)
    assert broken != overlay[0]
    assert validate(broken, tmp_path).returncode != 0


def test_every_container_is_non_root_unprivileged_with_requests_and_limits(overlay):
    pods = list(pod_specs(overlay[1]))
    assert {name for name, _ in pods} >= {"mlflow", "postgres", "minio"}
    for name, pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        for container in pod["containers"] + pod.get("initContainers", []):
            where = f"{name}/{container['name']}"
            security = container["securityContext"]
            assert security.get("privileged", False) is False, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert set(container["resources"]["requests"]) >= {"cpu", "memory"}, where
            assert set(container["resources"]["limits"]) >= {"cpu", "memory"}, where
            assert ":" in container["image"] and not container["image"].endswith(":latest"), where


def test_mlflow_serves_artifacts_behind_auth_and_allowed_hosts(overlay):
    (deployment,) = [d for d in overlay[1] if d["kind"] == "Deployment" and d["metadata"]["name"] == "mlflow"]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--serve-artifacts" in args
    assert "--app-name=basic-auth" in args
    assert any(arg.startswith("--backend-store-uri=postgresql://") for arg in args)
    assert len([arg for arg in args if arg.startswith("--allowed-hosts=")]) == 1


def test_network_policies_keep_mlflow_in_the_namespace(overlay):
    policies = {d["metadata"]["name"]: d for d in overlay[1] if d["kind"] == "NetworkPolicy"}
    assert policies["default-deny-ingress"]["spec"]["podSelector"] == {}
    for rule in policies["mlflow-ingress"]["spec"]["ingress"]:
        for source in rule["from"]:
            # Either this namespace, or KFP's pipeline pods: never any namespace at large.
            if "namespaceSelector" in source:
                assert source["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kubeflow"}
                assert source["podSelector"]["matchLabels"] == {"pipelines.kubeflow.org/v2_component": "true"}
    egress_targets = [t for rule in policies["mlflow-egress"]["spec"]["egress"] for t in rule["to"]]
    assert all("ipBlock" not in target for target in egress_targets)


def test_kfp_launcher_config_points_at_the_pipeline_root(overlay):
    (launcher,) = [d for d in overlay[1] if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "kfp-launcher"]
    assert launcher["metadata"]["namespace"] == "kubeflow"
    from pipeline import config as config_lib

    assert launcher["data"]["defaultPipelineRoot"] == config_lib.KubeflowConfig().pipeline_root
    providers = yaml.safe_load(launcher["data"]["providers"])
    assert providers["s3"]["default"]["credentials"]["secretRef"]["secretName"] == "xfer-object-store"


def test_secret_templates_validate_and_hold_no_values(tmp_path):
    text = kustomize(K8S / "secrets")
    assert validate(text, tmp_path).returncode == 0
    secrets = [doc for doc in yaml.safe_load_all(text) if doc]
    assert {s["metadata"]["name"] for s in secrets} >= {"xfer-pipeline", "mlflow-db", "object-store", "mlflow-auth"}
    for secret in secrets:
        assert "data" not in secret, secret["metadata"]["name"]
        assert all(value == "" for value in secret["stringData"].values()), secret["metadata"]["name"]


def test_pipeline_secret_template_has_every_key_the_config_maps():
    from pipeline import config as config_lib

    text = (K8S / "secrets" / "kubeflow-secrets.yaml").read_text()
    (secret,) = [d for d in yaml.safe_load_all(text) if d and d["metadata"]["name"] == "xfer-pipeline"]
    assert set(secret["stringData"]) == set(config_lib.KubeflowConfig().secret_env.values())


def test_upstream_references_are_pinned():
    text = (K8S / "kfp" / "kustomization.yaml").read_text()
    refs = re.findall(r"github\.com/kubeflow/pipelines/[^\s\"]+\?ref=([^\s\"]+)", text)
    assert refs and all(re.fullmatch(r"\d+\.\d+\.\d+", ref) for ref in refs)
    docs = (ROOT / "docs" / "kubeflow.md").read_text()
    assert "?ref=2.17.0" in docs
    assert re.search(r"k8s-device-plugin/v\d+\.\d+\.\d+/", docs) or re.search(r"gpu-operator --version v\d", docs)


def test_images_install_the_lock_as_a_non_root_user():
    lock = (ROOT / "requirements.lock").read_text()
    dockerfile = (ROOT / "infra" / "docker" / "Dockerfile").read_text()
    assert "tensorflow/tensorflow:2.16.2-gpu" in dockerfile
    assert "--require-hashes requirements.lock" in dockerfile
    assert re.search(r"^USER 10001:10001$", dockerfile, re.MULTILINE)
    mlflow_image = (ROOT / "infra" / "docker" / "mlflow.Dockerfile").read_text()
    locked_mlflow = re.search(r"^mlflow==(\S+)", lock, re.MULTILINE).group(1)
    assert f"ARG MLFLOW_VERSION={locked_mlflow}" in mlflow_image
    assert re.search(r"^USER 10001", mlflow_image, re.MULTILINE)


def test_the_gpu_image_build_fails_unless_tensorflow_can_load_cuda_and_cudnn():
    dockerfile = (ROOT / "infra" / "docker" / "Dockerfile").read_text()
    assert re.search(r"^ARG GPU=1$", dockerfile, re.MULTILINE)  # The default build is the GPU image.
    assert 'if [ "$GPU" = 1 ]; then python check_gpu.py; fi' in dockerfile
    assert "COPY infra/docker/check_gpu.py ./check_gpu.py" in dockerfile
    docs = (ROOT / "docs" / "kubeflow.md").read_text()
    assert "--build-arg GPU=0" in docs and '"/app/check_gpu.py", "--require-device"' in docs


def test_the_gpu_check_fails_where_tensorflow_cannot_load_its_cuda():
    """This machine has no CUDA 12 runtime for TF 2.16's CUDA 12.3 build (at most another major), so the check
    must fail here, naming the library, as it would fail a GPU image build on a base without them."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "infra" / "docker" / "check_gpu.py")], capture_output=True, text=True
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "check_gpu: cannot load libcudart.so.12" in result.stderr
