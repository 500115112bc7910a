"""Make sure an admin account exists, for the quick start.

The name and password come from FERRY_ADMIN_USER / FERRY_ADMIN_PASSWORD.
Without a password a random one is generated and printed once; it is not
stored anywhere but as Django's password hash.
"""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from controlplane import audit
from controlplane.audit import SECRET_MARK


def admin_ensure(username: str, password: str | None) -> tuple[object, str | None]:
    """Create or update the admin; return it and the password if generated."""
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user is None:
        generated = None if password else secrets.token_urlsafe(12)
        user = User.objects.create_superuser(username, "", password or generated)
        audit.record(None, "create", user, {"username": [None, username]}, "system")
        return user, generated
    changes = {}
    if password and not user.check_password(password):
        user.set_password(password)
        changes["password"] = SECRET_MARK
    for flag in ("is_superuser", "is_staff", "is_active"):
        if not getattr(user, flag):
            setattr(user, flag, True)
            changes[flag] = [False, True]
    if changes:
        user.save()
        audit.record(None, "update", user, changes, "system")
    return user, None


class Command(BaseCommand):
    help = "Create the admin account from FERRY_ADMIN_USER/FERRY_ADMIN_PASSWORD."

    @transaction.atomic
    def handle(self, *args, **options):
        username = os.environ.get("FERRY_ADMIN_USER") or "admin"
        password = os.environ.get("FERRY_ADMIN_PASSWORD") or None
        User = get_user_model()
        if not os.environ.get("FERRY_ADMIN_USER") and not password:
            existing = User.objects.filter(is_superuser=True).order_by("pk").first()
            if existing:
                self.stdout.write(f"Admin account exists: {existing.get_username()}")
                return
        user, generated = admin_ensure(username, password)
        if generated:
            self.stdout.write(
                self.style.WARNING(
                    f"Created admin '{username}' with password: {generated}\n"
                    "This password is shown only once; change it after logging in."
                )
            )
        else:
            self.stdout.write(f"Admin account ready: {user.get_username()}")
