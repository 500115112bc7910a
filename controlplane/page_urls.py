"""Login, logout and account pages; the audit log and API tokens."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.decorators.http import require_safe

from regions import views as region_views

from . import views
from .views_auth import LoginView, RateLimitedAdminAuthenticationForm

# The admin has its own login page: give it the same rate limit.
admin.site.login_form = RateLimitedAdminAuthenticationForm

# Read-only pages answer GET and HEAD only (405 otherwise).
urlpatterns = [
    path("login/", LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("audit/", require_safe(views.audit_log), name="audit_log"),
    path("tokens/", views.token_list, name="token_list"),
    path("tokens/<int:pk>/revoke/", views.token_revoke_view, name="token_revoke"),
    # Un-namespaced alias of regions:overview, for LOGIN_REDIRECT_URL = "overview".
    path("", require_safe(region_views.overview), name="overview"),
]
