"""The containers' own commands, started with the environment kubelet would build from k8s/
(ConfigMap, Secret template, downward API), pass their own probes: web's /healthz and
/readyz with the pod IP as Host, its /metrics behind the token, the worker's and beat's
`celery inspect ping` against their own node, the worker sidecar's scrape. Only what a pod
gets from its volumes and managed services differs: the database, Redis, the emptyDir paths
and the listening ports."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.helpers import POD_IP, ROOT, argv, configmap_data, container, container_env, secret_template
from tests.helpers import database_url

# The test run's own settings, which a pod gets from the manifests instead.
_NOT_INHERITED = {"DEBUG", "AIOS_LOCAL_HTTP", "ALLOWED_HOSTS", "SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE"}
TOKEN = secret_template()["AIOS_METRICS_TOKEN"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pod_env(spec: dict[str, Any], volumes: Path, **overrides: str) -> dict[str, str]:
    """The container's manifest environment; the database, Redis and emptyDir paths of this test run."""
    base = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    for directory in ("var", "prometheus"):
        (volumes / directory).mkdir(parents=True, exist_ok=True)
    return {
        **base,
        **container_env(spec),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # the image's /venv/bin
        "DATABASE_URL": database_url(),
        "REDIS_URL": os.environ["REDIS_URL"],
        "AIOS_VAR_DIR": str(volumes / "var"),
        "PROMETHEUS_MULTIPROC_DIR": str(volumes / "prometheus"),
        **overrides,
    }


