"""Every websocket route, composed from the apps' consumers."""

from django.urls import path

from agents.consumers import RunsConsumer
from aios_site.consumers import NotificationConsumer
from evaluation.consumers import EvalRunConsumer
from observability.consumers import MetricsConsumer

websocket_urlpatterns = [
    path("ws/notifications/", NotificationConsumer.as_asgi()),
    path("ws/metrics/", MetricsConsumer.as_asgi()),
    path("ws/runs/", RunsConsumer.as_asgi()),
    path("ws/evaluation/runs/<uuid:run_id>/", EvalRunConsumer.as_asgi()),
]
