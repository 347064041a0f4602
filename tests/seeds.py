"""Re-create the data migrations' seed rows: transactional tests truncate every table, so a
test that needs the seeded catalog or prices (like a fresh installation has) asks for them."""

from __future__ import annotations

import importlib

from django.apps import apps


def ensure_seed_data() -> None:
    from observability.pricing import bump_price_version
    from routing import catalog

    importlib.import_module("observability.migrations.0003_seed_model_prices").seed(apps, None)
    importlib.import_module("observability.migrations.0006_seed_dated_model_prices").seed(apps, None)
    importlib.import_module("routing.migrations.0002_seed_catalog").seed(apps, None)
    bump_price_version()
    catalog.endpoints.bump()
    catalog.credentials.bump()