def _with_port(command: list[str], port: int) -> list[str]:
    i = command.index("--port")
    return [*command[: i + 1], str(port), *command[i + 2 :]]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def get(port: int, path: str, host: str, **headers: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request("GET", path, headers={"Host": host, **headers})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _wait_for_http(proc: subprocess.Popen[bytes], port: int, path: str, host: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the container's command exited with {proc.returncode}"
        try:
            if get(port, path, host)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    pytest.fail(f"{path} did not answer 200 in time")


def run_probe(spec: dict[str, Any], probe: str, env: dict[str, str], *, hostname: str) -> int:
    """Run an exec probe as kubelet does: in the container's environment, where HOSTNAME is the pod name."""
    command = spec[probe]["exec"]["command"]
    timeout = spec[probe]["timeoutSeconds"]
    return subprocess.run(command, env={**env, "HOSTNAME": hostname}, cwd=ROOT, timeout=timeout, check=False).returncode


def _wait_for_probe(proc: subprocess.Popen[bytes], spec: dict[str, Any], env: dict[str, str]) -> None:
    """What the startupProbe does: retry until the first success."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the container's command exited with {proc.returncode}"
        if run_probe(spec, "startupProbe", env, hostname=socket.gethostname()) == 0:
            return
        time.sleep(1)
    pytest.fail(f"{spec['name']} never passed its startup probe")


# --- web ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def web(django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The web container's command on a free port (started once for the module)."""
    spec = container("aios-web", "web")
    port = _free_port()
    with django_db_blocker.unblock():
        env = pod_env(spec, tmp_path_factory.mktemp("web"), PORT=str(port))
    proc = subprocess.Popen(argv(spec), env=env, cwd=ROOT)
    try:
        _wait_for_http(proc, port, "/healthz", f"{POD_IP}:{port}")
        yield port
    finally:
        _stop(proc)


def test_the_web_container_passes_its_probes_with_the_pod_ip_as_host(web: int) -> None:
    pod = f"{POD_IP}:{web}"  # kubelet's Host header
    spec = container("aios-web", "web")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        status, body = get(web, spec[probe]["httpGet"]["path"], pod)
        assert status == 200, (probe, body[:300])


def test_the_web_container_refuses_hosts_it_does_not_serve(web: int) -> None:
    public = configmap_data()["ALLOWED_HOSTS"].split(",")[0]
    assert get(web, "/healthz", public)[0] == 200
    assert get(web, "/healthz", "attacker.example")[0] == 400


def test_the_web_container_redirects_to_https_unless_the_proxy_says_https(web: int) -> None:
    public = configmap_data()["ALLOWED_HOSTS"].split(",")[0]
    assert get(web, "/accounts/login/", public)[0] == 301
    assert get(web, "/accounts/login/", public, **{"X-Forwarded-Proto": "https"})[0] == 200


def test_prometheus_scrapes_the_web_container_with_the_token_from_the_secret(web: int) -> None:
    pod = f"{POD_IP}:{web}"
    assert get(web, "/metrics", pod)[0] == 401
    status, body = get(web, "/metrics", pod, Authorization=f"Bearer {TOKEN}")
    assert status == 200
    assert "aios_spans_dropped" in {f.name for f in text_string_to_metric_families(body.decode())}


# --- worker, its metrics sidecar, beat -----------------------------------------------------------
@pytest.fixture
def private_queue() -> Iterator[str]:
    """Worker and beat here use a queue of their own, so beat's periodic tasks never reach the
    session's shared test worker; emptied afterwards."""
    queue = f"{os.environ['AIOS_CELERY_QUEUE']}-deploy"
    yield queue
    from django.conf import settings
    from kombu import Connection

    with Connection(settings.CELERY_BROKER_URL) as conn:
        conn.default_channel.queue_purge(queue)


@pytest.mark.django_db(transaction=True)  # beat's scheduler writes its tables: flushed afterwards
def test_the_worker_and_beat_pass_their_liveness_probes_and_the_sidecar_exports_the_workers_metrics(
    tmp_path: Path, private_queue: str
) -> None:
    spec, sidecar, beat_spec = (
        container("aios-worker", "worker"),
        container("aios-worker", "metrics"),
        container("aios-beat", "beat"),
    )
    env = pod_env(spec, tmp_path / "worker", AIOS_CELERY_QUEUE=private_queue)
    beat_env = pod_env(beat_spec, tmp_path / "beat", AIOS_CELERY_QUEUE=private_queue)
    port = _free_port()
    procs = [
        worker := subprocess.Popen(argv(spec), env=env, cwd=ROOT),
        beat := subprocess.Popen(argv(beat_spec), env=beat_env, cwd=ROOT),
        # the sidecar shares the worker's PROMETHEUS_MULTIPROC_DIR, as the emptyDir in worker.yaml
        subprocess.Popen(_with_port(argv(sidecar), port), env=pod_env(sidecar, tmp_path / "worker"), cwd=ROOT),
    ]
    try:
        _wait_for_probe(worker, spec, env)
        _wait_for_probe(beat, beat_spec, beat_env)
        assert run_probe(spec, "livenessProbe", env, hostname=socket.gethostname()) == 0
        assert run_probe(beat_spec, "livenessProbe", beat_env, hostname=socket.gethostname()) == 0
        _assert_the_probe_pings_only_its_own_node(spec, env)
        _assert_the_sidecar_exports_the_workers_metrics(sidecar, port)
    finally:
        for proc in procs:
            _stop(proc)


def _assert_the_probe_pings_only_its_own_node(spec: dict[str, Any], env: dict[str, str]) -> None:
    """Another pod's name gets no answer (with a shorter reply timeout than the probe's)."""
    *head, script = spec["livenessProbe"]["exec"]["command"]
    quick = {**spec["livenessProbe"], "exec": {"command": [*head, script.replace("--timeout 10", "--timeout 2")]}}
    assert run_probe({**spec, "livenessProbe": quick}, "livenessProbe", env, hostname="another-pod") != 0


def _assert_the_sidecar_exports_the_workers_metrics(sidecar: dict[str, Any], port: int) -> None:
    pod = f"{POD_IP}:{port}"
    assert get(port, sidecar["livenessProbe"]["httpGet"]["path"], pod)[0] == 200
    assert get(port, "/metrics", pod)[0] == 401
    status, body = get(port, "/metrics", pod, Authorization=f"Bearer {TOKEN}")
    assert status == 200
    # The worker's own processes wrote these into the shared directory.
    assert "aios_spans_dropped" in {f.name for f in text_string_to_metric_families(body.decode())}


def test_the_wait_for_migrations_init_container_returns_once_the_database_is_migrated(
    django_db_setup: None, django_db_blocker: Any, tmp_path: Path
) -> None:
    spec = container("aios-worker", "wait-for-migrations")
    with django_db_blocker.unblock():
        env = pod_env(spec, tmp_path)
    done = subprocess.run(argv(spec), env=env, cwd=ROOT, timeout=120, check=False)
    assert done.returncode == 0
