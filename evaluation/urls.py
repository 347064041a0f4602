from django.urls import include, path

from evaluation import views
from evaluation.abtests import views as abtest_views

# Objects are named by their public UUID (never the integer primary key).
pages = [
    path("", views.home, name="evaluation-home"),
    # datasets
    path("datasets/new/", views.dataset_create, name="evaluation-dataset-create"),
    path("datasets/upload/", views.dataset_upload, name="evaluation-dataset-upload"),
    path("datasets/<uuid:dataset_id>/", views.dataset_detail, name="evaluation-dataset-detail"),
    path("datasets/<uuid:dataset_id>/items/new/", views.dataset_item_add, name="evaluation-dataset-item-add"),
    path("datasets/items/<uuid:item_id>/edit/", views.dataset_item_edit, name="evaluation-dataset-item-edit"),
    path("datasets/items/<uuid:item_id>/delete/", views.dataset_item_delete, name="evaluation-dataset-item-delete"),
    # evaluators
    path("evaluators/new/", views.evaluator_create, name="evaluation-evaluator-create"),
    path("evaluators/<uuid:evaluator_id>/edit/", views.evaluator_edit, name="evaluation-evaluator-edit"),
    # eval runs
    path("runs/new/", views.run_create, name="evaluation-run-create"),
    path("runs/compare/", views.run_compare, name="evaluation-run-compare"),
    path("runs/<uuid:run_id>/", views.run_detail, name="evaluation-run-detail"),
    path("runs/<uuid:run_id>/progress/", views.run_progress, name="evaluation-run-progress"),
    path("runs/<uuid:run_id>/cancel/", views.run_cancel, name="evaluation-run-cancel"),
    # what the traces explorer and trace pages post their selections to
    path("selection/dataset/", views.selection_to_dataset, name="evaluation-selection-dataset"),
    path("selection/queue/", views.selection_to_queue, name="evaluation-selection-queue"),
    # continuous evaluation
    path("continuous/new/", views.continuous_create, name="evaluation-continuous-create"),
    path("continuous/<uuid:config_id>/edit/", views.continuous_edit, name="evaluation-continuous-edit"),
    # annotation queues and their items
    path("queues/new/", views.queue_create, name="evaluation-queue-create"),
    path("queues/<uuid:queue_id>/edit/", views.queue_edit, name="evaluation-queue-edit"),
    path("queues/<uuid:queue_id>/", views.queue_detail, name="evaluation-queue-detail"),
    path("queues/<uuid:queue_id>/next/", views.queue_next, name="evaluation-queue-next"),
    path("queues/<uuid:queue_id>/export.csv", views.queue_export, name="evaluation-queue-export"),
    path("items/<uuid:item_id>/", views.item_review, name="evaluation-item-review"),
    path("items/<uuid:item_id>/skip/", views.item_skip, name="evaluation-item-skip"),
    # A/B tests
    path("abtests/", abtest_views.abtest_list, name="evaluation-abtest-list"),
    path("abtests/new/", abtest_views.abtest_create, name="evaluation-abtest-create"),
    path("abtests/<uuid:pk>/", abtest_views.abtest_detail, name="evaluation-abtest-detail"),
    path("abtests/<uuid:pk>/start/", abtest_views.abtest_start, name="evaluation-abtest-start"),
    path("abtests/<uuid:pk>/stop/", abtest_views.abtest_stop, name="evaluation-abtest-stop"),
]

urlpatterns = [path("evaluation/", include(pages))]
