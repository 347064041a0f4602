"""Create the role groups. Their permissions are synced here and again after every migrate
(aios_site.signals), because permissions are created only after the migrations that add models."""

from django.db import migrations


def create_roles(apps, schema_editor):  # type: ignore[no-untyped-def]
    from aios_site.roles import sync_role_groups

    sync_role_groups(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("aios_site", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
