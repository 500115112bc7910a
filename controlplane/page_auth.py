"""Role checks for pages: the same `has_role` rule the API uses.

Pages are login-only already (LoginRequiredMiddleware); these decorators add
the role a page or an action needs and answer 403 otherwise.
"""

from functools import wraps

from django.core.exceptions import PermissionDenied

from .auth import has_role
from .models import Role


def role_required(role: Role):
    """Decorate a view so that users below `role` get 403 (GET and POST alike)."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not has_role(request.user, role):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


operator_required = role_required(Role.OPERATOR)
admin_required = role_required(Role.ADMIN)
