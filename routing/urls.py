from django.urls import path

from routing import views

urlpatterns = [
    path("routing/", views.home, name="routing-home"),
    path("cache/", views.cache, name="routing-cache"),
    path("cache/purge/", views.cache_purge, name="routing-cache-purge"),
    path("cache/stats.json", views.cache_stats, name="routing-cache-stats"),
]
