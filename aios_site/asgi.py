"""ASGI entry point: HTTP through Django, websockets through Channels.

Websockets pass the allowed-hosts origin check and session authentication before any
consumer sees them; each consumer then checks the user's role (aios_core.live).
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aios_site.settings")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()  # set up Django before importing consumers

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from aios_site.tokens import gateway_authenticate  # noqa: E402
from aios_site.ws_urls import websocket_urlpatterns  # noqa: E402
from routing.gateway import GatewayApp  # noqa: E402

application = ProtocolTypeRouter(
    {
        # The OpenAI-compatible gateway answers /v1/chat/completions and /v1/models itself (its
        # latency budget is a few ms); everything else goes to Django.
        "http": GatewayApp(django_asgi_app, authenticate=gateway_authenticate),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
