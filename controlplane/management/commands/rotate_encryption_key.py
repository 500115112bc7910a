"""Re-encrypt every stored secret with the first key of FERRY_ENCRYPTION_KEYS.

Rotation: put the new key in front of the old one, run this command, then
drop the old key. Rows are rewritten with queryset.update(), so no signals
fire and no timestamps change.
"""

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction

from controlplane.fields import secret_field_names


def secrets_rotate() -> dict[str, int]:
    """Rewrite each non-empty secret; return the rows touched per model."""
    touched = {}
    for model in apps.get_models():
        fields = secret_field_names(model)
        if not fields:
            continue
        count = 0
        with transaction.atomic():
            rows = model._base_manager.select_for_update().values_list("pk", *fields)
            for pk, *values in rows.iterator():
                # Reading decrypted with any key; update() encrypts with the first.
                pairs = zip(fields, values, strict=True)
                data = {name: value for name, value in pairs if value}
                if data:
                    model._base_manager.filter(pk=pk).update(**data)
                    count += 1
        touched[model._meta.label] = count
    return touched


class Command(BaseCommand):
    help = "Re-encrypt all secrets with the first key of FERRY_ENCRYPTION_KEYS."

    def handle(self, *args, **options):
        touched = secrets_rotate()
        for label, count in sorted(touched.items()):
            self.stdout.write(f"{label}: {count} row(s) re-encrypted")
        total = sum(touched.values())
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {total} row(s)."))
