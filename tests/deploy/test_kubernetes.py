"""Kubernetes manifests: valid against the Kubernetes schemas (strict: no unknown fields), and
the configurations they carry pass recmon's own check."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml

from monitor.config.loader import load_config_text
from monitor.config.webconfig import on_every_interface
from tests.helpers import ROOT

MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
KUBERNETES = "1.31.0"


def documents() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, doc)
        for path in MANIFESTS
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def by_kind(kind: str, name: str | None = None) -> dict[str, Any]:
    return next(
        d
        for _, d in documents()
        if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    )


@pytest.mark.parametrize(
    "source, document", documents(), ids=lambda v: v if isinstance(v, str) else v["kind"]
)
def test_manifest_is_valid_for_kubernetes(source: str, document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, KUBERNETES, strict=True)


def secret_environment() -> dict[str, str]:
    return dict(by_kind("Secret")["stringData"])


@pytest.mark.parametrize("name", ["recmon-config", "recmon-sidecar-config"])
def test_shipped_configurations_are_valid_recmon_configurations(name: str) -> None:
    text = by_kind("ConfigMap", name)["data"]["probes.yaml"]
    loaded = load_config_text(text, source=name, environ=secret_environment())
    assert loaded.config.state.path.startswith(
        "/var/lib/recmon/"
    )  # on the volume, not the read-only ConfigMap
    # Scraped and probed over the pod's network: metrics.listen's loopback default would be
    # unreachable, so the file says every interface itself.
    assert "listen" in loaded.config.metrics.model_fields_set
    assert on_every_interface(loaded.config.metrics.listen)


def test_cronjob_never_overlaps_and_keeps_state() -> None:
    cron = by_kind("CronJob")["spec"]
    assert cron["concurrencyPolicy"] == "Forbid"
    assert cron["startingDeadlineSeconds"] > 0
    job = cron["jobTemplate"]["spec"]
    assert job["activeDeadlineSeconds"] < 300  # shorter than the schedule's 5 minutes
    pod = job["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"][0] == "once"
    # Alerts firing is no failed Job, and no failure is retried: a re-run would probe twice.
    assert container["args"][container["args"].index("--alerts-exit-code") + 1] == "0"
    assert job["backoffLimit"] == 0 and "podFailurePolicy" not in job
    assert {"secretRef": {"name": "recmon-secrets"}} in container["envFrom"]
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert claims == [by_kind("PersistentVolumeClaim")["metadata"]["name"]]
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_deployment_probes_health_and_readiness() -> None:
    pod = by_kind("Deployment", "recmon")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["args"][0] == "run"


def test_sidecar_is_a_native_sidecar() -> None:
    pod = by_kind("Deployment", "search-api")["spec"]["template"]["spec"]
    (sidecar,) = pod["initContainers"]
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["args"][0] == "run"


def test_statefulset_shards_by_pod_ordinal() -> None:
    sts = by_kind("StatefulSet")["spec"]
    (container,) = sts["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["RECMON_SHARD_COUNT"]["value"] == str(sts["replicas"])
    assert "pod-index" in env["RECMON_SHARD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]


def test_shard_comes_from_the_pod_index(monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.cli import _default_shard

    monkeypatch.delenv("RECMON_SHARD", raising=False)
    monkeypatch.setenv("RECMON_SHARD_INDEX", "2")
    monkeypatch.setenv("RECMON_SHARD_COUNT", "3")
    assert _default_shard() == "2/3"
    monkeypatch.setenv("RECMON_SHARD", "0/2")
    assert _default_shard() == "0/2"
