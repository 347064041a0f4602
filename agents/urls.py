from django.urls import path

from agents import views

urlpatterns = [
    path("runs/", views.home, name="agents-home"),
    path("approvals/", views.approvals, name="agents-approvals"),
]
