from django.urls import path

from evaluation import views

urlpatterns = [
    path("evaluation/", views.home, name="evaluation-home"),
]
