from django.urls import path

from evaluation import views
from evaluation.abtests import views as abtest_views

urlpatterns = [
    path("evaluation/", views.home, name="evaluation-home"),
    path("evaluation/datasets/upload/", views.dataset_upload, name="evaluation-dataset-upload"),
    path("evaluation/datasets/<int:pk>/", views.dataset_detail, name="evaluation-dataset-detail"),
    path("evaluation/evaluators/new/", views.evaluator_create, name="evaluation-evaluator-create"),
    path("evaluation/runs/new/", views.run_create, name="evaluation-run-create"),
    path("evaluation/runs/compare/", views.run_compare, name="evaluation-run-compare"),
    path("evaluation/runs/<int:pk>/", views.run_detail, name="evaluation-run-detail"),
    path("evaluation/runs/<int:pk>/progress/", views.run_progress, name="evaluation-run-progress"),
    path("evaluation/runs/<int:pk>/cancel/", views.run_cancel, name="evaluation-run-cancel"),
    path("evaluation/queues/<int:pk>/", views.queue_detail, name="evaluation-queue-detail"),
    path("evaluation/queues/<int:pk>/next/", views.queue_next, name="evaluation-queue-next"),
    path("evaluation/queues/<int:pk>/export.csv", views.queue_export, name="evaluation-queue-export"),
    path("evaluation/items/<int:pk>/", views.item_review, name="evaluation-item-review"),
    path("evaluation/items/<int:pk>/skip/", views.item_skip, name="evaluation-item-skip"),
    path("evaluation/abtests/", abtest_views.abtest_list, name="evaluation-abtest-list"),
    path("evaluation/abtests/new/", abtest_views.abtest_create, name="evaluation-abtest-create"),
    path("evaluation/abtests/<uuid:pk>/", abtest_views.abtest_detail, name="evaluation-abtest-detail"),
    path("evaluation/abtests/<uuid:pk>/start/", abtest_views.abtest_start, name="evaluation-abtest-start"),
    path("evaluation/abtests/<uuid:pk>/stop/", abtest_views.abtest_stop, name="evaluation-abtest-stop"),
]
