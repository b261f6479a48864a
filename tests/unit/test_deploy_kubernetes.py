"""deploy/kubernetes: every manifest validates against Kubernetes' own schemas (offline, strict),
the services are wired as docs/scaling.md says, and the Helm values files say what they must."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

kubernetes_validate = pytest.importorskip("kubernetes_validate")

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
K8S_VERSION = "1.30.0"


def _docs() -> list[dict]:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]
    return docs


def test_every_manifest_is_valid_kubernetes():
    docs = _docs()
    assert len(docs) >= 10
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_a_broken_manifest_is_caught():
    bad = next(d for d in _docs() if d["kind"] == "Deployment")
    bad = {**bad, "spec": {**bad["spec"], "replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_the_four_services_are_wired_for_scale_out():
    docs = _docs()
    workloads = {d["metadata"]["name"]: d for d in docs if d["kind"] in ("Deployment", "StatefulSet")}
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    assert set(workloads) == {"ingestion", "registry", "processing", "sink"}
    for name, w in workloads.items():
        container = w["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["headwater", "serve", name]
        labels = w["spec"]["template"]["metadata"]["labels"]
        assert w["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert services[name]["spec"]["selector"].items() <= labels.items(), f"{name}'s Service selects its pods"
    assert workloads["ingestion"]["spec"]["replicas"] >= 2 and workloads["processing"]["spec"]["replicas"] >= 2
    assert workloads["processing"]["kind"] == "StatefulSet"  # stable names, a volume of its own per replica
    # Scale-out replicas share the job catalogue and checkpoints on a ReadWriteMany claim.
    proc = workloads["processing"]["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in proc["containers"][0]["env"]}
    assert env["HEADWATER_PROCESSING_SCALE_OUT"] == "true"
    mounts = {m["name"]: m["mountPath"] for m in proc["containers"][0]["volumeMounts"]}
    assert mounts["shared"] == env["HEADWATER_PROCESSING_CHECKPOINT_DIR"]
    claim = next(v["persistentVolumeClaim"]["claimName"] for v in proc["volumes"] if v["name"] == "shared")
    pvc = next(d for d in docs if d["kind"] == "PersistentVolumeClaim" and d["metadata"]["name"] == claim)
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    for name in ("ingestion", "registry", "processing"):  # headless: clients balance over every pod
        assert services[name]["spec"]["clusterIP"] == "None"
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    assert config["HEADWATER_INGESTION_LOG_BACKEND"] == "nats" and config["HEADWATER_INGESTION_NATS_REPLICAS"] == "3"
    assert config["HEADWATER_REGISTRY_STORE"] == "postgres"


def test_helm_values_for_nats_and_postgresql():
    nats = yaml.safe_load((DEPLOY / "nats-values.yaml").read_text())
    assert nats["config"]["cluster"]["enabled"] and nats["config"]["cluster"]["replicas"] == 3
    assert nats["config"]["jetstream"]["enabled"] and nats["config"]["jetstream"]["fileStore"]["enabled"]
    pg = yaml.safe_load((DEPLOY / "postgresql-values.yaml").read_text())
    assert pg["auth"]["database"] == "headwater"
