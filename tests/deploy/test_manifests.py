"""deploy/: Dockerfiles, compose and Kubernetes manifests render, validate, and agree with each other and with lorag.

No Docker daemon runs here, so images are linted (hadolint), not built; the compose file is checked
by ``docker-compose config`` and the kustomize overlays are rendered by ``kubectl`` and validated
against the Kubernetes schemas (kubernetes-validate). A test whose tool is absent is skipped, naming it.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gateway.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
OVERLAYS = ("cpu", "gpu")
NAMES = ["cpu-variant", "gpu-variant"]  # not "gpu": that id would mark the test as needing a GPU


def tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(Path(sys.executable).parent / name)  # pip installs it into the venv
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def rendered(overlay: str) -> dict[tuple[str, str], dict]:
    out = subprocess.run(
        [tool("kubectl"), "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(out)}


def env(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


@pytest.mark.parametrize("overlay", OVERLAYS, ids=NAMES)
def test_each_overlay_renders_and_validates_against_the_kubernetes_schemas(overlay):
    validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")
    documents = rendered(overlay)
    assert {kind for kind, _ in documents} == {
        "StatefulSet", "Deployment", "Service", "PersistentVolumeClaim", "PodDisruptionBudget"
    }  # fmt: skip
    for document in documents.values():
        validate.validate(document, validate.latest_version(), strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS, ids=NAMES)
def test_the_gateway_reaches_every_vllm_server_by_name_and_shares_their_adapters(overlay):
    documents = rendered(overlay)
    vllm, gateway = documents["StatefulSet", "lorag-vllm"], documents["Deployment", "lorag-gateway"]
    [server] = vllm["spec"]["template"]["spec"]["containers"]
    [front] = gateway["spec"]["template"]["spec"]["containers"]
    urls = env(front)["LORAG_VLLM_URLS"].split(",")
    service = vllm["spec"]["serviceName"]
    assert urls == [f"http://lorag-vllm-{i}.{service}:8000" for i in range(vllm["spec"]["replicas"])]
    assert documents["Service", service]["spec"]["clusterIP"] == "None"
    assert f"--served-model-name={env(front)['LORAG_BASE_MODEL']}" in server["args"]
    # the gateway sends vLLM each adapter's path: the same on both sides
    assert {"name": "adapters", "mountPath": "/data/adapters", "readOnly": True} in server["volumeMounts"]
    assert {"name": "adapters", "mountPath": "/data/adapters"} in front["volumeMounts"]
    assert gateway["spec"]["replicas"] == 1 and gateway["spec"]["strategy"]["type"] == "Recreate"  # one KB writer
    for container in (server, front):
        assert {"startupProbe", "readinessProbe", "livenessProbe"} <= set(container)
        assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    keys = [e for e in front["env"] if e["name"] == "LORAG_API_KEYS"]
    assert keys[0]["valueFrom"]["secretKeyRef"]["name"] == "lorag-api-keys"
    budget = documents["PodDisruptionBudget", "lorag-vllm"]["spec"]
    assert budget["selector"]["matchLabels"].items() <= vllm["spec"]["template"]["metadata"]["labels"].items()
    if overlay == "gpu":
        gpus = server["resources"]["limits"]["nvidia.com/gpu"]
        assert gpus == server["resources"]["requests"]["nvidia.com/gpu"] == int(env(server)["TENSOR_PARALLEL_SIZE"])


def test_the_compose_file_is_valid_and_lists_every_vllm_server():
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed (Debian package docker-compose)")
    out = subprocess.run([compose, "-f", str(DEPLOY / "compose.yaml"), "config"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    services = yaml.safe_load(out.stdout)["services"]
    servers = sorted(name for name in services if name.startswith("vllm-"))
    urls = services["gateway"]["environment"]["LORAG_VLLM_URLS"].split(",")
    assert urls == [f"http://{name}:8000" for name in servers] and len(servers) >= 2
    for name in servers:
        assert "adapters:/data/adapters:ro" in services[name]["volumes"]
        assert "--served-model-name smollm2-135m-instruct" in services[name]["command"]
    assert "adapters:/data/adapters:rw" in services["gateway"]["volumes"]
    # many gateways, one store: the replicas share the knowledge bases in Milvus Standalone, none on a volume
    gateway = services["gateway"]
    assert gateway["deploy"]["replicas"] >= 2 and gateway["environment"]["LORAG_MILVUS_URI"] == "http://milvus:19530"
    assert not any("/data/knowledge_bases" in volume for volume in gateway["volumes"])
    assert gateway["depends_on"]["milvus"]["condition"] == "service_healthy"
    assert services["milvus"]["image"].startswith("milvusdb/milvus:v2.") and {"etcd", "minio"} <= set(services)


def test_the_milvus_overlay_scales_the_gateway_out_over_one_store():
    validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")
    documents = rendered("milvus")
    for document in documents.values():
        validate.validate(document, validate.latest_version(), strict=True)
    gateway = documents["Deployment", "lorag-gateway"]["spec"]
    [front] = gateway["template"]["spec"]["containers"]
    assert gateway["replicas"] >= 2 and gateway["strategy"]["type"] == "RollingUpdate"
    milvus = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in front["env"] if "valueFrom" in e}
    assert milvus["LORAG_MILVUS_URI"] == {"name": "lorag-milvus", "key": "uri"}
    assert milvus["LORAG_MILVUS_TOKEN"]["optional"] is True
    # no knowledge base on a gateway's disk: the folder's claim is gone, the shared claims are ReadWriteMany
    assert ("PersistentVolumeClaim", "lorag-knowledge-bases") not in documents
    claims = {volume["name"]: volume.get("persistentVolumeClaim") for volume in gateway["template"]["spec"]["volumes"]}
    assert claims["knowledge-bases"] is None
    for name in ("lorag-adapters", "lorag-work"):
        assert documents["PersistentVolumeClaim", name]["spec"]["accessModes"] == ["ReadWriteMany"]
    budget = documents["PodDisruptionBudget", "lorag-gateway"]["spec"]
    assert budget["minAvailable"] < gateway["replicas"]
    assert budget["selector"]["matchLabels"].items() <= gateway["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("variant", OVERLAYS, ids=NAMES)
def test_the_dockerfiles_are_multi_stage_non_root_and_healthchecked(variant):
    dockerfile = DEPLOY / f"Dockerfile.{variant}"
    text = dockerfile.read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2
    assert re.search(r"^USER 10001", text, re.M) and "ARG PREPARE_MODEL=true" in text
    assert "HEALTHCHECK" in text and "/healthz" in text and 'VOLUME ["/data"]' in text
    assert (DEPLOY / f"Dockerfile.{variant}.dockerignore").is_file()
    lint = subprocess.run([tool("hadolint"), str(dockerfile)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_every_lorag_variable_in_deploy_is_a_setting():
    names = set()
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            names |= set(re.findall(r"\bLORAG_([A-Z_]+[A-Z])\b", path.read_text()))
    names -= {"IMAGE_VARIANT", "KV_CACHE_BYTES", "PORT", "PORTS"}  # compose's own variables, not lorag's
    assert names and {name.lower() for name in names} <= set(Settings.model_fields)


def test_the_accelerate_configs_load():
    from accelerate.commands.config.config_args import load_config_from_file

    kinds = {p.stem: load_config_from_file(str(p)).distributed_type for p in (DEPLOY / "accelerate").glob("*.yaml")}
    assert {k: str(v).split(".")[-1] for k, v in kinds.items()} == {
        "ddp": "MULTI_GPU", "fsdp": "FSDP", "deepspeed-zero2": "DEEPSPEED", "deepspeed-zero3": "DEEPSPEED"
    }  # fmt: skip
