"""The "Reviewers" group, holding the permission to review books (``manage.py make_reviewer`` fills it)."""

from __future__ import annotations

from typing import Any

from django.db import migrations

GROUP = "Reviewers"
CODENAME = "review_books"


def create_reviewers_group(apps: Any, schema_editor: Any) -> None:
    # Permissions are normally made after all migrations (post_migrate); make this one now
    # so the group can hold it. post_migrate then finds it already there.
    content_type_model = apps.get_model("contenttypes", "ContentType")
    permission_model = apps.get_model("auth", "Permission")
    group_model = apps.get_model("auth", "Group")
    content_type, _ = content_type_model.objects.get_or_create(app_label="reviews", model="bookreview")
    permission, _ = permission_model.objects.get_or_create(
        codename=CODENAME,
        content_type=content_type,
        defaults={"name": "Can review books before they are shared"},
    )
    group, _ = group_model.objects.get_or_create(name=GROUP)
    group.permissions.add(permission)


def remove_reviewers_group(apps: Any, schema_editor: Any) -> None:
    apps.get_model("auth", "Group").objects.filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("reviews", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_reviewers_group, remove_reviewers_group)]
