"""Reading the production packaging (k8s/, docker-compose.yml, Dockerfile) as data."""

from __future__ import annotations

import json
import re
import shlex
import sys
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
MONITORING = K8S / "monitoring"
POD_IP = "10.11.12.13"  # what the downward API would give the pod in the tests


@cache
def documents(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*") if p.suffix in (".yaml", ".yml"))


def k8s_objects(kind: str | None = None) -> list[dict[str, Any]]:
    """Every Kubernetes object under k8s/ (the plain rules file and kustomizations excluded)."""
    found = []
    for path in manifest_files():
        for doc in documents(path):
            if "kind" in doc and doc["kind"] != "Kustomization" and kind in (None, doc["kind"]):
                found.append(doc)
    return found


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in k8s_objects(kind) if o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def workloads() -> list[dict[str, Any]]:
    return k8s_objects("Deployment") + k8s_objects("Job")


def containers(spec: dict[str, Any], *, init: bool = True) -> list[dict[str, Any]]:
    return [*(spec.get("initContainers", []) if init else []), *spec["containers"]]


def container(workload_name: str, container_name: str) -> dict[str, Any]:
    workload = next(w for w in workloads() if w["metadata"]["name"] == workload_name)
    return next(c for c in containers(pod_spec(workload)) if c["name"] == container_name)


def configmap_data() -> dict[str, str]:
    return k8s_object("ConfigMap", "aios-config")["data"]


def secret_template() -> dict[str, str]:
    return documents(K8S / "secret.example.yaml")[0]["stringData"]


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(NAME)` expansion: `$$` is a literal `$`, unknown names stay as written."""

    def one(m: re.Match[str]) -> str:
        return "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", one, value)


def container_env(spec: dict[str, Any]) -> dict[str, str]:
    """A container's environment as kubelet builds it: envFrom first, then `env` in order,
    each value expanded against what came before (pkg/kubelet makeEnvironmentVariables)."""
    sources = {("configMapRef", "aios-config"): configmap_data(), ("secretRef", "aios-secrets"): secret_template()}
    env: dict[str, str] = {}
    for ref in spec.get("envFrom", []):
        ((kind, target),) = ref.items()
        env.update(sources[(kind, target["name"])])
    for item in spec.get("env", []):
        if "value" in item:
            env[item["name"]] = expand(item["value"], env)
            continue
        source = item["valueFrom"]
        if "fieldRef" in source:
            assert source["fieldRef"]["fieldPath"] == "status.podIP", source
            env[item["name"]] = POD_IP
        elif "configMapKeyRef" in source:
            env[item["name"]] = configmap_data()[source["configMapKeyRef"]["key"]]
        else:
            env[item["name"]] = secret_template()[source["secretKeyRef"]["key"]]
    return env


def argv(spec: dict[str, Any]) -> list[str]:
    return [*spec.get("command", []), *spec.get("args", [])]


def compose() -> dict[str, Any]:
    return documents(ROOT / "docker-compose.yml")[0]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(m.group(1).upper(), m.group(2).strip()) for m in re.finditer(r"^(\w+)\s+(.*)$", joined, re.M)]


def dockerfile_cmd() -> list[str]:
    (cmd,) = [args for name, args in dockerfile_instructions() if name == "CMD"]
    return json.loads(cmd)


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for name, args in dockerfile_instructions():
        if name == "ENV":
            env.update(dict(pair.split("=", 1) for pair in shlex.split(args)))
    return env


# Options whose values differ between `make up`, compose and Kubernetes on purpose.
_VARYING = {"--host", "--port", "--workers", "--concurrency", "--pidfile"}


def normalized(command: list[str]) -> list[str]:
    """A process command without its interpreter path and per-deployment options: `/venv/bin/python
    -m celery ... --concurrency 4` and `celery ... --concurrency 2` compare equal, and so do
    `--port 8000` and no `--port` (the server then reads PORT)."""
    words = list(command)
    if words[0] == sys.executable or Path(words[0]).name.startswith("python"):
        words[0] = "python"
    if words[:3] == ["python", "-m", "celery"]:
        words = ["celery", *words[3:]]
    out: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word in _VARYING:
            skip = True
        else:
            out.append(word)
    return out


# --- PromQL ------------------------------------------------------------------------------------
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or", "unless"}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are neither functions, keywords,
    label names (in `{...}` or `by (...)`), durations nor Grafana variables."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for m in re.finditer(r"(?<![\w.$])[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        if m.group(0) in _KEYWORDS or expr[m.end() :].lstrip().startswith("("):
            continue
        names.add(m.group(0))
    return names


def rule_expressions() -> list[str]:
    exprs = []
    for path in (MONITORING / "aios-rules.yml", MONITORING / "prometheusrule.yaml"):
        doc = documents(path)[0]
        for group in doc.get("groups") or doc["spec"]["groups"]:
            exprs += [rule["expr"] for rule in group["rules"]]
    return exprs


def dashboard() -> dict[str, Any]:
    return json.loads((MONITORING / "grafana-dashboard.json").read_text())


def dashboard_metric_names() -> set[str]:
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                names.update(promql_metric_names(node["expr"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str):
            names.update(re.findall(r"label_values\(\s*([a-zA-Z_:][\w:]*)\s*,", node))

    walk(dashboard())
    return names
