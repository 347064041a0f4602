from django.urls import path

from agents import views

urlpatterns = [
    # runs
    path("runs/", views.home, name="agents-home"),
    path("runs/<uuid:run_id>/", views.run_detail, name="agents-run-detail"),
    path("runs/<uuid:run_id>/cancel/", views.run_cancel, name="agents-run-cancel"),
    path("runs/<uuid:run_id>/retry/", views.run_retry, name="agents-run-retry"),
    # agents and their actions
    path("agents/", views.catalog, name="agents-catalog"),
    path("agents/<str:agent>/<str:action>/run/", views.run_new, name="agents-run-new"),
    # workflows
    path("workflows/", views.workflows, name="agents-workflows"),
    path("workflows/<uuid:workflow_id>/", views.workflow_detail, name="agents-workflow-detail"),
    path("workflows/<uuid:workflow_id>/cancel/", views.workflow_cancel, name="agents-workflow-cancel"),
    path("workflows/<uuid:workflow_id>/resume/", views.workflow_resume, name="agents-workflow-resume"),
    # schedules
    path("schedules/", views.schedules, name="agents-schedules"),
    path("schedules/<uuid:schedule_id>/edit/", views.schedule_edit, name="agents-schedule-edit"),
    path("schedules/<uuid:schedule_id>/pause/", views.schedule_pause, name="agents-schedule-pause"),
    path("schedules/<uuid:schedule_id>/resume/", views.schedule_resume, name="agents-schedule-resume"),
    path("schedules/<uuid:schedule_id>/delete/", views.schedule_delete, name="agents-schedule-delete"),
    # approvals (the approvals issue)
    path("approvals/", views.approvals, name="agents-approvals"),
    path("approvals/count/", views.approvals_count, name="agents-approvals-count"),
    path("approvals/<uuid:approval_id>/", views.approval_detail, name="agents-approval-detail"),
]
