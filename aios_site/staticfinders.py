"""Serve Plotly.js from the installed `plotly` package (pinned in requirements.txt) as
`vendor/plotly.min.js`, instead of vendoring a 5 MB copy into the repository or using a CDN."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

STATIC_PATH = "vendor/plotly.min.js"


def _package_dir() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data"


class PlotlyFinder(BaseFinder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.storage = FileSystemStorage(location=str(_package_dir()))
        self.storage.prefix = "vendor"  # type: ignore[attr-defined]

    def find(self, path: str, find_all: bool = False, **kwargs: Any) -> str | list[str]:
        if path == STATIC_PATH:
            match = str(_package_dir() / "plotly.min.js")
            return [match] if find_all else match
        return [] if find_all else ""

    def list(self, ignore_patterns: Any) -> Any:
        yield "plotly.min.js", self.storage

    def check(self, **kwargs: Any) -> list[Any]:
        return []
