"""WSGI entry point (management tools only; the server speaks ASGI, see asgi.py)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aios_site.settings")
application = get_wsgi_application()
