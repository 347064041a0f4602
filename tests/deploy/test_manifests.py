"""k8s/, docker-compose.yml and the Dockerfile against the code they run: probes point at URLs
the app serves, commands are the processes `make up` runs, every env var is one the app
reads, every metric the alerts and the dashboard use is one /metrics exports. Each test
fails when a manifest drifts from the code. tests/deploy/test_containers.py runs the
containers' commands with the manifests' environment."""

from __future__ import annotations

import ast
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.test import Client, override_settings
from django.urls import Resolver404, resolve
from prometheus_client.parser import text_string_to_metric_families

from aios_site import health
from aios_site.management.commands.up import process_commands
from observability import get_observability
from observability import views as obs_views
from observability.models import ModelPrice
from observability.pricing import prices
from tests.deploy.helpers import (
    K8S,
    MONITORING,
    ROOT,
    argv,
    compose,
    configmap_data,
    container,
    container_env,
    containers,
    dashboard_metric_names,
    dockerfile_cmd,
    dockerfile_env,
    dockerfile_instructions,
    documents,
    k8s_object,
    k8s_objects,
    manifest_files,
    normalized,
    pod_spec,
    promql_metric_names,
    rule_expressions,
    secret_template,
    workloads,
)
from tests.observability.helpers import flushed

APP_PACKAGES = ("aios_site", "aios_core", "observability", "routing", "agents", "evaluation")
# Metrics the alerts use that the app does not export: Prometheus' own and kube-state-metrics'.
EXTERNAL_METRICS = {
    "up": "Prometheus: 1 when the last scrape of a target succeeded",
    "kube_deployment_status_replicas_available": "kube-state-metrics: pods passing readiness",
    "kube_deployment_spec_replicas": "kube-state-metrics: pods wanted",
}
APP_CONTAINERS = ("web", "worker", "beat", "migrate", "wait-for-migrations")


# --- Files and kustomizations ----------------------------------------------------------------
def test_every_manifest_parses_and_names_its_kind_and_name() -> None:
    assert len(manifest_files()) >= 15
    for path in manifest_files():
        for doc in documents(path):
            if path.name == "aios-rules.yml":
                assert doc["groups"], path
            elif doc.get("kind") != "Kustomization":
                assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"], path


def _kustomization(directory: Path) -> dict[str, Any]:
    return documents(directory / "kustomization.yaml")[0]


