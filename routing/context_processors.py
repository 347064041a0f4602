"""Template context every page gets from routing: which tiers the simulator serves, so the base
layout can say on every page that results shown there may be synthetic."""

from __future__ import annotations

import logging
from typing import Any

from django.db import DatabaseError
from django.http import HttpRequest

from routing import catalog

log = logging.getLogger(__name__)


def simulation(request: HttpRequest) -> dict[str, Any]:
    """`simulated_tiers`: the enabled tiers served by a `sim/` model. Read from the in-process
    catalog (reloaded only when an admin changes it), so a page pays microseconds for it."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    try:
        tiers = {e.tier for e in catalog.available_endpoints() if e.simulated}
    except DatabaseError:  # an error page must still render
        log.warning("could not read the model catalog for the simulator banner", exc_info=True)
        return {}
    return {"simulated_tiers": [t for t in catalog.TIERS if t in tiers]}
