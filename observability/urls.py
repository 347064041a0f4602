from django.urls import path

from observability import views

urlpatterns = [
    path("", views.overview, name="obs-overview"),
    path("traces/", views.traces, name="obs-traces"),
]