def test_the_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    listed = set(_kustomization(K8S)["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk - {"secret.example.yaml"}, "a manifest is missing from k8s/kustomization.yaml"
    namespace = k8s_objects("Namespace")[0]["metadata"]["name"]
    assert _kustomization(K8S)["namespace"] == namespace == _kustomization(MONITORING)["namespace"]


def test_the_monitoring_kustomization_lists_the_operator_objects_and_the_dashboard() -> None:
    kustomization = _kustomization(MONITORING)
    listed = set(kustomization["resources"]) | {f for g in kustomization["configMapGenerator"] for f in g["files"]}
    on_disk = {p.name for p in MONITORING.iterdir()} - {"kustomization.yaml", "aios-rules.yml"}
    assert listed == on_disk
    assert kustomization["configMapGenerator"][0]["options"]["labels"] == {"grafana_dashboard": "1"}


# --- Pods: security, resources, writable paths -------------------------------------------------
def test_every_pod_runs_as_the_images_non_root_user_without_an_api_token() -> None:
    uid, gid = (int(x) for x in _dockerfile_user().split(":"))
    assert uid != 0
    for workload in workloads():
        spec = pod_spec(workload)
        ctx = spec["securityContext"]
        assert ctx["runAsNonRoot"] is True and (ctx["runAsUser"], ctx["runAsGroup"]) == (uid, gid), workload
        assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        assert spec["serviceAccountName"] == "aios"


def _dockerfile_user() -> str:
    (user,) = [args for name, args in dockerfile_instructions() if name == "USER"]
    assert re.fullmatch(r"\d+:\d+", user), "USER must be numeric, or runAsNonRoot cannot verify it"
    return user


def test_every_container_drops_all_capabilities_on_a_read_only_root() -> None:
    for workload in workloads():
        for c in containers(pod_spec(workload)):
            ctx = c["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False, c["name"]
            assert ctx["readOnlyRootFilesystem"] is True, c["name"]
            assert ctx["capabilities"] == {"drop": ["ALL"]}, c["name"]


def test_the_service_account_is_granted_nothing() -> None:
    account = k8s_object("ServiceAccount", "aios")
    assert account["automountServiceAccountToken"] is False
    for binding in k8s_objects("RoleBinding") + k8s_objects("ClusterRoleBinding"):
        assert all(s.get("name") != "aios" for s in binding.get("subjects", [])), binding


def _quantity(value: str | int) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    text = str(value)
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def test_every_container_requests_and_limits_cpu_and_memory() -> None:
    for workload in workloads():
        for c in containers(pod_spec(workload)):
            requests, limits = c["resources"]["requests"], c["resources"]["limits"]
            for resource in ("cpu", "memory"):
                assert _quantity(requests[resource]) <= _quantity(limits[resource]), (c["name"], resource)


def _mounts(workload: dict[str, Any], c: dict[str, Any]) -> dict[str, str]:
    """mountPath -> volume kind, for a container."""
    volumes = {v["name"]: next(k for k in v if k != "name") for v in pod_spec(workload)["volumes"]}
    return {m["mountPath"]: volumes[m["name"]] for m in c.get("volumeMounts", [])}


def test_the_paths_the_app_writes_are_empty_dirs() -> None:
    # settings.py creates AIOS_VAR_DIR and PROMETHEUS_MULTIPROC_DIR; Python and libraries use /tmp.
    for workload in workloads():
        for c in containers(pod_spec(workload)):
            env = {**dockerfile_env(), **container_env(c)}
            writes = [env["PROMETHEUS_MULTIPROC_DIR"]]
            if c["name"] in APP_CONTAINERS:
                writes += [env["AIOS_VAR_DIR"], "/tmp"]
            mounts = _mounts(workload, c)
            for path in writes:
                under = [m for m in mounts if path == m or path.startswith(m.rstrip("/") + "/")]
                assert under and all(mounts[m] == "emptyDir" for m in under), (c["name"], path)


def test_the_worker_metrics_sidecar_reads_the_workers_metric_files() -> None:
    worker, sidecar = container("aios-worker", "worker"), container("aios-worker", "metrics")
    multiproc = configmap_data()["PROMETHEUS_MULTIPROC_DIR"]
    shared = {m["name"] for m in worker["volumeMounts"] if m["mountPath"] == multiproc}
    assert {m["name"] for m in sidecar["volumeMounts"] if m["mountPath"] == multiproc} == shared
    assert container_env(sidecar) == {
        "PROMETHEUS_MULTIPROC_DIR": multiproc,
        "AIOS_METRICS_TOKEN": secret_template()["AIOS_METRICS_TOKEN"],
    }, "the sidecar gets the token and the directory, and no other secret"


# --- Probes -------------------------------------------------------------------------------------
def _url_name(path: str) -> str:
    try:
        match = resolve(path)
    except Resolver404:
        pytest.fail(f"probe path {path} is not served by the Django URLconf")
    assert getattr(match.func, "login_required", True) is False, f"{path} requires a login: probes send none"
    return match.url_name or ""


def test_web_probes_point_at_the_health_views_the_urlconf_serves() -> None:
    web = container("aios-web", "web")
    assert _url_name(web["startupProbe"]["httpGet"]["path"]) == "healthz"
    assert _url_name(web["livenessProbe"]["httpGet"]["path"]) == "healthz"
    assert _url_name(web["readinessProbe"]["httpGet"]["path"]) == "readyz"
    assert resolve("/healthz").func is health.healthz and resolve("/readyz").func is health.readyz
    ports = {p["name"]: p["containerPort"] for p in web["ports"]}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert web[probe]["httpGet"]["port"] in ports
    assert ports["http"] == int(configmap_data()["PORT"]) == int(dockerfile_env()["PORT"])


def test_the_sidecar_probes_point_at_a_path_its_server_answers() -> None:
    from observability.metrics_server import make_app

    sidecar = container("aios-worker", "metrics")
    app = make_app(token="t", directory=str(ROOT))
    for probe in ("livenessProbe", "readinessProbe"):
        path = sidecar[probe]["httpGet"]["path"]
        statuses: list[str] = []
        app({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, lambda status, _headers, seen=statuses: seen.append(status))
        assert statuses == ["200 OK"], (probe, path)
    assert sidecar["livenessProbe"]["httpGet"]["port"] == sidecar["ports"][0]["name"]


def test_worker_and_beat_liveness_pings_their_own_celery_node() -> None:
    expected = {"worker": "celery@${HOSTNAME}", "beat": "celerybeat@${HOSTNAME}"}
    for name, node in expected.items():
        c = container(f"aios-{name}", name)
        for probe in ("startupProbe", "livenessProbe"):
            script = c[probe]["exec"]["command"][-1]
            assert "celery -A aios_site inspect ping" in script and f'--destination "{node}"' in script, (name, probe)
            assert c[probe]["timeoutSeconds"] >= 15  # the check itself starts a Celery client


# --- Commands --------------------------------------------------------------------------------
def _up(name: str) -> list[str]:
    return process_commands(python="python", host="h", port=1, worker_concurrency=1, beat_pidfile=Path("p"))[name]


def test_the_web_container_runs_the_images_command_which_is_up_s_web_process() -> None:
    assert argv(container("aios-web", "web")) == dockerfile_cmd()
    assert dockerfile_cmd()[-2:] == ["--host", "0.0.0.0"], "a container must listen on all interfaces"
    assert normalized(dockerfile_cmd()) == normalized(_up("web"))
    assert "command" not in compose()["services"]["web"], "compose's web should run the image's CMD"


def test_worker_and_beat_run_the_processes_up_runs_in_compose_and_kubernetes_alike() -> None:
    for name in ("worker", "beat"):
        k8s_command = argv(container(f"aios-{name}", name))
        assert k8s_command == compose()["services"][name]["command"], name
        assert normalized(k8s_command) == normalized(_up(name)), name


def test_migrations_run_once_per_release_in_a_job_and_the_others_wait_for_them() -> None:
    job = container("aios-migrate", "migrate")
    assert argv(job) == compose()["services"]["migrate"]["command"]
    assert "manage.py migrate --noinput" in argv(job)[-1] and "manage.py aios_seed" in argv(job)[-1]
    for workload in k8s_objects("Deployment"):
        for c in containers(pod_spec(workload)):
            assert "--noinput" not in " ".join(argv(c)), f"{c['name']} migrates: only the Job may"
    for name in ("aios-worker", "aios-beat"):
        (init,) = pod_spec(k8s_object("Deployment", name))["initContainers"]
        assert "python manage.py migrate --check" in argv(init)[-1], name
    assert "migrate" not in " ".join(dockerfile_cmd())


def test_beat_runs_exactly_once_recreated_and_never_autoscaled() -> None:
    beat = k8s_object("Deployment", "aios-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    assert all(h["spec"]["scaleTargetRef"]["name"] != "aios-beat" for h in k8s_objects("HorizontalPodAutoscaler"))
    beat_labels = beat["spec"]["selector"]["matchLabels"]
    for pdb in k8s_objects("PodDisruptionBudget"):
        assert pdb["spec"]["selector"]["matchLabels"] != beat_labels, "a PDB on one replica blocks node drains"


def test_web_and_workers_autoscale_and_keep_a_disruption_budget() -> None:
    scaled = {h["spec"]["scaleTargetRef"]["name"]: h["spec"] for h in k8s_objects("HorizontalPodAutoscaler")}
    assert set(scaled) == {"aios-web", "aios-worker"}
    for spec in scaled.values():
        assert spec["minReplicas"] >= 2 and spec["metrics"][0]["resource"]["name"] == "cpu"
    budgets = {p["metadata"]["name"]: p["spec"]["selector"]["matchLabels"] for p in k8s_objects("PodDisruptionBudget")}
    for name in ("aios-web", "aios-worker"):
        assert budgets[name] == k8s_object("Deployment", name)["spec"]["selector"]["matchLabels"]


# --- Environment ---------------------------------------------------------------------------------
def _names_the_app_reads() -> set[str]:
    """Upper-case string literals in the app's code: the names passed to env.*(), _secret(),
    os.environ and the provider registry's tables."""
    names: set[str] = set()
    for package in APP_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                literal = node.value if isinstance(node, ast.Constant) else None
                if isinstance(literal, str) and re.fullmatch(r"[A-Z][A-Z0-9_]{2,}", literal):
                    names.add(literal)
    return names


def _manifest_env_names() -> dict[str, str]:
    """Every env var name the manifests and compose set -> where."""
    names = dict.fromkeys(configmap_data(), "configmap.yaml")
    names.update(dict.fromkeys(secret_template(), "secret.example.yaml"))
    commented = re.findall(r"^\s*#\s*([A-Z][A-Z0-9_]+):", (K8S / "secret.example.yaml").read_text(), re.M)
    names.update(dict.fromkeys(commented, "secret.example.yaml (commented)"))
    for workload in workloads():
        for c in containers(pod_spec(workload)):
            names.update({item["name"]: f"{workload['metadata']['name']}/{c['name']}" for item in c.get("env", [])})
    for service, spec in compose()["services"].items():
        names.update(dict.fromkeys(spec.get("environment", {}), f"compose {service}"))
    return names


def _composition_only(name: str) -> bool:
    """A variable set only to be expanded into another, as POD_IP into ALLOWED_HOSTS."""
    values = [item.get("value", "") for w in workloads() for c in containers(pod_spec(w)) for item in c.get("env", [])]
    return any(f"$({name})" in value for value in values)


def test_every_env_var_the_manifests_set_is_one_the_app_reads() -> None:
    reads = _names_the_app_reads()
    postgres_image = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}  # compose's postgres service
    unknown = {
        name: where
        for name, where in _manifest_env_names().items()
        if name not in reads and name not in postgres_image and not _composition_only(name)
    }
    assert not unknown, f"set in the manifests, read nowhere in the app: {unknown}"


def test_the_secret_template_holds_placeholders_for_the_required_secrets_only() -> None:
    secrets = secret_template()
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "AIOS_METRICS_TOKEN"} <= set(secrets)
    assert all("CHANGE-ME" in value for value in secrets.values()), "placeholders only, never real values"
    secret_like = re.compile(r"KEY|PASSWORD|TOKEN|SECRET|DATABASE_URL|REDIS_URL|BROKER_URL|WEBHOOK")
    assert not [name for name in configmap_data() if secret_like.search(name)], "a secret in the ConfigMap"


def test_the_web_pods_own_ip_is_an_allowed_host_for_probes_and_scrapes() -> None:
    env = container_env(container("aios-web", "web"))
    hosts = env["ALLOWED_HOSTS"].split(",")
    assert [*configmap_data()["ALLOWED_HOSTS"].split(","), env["POD_IP"]] == hosts


def test_the_ingress_host_is_allowed_trusted_and_public() -> None:
    ingress = k8s_object("Ingress", "aios")
    config = configmap_data()
    for rule in ingress["spec"]["rules"]:
        host = rule["host"]
        assert host in config["ALLOWED_HOSTS"].split(",")
        assert f"https://{host}" in config["CSRF_TRUSTED_ORIGINS"].split(",")
        assert config["AIOS_PUBLIC_URL"] == f"https://{host}"
        backend = rule["http"]["paths"][0]["backend"]["service"]
        service = k8s_object("Service", backend["name"])
        assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    assert config["AIOS_BEHIND_TLS_PROXY"] == "1"


# --- Network ------------------------------------------------------------------------------------
def _ingress_ports(policy: str) -> set[int]:
    rules = k8s_object("NetworkPolicy", policy)["spec"]["ingress"]
    return {p["port"] for rule in rules for p in rule["ports"]}


def test_network_policies_let_in_the_probed_and_scraped_ports_and_let_out_what_the_app_calls() -> None:
    assert k8s_object("NetworkPolicy", "aios-default-deny")["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
    }
    assert _ingress_ports("aios-web-ingress") == {p["containerPort"] for p in container("aios-web", "web")["ports"]}
    sidecar_ports = {p["containerPort"] for p in container("aios-worker", "metrics")["ports"]}
    assert _ingress_ports("aios-worker-metrics-ingress") == sidecar_ports
    egress = k8s_object("NetworkPolicy", "aios-egress")["spec"]["egress"]
    assert {53, 5432, 6379, 443} <= {p["port"] for rule in egress for p in rule["ports"]}


# --- Monitoring -------------------------------------------------------------------------------
def test_the_service_monitor_scrapes_metrics_on_web_and_worker_with_the_token() -> None:
    monitor = k8s_object("ServiceMonitor", "aios")
    components = monitor["spec"]["selector"]["matchExpressions"][0]["values"]
    services = [
        s for s in k8s_objects("Service") if s["metadata"]["labels"]["app.kubernetes.io/component"] in components
    ]
    assert {s["metadata"]["name"] for s in services} == {"aios-web", "aios-worker"}
    service_ports = {p["name"] for s in services for p in s["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in service_ports
        assert resolve(endpoint["path"]).func is obs_views.metrics
        assert endpoint["authorization"]["credentials"] == {"name": "aios-secrets", "key": "AIOS_METRICS_TOKEN"}
    assert "AIOS_METRICS_TOKEN" in secret_template()


def test_the_operator_and_plain_rule_files_hold_the_same_rules() -> None:
    plain = documents(MONITORING / "aios-rules.yml")[0]["groups"]
    assert plain == k8s_object("PrometheusRule", "aios")["spec"]["groups"]
    jobs = {job for expr in rule_expressions() for job in re.findall(r'job=~?"([^"]+)"', expr)}
    assert {j for alternatives in jobs for j in alternatives.split("|")} == {"aios-web", "aios-worker"}


def test_the_promql_name_extractor_finds_metrics_not_functions_labels_or_keywords() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, kind) "
        '(rate(x_seconds_bucket{kind="llm", a=~"$agent"}[$__rate_interval])))'
        ' / on (kind) group_left y_total offset 1d > 1e3 and absent(up{job="w"} == 1)'
    )
    assert promql_metric_names(expr) == {"x_seconds_bucket", "y_total", "up"}


def _exported_metric_names(text: str) -> set[str]:
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
    return names


def _record_spans() -> None:
    """Spans that make every labelled metric family appear: priced and unpriced LLM calls."""
    ModelPrice.objects.create(provider="openai", pattern="deploy-test-model", input_per_mtok=Decimal("1"),
                              output_per_mtok=Decimal("2"), effective_from="2020-01-01T00:00:00Z")  # fmt: skip
    prices.invalidate()
    obs = get_observability()
    with obs.trace_span("agent.action", agent_name="deploy", kind="action"):
        for model in ("deploy-test-model", "deploy-test-unpriced-model"):
            with obs.trace_span("llm", kind="llm") as span:
                span.set_tokens(input_tokens=100, output_tokens=10, model=model, provider="openai")
    flushed()


@pytest.mark.django_db(transaction=True)
@override_settings(AIOS_METRICS_TOKEN="deploy-scrape")
def test_every_metric_the_alerts_and_the_dashboard_use_is_exported_by_the_app() -> None:
    _record_spans()
    resp = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer deploy-scrape")
    assert resp.status_code == 200
    exported = _exported_metric_names(resp.content.decode())
    for where, used in (("alert rules", set().union(*map(promql_metric_names, rule_expressions()))),
                        ("Grafana dashboard", dashboard_metric_names())):  # fmt: skip
        app_metrics = {name for name in used if name not in EXTERNAL_METRICS}
        assert app_metrics, where
        missing = app_metrics - exported
        assert not missing, f"the {where} use metrics /metrics does not export: {sorted(missing)}"


# --- docker-compose.yml and the Dockerfile ---------------------------------------------------------
def test_compose_starts_web_worker_and_beat_after_a_one_shot_migrate() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", "migrate", "web", "worker", "beat"}
    healthy = {"condition": "service_healthy"}
    assert services["migrate"]["depends_on"] == {"postgres": healthy, "redis": healthy}
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"] == {
            "postgres": healthy, "redis": healthy, "migrate": {"condition": "service_completed_successfully"},
        }, name  # fmt: skip
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"], name


def test_compose_checks_worker_and_beat_the_way_kubernetes_does() -> None:
    services = compose()["services"]
    for name in ("worker", "beat"):
        k8s_script = container(f"aios-{name}", name)["livenessProbe"]["exec"]["command"][-1]
        # `$$` is compose's escape for a literal `$`, resolved by the container's shell.
        assert services[name]["healthcheck"]["test"] == ["CMD-SHELL", k8s_script.replace("$", "$$")], name
    assert "healthcheck" not in services["web"], "web uses the image's HEALTHCHECK"
    assert "127.0.0.1" in services["web"]["environment"]["ALLOWED_HOSTS"].split(","), "the HEALTHCHECK's Host"


def test_the_dockerfile_builds_in_two_stages_with_the_cpu_torch_and_a_healthcheck() -> None:
    instructions = dockerfile_instructions()
    assert [args.split()[-1] for name, args in instructions if name == "FROM"] == ["build", "runtime"]
    (install,) = [args for name, args in instructions if name == "RUN" and "torch" in args]
    pinned = re.search(r"^torch==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)
    assert pinned, "torch is pinned in requirements.txt"
    torch_step = re.search(r"pip install ([^&]*torch==\S+)", install)
    assert torch_step, install
    words = torch_step.group(1).split()
    assert words[words.index("--index-url") + 1] == "https://download.pytorch.org/whl/cpu"
    assert "--no-deps" in words and f"torch=={pinned.group(1)}" in words
    assert install.index("torch==") < install.index("-r requirements.txt"), "the CPU torch must come first"
    (check,) = [args for name, args in instructions if name == "HEALTHCHECK"]
    assert "/healthz" in check and _url_name("/healthz") == "healthz"
    _dockerfile_user()
