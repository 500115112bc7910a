"""Registry notifications: the events envelope a registry POSTs to Ferry.

The registry (config `notifications.endpoints`) sends
`application/vnd.docker.distribution.events.v1+json` envelopes with a Bearer
token Ferry generated for it. Each manifest push, pull or delete becomes one
RegistryEvent row; blob-level events are skipped (a pull of one image is one
manifest event plus one per layer: counting manifests gives pulls per
repository, and blob bytes come from the access-log ground truth instead).
Rows are unique per (registry, event id), so the registry's retries are safe.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .models import Registry, RegistryEvent

ENVELOPE_TYPE = "application/vnd.docker.distribution.events.v1+json"
ACTIONS = ("push", "pull", "delete", "mount")
MANIFEST_TYPES = frozenset(
    {
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    }
)
_FRACTION = re.compile(r"(\.\d{6})\d+")  # Go sends nanoseconds; Python takes micro


class EnvelopeError(ValueError):
    """The body is not an events envelope we understand."""


@dataclass(frozen=True)
class StoreOutcome:
    received: int
    stored: int  # new rows (repeats of an event id are not stored twice)
    skipped: int  # blob-level or unknown events


def token_matches(registry: Registry | None, header: str) -> bool:
    """`Authorization: Bearer <notify_token>`, compared in constant time."""
    scheme, _, given = (header or "").partition(" ")
    expected = registry.notify_token if registry is not None else ""
    # Compare even when unknown/empty so timing says nothing about either.
    matches = hmac.compare_digest(given.strip().encode(), (expected or "\0").encode())
    return scheme.lower() == "bearer" and bool(expected) and matches


def _timestamp(text: str):
    value = parse_datetime(_FRACTION.sub(r"\1", text or ""))
    if value is None:
        return timezone.now()
    return value if timezone.is_aware(value) else timezone.make_aware(value)


def _is_manifest_event(event: dict) -> bool:
    target = event.get("target") or {}
    return target.get("mediaType") in MANIFEST_TYPES or bool(target.get("tag"))


def _row(registry: Registry, event: dict) -> RegistryEvent:
    target = event.get("target") or {}
    size = target.get("size", target.get("length"))
    return RegistryEvent(
        registry=registry,
        event_id=str(event["id"])[:100],
        at=_timestamp(event.get("timestamp", "")),
        action=event["action"],
        repository=str(target.get("repository", ""))[:300],
        tag=str(target.get("tag", ""))[:200],
        digest=str(target.get("digest", ""))[:100],
        media_type=str(target.get("mediaType", ""))[:200],
        size=size if isinstance(size, int) else None,
        actor=str((event.get("actor") or {}).get("name", ""))[:150],
    )


def events_store(registry: Registry, envelope: object) -> StoreOutcome:
    """Store the manifest events of one envelope, once per event id."""
    if not isinstance(envelope, dict) or not isinstance(envelope.get("events"), list):
        raise EnvelopeError("expected an object with an 'events' list")
    rows = []
    for event in envelope["events"]:
        if not isinstance(event, dict) or not event.get("id"):
            raise EnvelopeError("every event needs an id")
        if event.get("action") in ACTIONS and _is_manifest_event(event):
            rows.append(_row(registry, event))
    ids = [row.event_id for row in rows]
    known = set(
        RegistryEvent.objects.filter(registry=registry, event_id__in=ids).values_list(
            "event_id", flat=True
        )
    )
    fresh = {row.event_id: row for row in rows if row.event_id not in known}
    RegistryEvent.objects.bulk_create(fresh.values(), ignore_conflicts=True)
    received = len(envelope["events"])
    return StoreOutcome(received, len(fresh), received - len(rows))
