"""The login page (and the admin's login form) with the login rate limit.

A refused attempt answers 429 with a form error saying why and how long to
wait; the template stays registration/login.html.
"""

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.utils.translation import gettext_lazy as _

from .ratelimit import client_address, login_block, login_failed, login_succeeded

RATE_LIMITED = "rate_limited"
BLOCK_MESSAGES = {
    "user": _(
        "Too many failed log-in attempts for this user from your "
        "address. Wait %(minutes)d minute(s) and try again."
    ),
    "address": _(
        "Too many failed log-in attempts from your address. "
        "Wait %(minutes)d minute(s) and try again."
    ),
}


class RateLimitedFormMixin:
    """Refuse before authenticating when the pair is blocked; count failures."""

    def clean(self):
        username = self.data.get("username", "")
        address = client_address(self.request)
        block = login_block(username, address)
        if block is not None:
            minutes = max(1, round(settings.FERRY_LOGIN_WINDOW / 60))
            raise ValidationError(
                BLOCK_MESSAGES[block], code=RATE_LIMITED, params={"minutes": minutes}
            )
        try:
            cleaned = super().clean()
        except ValidationError:
            login_failed(username, address)
            raise
        # An empty field skips authentication: that is not a success.
        if self.get_user() is not None:
            login_succeeded(username, address)
        return cleaned


class RateLimitedAuthenticationForm(RateLimitedFormMixin, AuthenticationForm):
    pass


class RateLimitedAdminAuthenticationForm(RateLimitedFormMixin, AdminAuthenticationForm):
    pass


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    authentication_form = RateLimitedAuthenticationForm

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.has_error(NON_FIELD_ERRORS, RATE_LIMITED):
            response.status_code = 429
        return response
