"""ApprovalRequest.public_id: the UUID that names a request in URLs, the API and the audit log."""

import uuid

from django.db import migrations, models


def fill_public_ids(apps, schema_editor):
    ApprovalRequest = apps.get_model("agents", "ApprovalRequest")
    for pk in ApprovalRequest.objects.filter(public_id__isnull=True).values_list("pk", flat=True):
        ApprovalRequest.objects.filter(pk=pk).update(public_id=uuid.uuid4())


class Migration(migrations.Migration):
    dependencies = [("agents", "0002_approvals")]

    operations = [
        migrations.AddField(
            model_name="approvalrequest", name="public_id", field=models.UUIDField(editable=False, null=True)
        ),
        migrations.RunPython(fill_public_ids, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="approvalrequest",
            name="public_id",
            field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True),
        ),
    ]
