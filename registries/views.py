"""Pages of the registries app, and the endpoint registries notify."""

import json

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .models import Registry
from .notifications import EnvelopeError, events_store, token_matches


# -- notifications from the registry containers ---------------------------------------
@csrf_exempt
@login_not_required
@require_POST
def notify(request: HttpRequest, registry_id: int) -> JsonResponse:
    """Store a registry's events; Bearer notify_token or 401 (also if unknown)."""
    registry = Registry.objects.filter(pk=registry_id).first()
    if not token_matches(registry, request.headers.get("Authorization", "")):
        response = JsonResponse({"detail": "Invalid or missing token."}, status=401)
        response["WWW-Authenticate"] = "Bearer"
        return response
    try:
        outcome = events_store(registry, json.loads(request.body or b"null"))
    except (ValueError, EnvelopeError) as exc:  # JSONDecodeError is a ValueError
        return JsonResponse({"detail": f"Not an events envelope: {exc}"}, status=400)
    return JsonResponse(
        {
            "received": outcome.received,
            "stored": outcome.stored,
            "skipped": outcome.skipped,
        }
    )
