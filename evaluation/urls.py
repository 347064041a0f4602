from django.urls import path

from evaluation import views

# Objects are named by their public UUID (never the integer primary key).
urlpatterns = [
    path("evaluation/", views.home, name="evaluation-home"),
    # datasets
    path("evaluation/datasets/upload/", views.dataset_upload, name="evaluation-dataset-upload"),
    path("evaluation/datasets/<uuid:dataset_id>/", views.dataset_detail, name="evaluation-dataset-detail"),
    # evaluators
    path("evaluation/evaluators/new/", views.evaluator_create, name="evaluation-evaluator-create"),
    # eval runs
    path("evaluation/runs/new/", views.run_create, name="evaluation-run-create"),
    path("evaluation/runs/compare/", views.run_compare, name="evaluation-run-compare"),
    path("evaluation/runs/<uuid:run_id>/", views.run_detail, name="evaluation-run-detail"),
    path("evaluation/runs/<uuid:run_id>/progress/", views.run_progress, name="evaluation-run-progress"),
    path("evaluation/runs/<uuid:run_id>/cancel/", views.run_cancel, name="evaluation-run-cancel"),
    # annotation queues and their items
    path("evaluation/queues/<uuid:queue_id>/", views.queue_detail, name="evaluation-queue-detail"),
    path("evaluation/queues/<uuid:queue_id>/next/", views.queue_next, name="evaluation-queue-next"),
    path("evaluation/queues/<uuid:queue_id>/export.csv", views.queue_export, name="evaluation-queue-export"),
    path("evaluation/items/<uuid:item_id>/", views.item_review, name="evaluation-item-review"),
    path("evaluation/items/<uuid:item_id>/skip/", views.item_skip, name="evaluation-item-skip"),
]
