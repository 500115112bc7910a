"""API token services: create (raw value returned once) and revoke.

Only the sha256 of a token is stored; the raw value exists in the return
value of `token_create` and nowhere else. Pages and the API call these.
"""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from . import audit
from .auth import has_role
from .models import ApiToken, Role, hash_token

PREFIX_LENGTH = 8


@transaction.atomic
def token_create(user, name: str, via: str = "ui") -> tuple[ApiToken, str]:
    """Create a token for `user`; return it with the raw value (shown once)."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": _("Give the token a name.")})
    if len(name) > ApiToken._meta.get_field("name").max_length:
        raise ValidationError({"name": _("The name is too long.")})
    raw = ApiToken.new_raw()
    token = ApiToken.objects.create(
        user=user, name=name, prefix=raw[:PREFIX_LENGTH], token_hash=hash_token(raw)
    )
    audit.record(
        user,
        "create",
        token,
        {"name": [None, name], "prefix": [None, token.prefix]},
        via,
    )
    return token, raw


@transaction.atomic
def token_revoke(user, token_id: int, via: str = "ui") -> ApiToken:
    """Revoke one of `user`'s tokens (admins may revoke anyone's).

    Revoking an already revoked token changes nothing and records nothing.
    """
    token = ApiToken.objects.select_for_update().filter(pk=token_id).first()
    if token is None:
        raise ApiToken.DoesNotExist(_("No such token."))
    if token.user_id != user.pk and not has_role(user, Role.ADMIN):
        raise PermissionDenied(_("You can only revoke your own tokens."))
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit.record(
            user,
            "revoke",
            token,
            {"revoked_at": [None, token.revoked_at.isoformat()]},
            via,
        )
    return token


def tokens_of(user):
    """The user's tokens, newest first (active and revoked)."""
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-id")
