"""Dashboard panels that higher apps add to the overview, without observability importing them.

An app registers a panel from its AppConfig.ready():

    register_panel(Panel(key="eval-scores", title="Evaluation scores",
                         columns=[Column("Evaluator"), Column("Mean", "score")], read=my_read))

`read(since, until)` returns the rows (lists of cell values) for the window. The overview draws
every panel as a table, in the snapshot (page load, reconnect) and about every ten seconds in
the live feed. A failing panel shows its error state; it never breaks the page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

log = logging.getLogger(__name__)

# How a column's cells are formatted in the browser (static/js/format.js).
FORMATS = ("text", "int", "score", "pct", "usd", "ms")


@dataclass(frozen=True)
class Column:
    label: str
    format: str = "text"

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"column format must be one of {FORMATS}, not {self.format!r}")


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    columns: Sequence[Column]
    read: Callable[[datetime, datetime], list[list[Any]]]
    empty: str = "Nothing in this window."
    note: str = ""
    order: int = field(default=100)


_panels: dict[str, Panel] = {}


def register_panel(panel: Panel) -> None:
    _panels[panel.key] = panel


def panels_data(*, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Every registered panel with its rows for [since, until]."""
    out = []
    for panel in sorted(_panels.values(), key=lambda p: (p.order, p.key)):
        entry: dict[str, Any] = {
            "key": panel.key, "title": panel.title, "empty": panel.empty, "note": panel.note,
            "columns": [{"label": c.label, "format": c.format} for c in panel.columns], "rows": [], "error": None,
        }  # fmt: skip
        try:
            entry["rows"] = [list(row) for row in panel.read(since, until)]
        except Exception:
            log.exception("dashboard panel %s failed", panel.key)
            entry["error"] = "This panel could not be read."
        out.append(entry)
    return out
