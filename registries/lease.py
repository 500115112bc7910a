"""The apply lease: one apply (or reconcile pass, or delete) of a registry at a time.

A compare-and-set on the row (Registry.apply_lock and its expiry). It lasts
as long as an apply task may run (settings.FERRY_REGISTRY_APPLY_TIME_LIMIT,
which is also the task's Celery time limit) and the apply renews it between
steps (Keeper.keep), so it never runs out under a live apply, and the lease of
a killed apply frees at most that long after its last step.
"""

import datetime
import time
import uuid

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from .models import Registry

__all__ = ["ApplyBusy", "Keeper", "acquire_lease", "release_lease", "renew_lease"]


class ApplyBusy(Exception):
    """Another apply of this registry holds the lease."""


def lease_duration() -> datetime.timedelta:
    """As long as an apply task may run (its Celery time limit)."""
    return datetime.timedelta(seconds=settings.FERRY_REGISTRY_APPLY_TIME_LIMIT)


def acquire_lease(registry_id: int, wait: float) -> str | None:
    """A lease token, or None if another apply still holds it after `wait` s."""
    token = uuid.uuid4().hex
    deadline = time.monotonic() + wait
    while True:
        now = timezone.now()
        free = Q(apply_lock="") | Q(apply_lock_expires_at__lt=now)
        taken = (
            Registry.objects.filter(pk=registry_id)
            .filter(free)
            .update(apply_lock=token, apply_lock_expires_at=now + lease_duration())
        )
        if taken:
            return token
        if not Registry.objects.filter(pk=registry_id).exists():
            raise Registry.DoesNotExist(registry_id)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)


def release_lease(registry_id: int, token: str) -> None:
    Registry.objects.filter(pk=registry_id, apply_lock=token).update(
        apply_lock="", apply_lock_expires_at=None
    )


def renew_lease(registry_id: int, token: str) -> bool:
    """Extend a held lease by a full duration; False once another holds it."""
    until = timezone.now() + lease_duration()
    renewed = Registry.objects.filter(pk=registry_id, apply_lock=token).update(
        apply_lock_expires_at=until
    )
    return bool(renewed)


class Keeper:
    """Renews one apply's lease between its steps (`keep()`), at most every
    third of the duration, and stops the apply once the lease was lost."""

    def __init__(self, registry_id: int, token: str):
        self.registry_id, self.token = registry_id, token
        self.renewed = time.monotonic()

    def keep(self) -> None:
        every = lease_duration().total_seconds() / 3
        if time.monotonic() - self.renewed < every:
            return
        if not renew_lease(self.registry_id, self.token):
            # Ran out (a step outlasted the whole lease): another apply may
            # be acting now, so stop here; the journal undoes this one's steps.
            raise ApplyBusy(_("this apply lost its lease to another apply"))
        self.renewed = time.monotonic()
