"""OpenAPI description of Ferry's own authentication (bearer API tokens)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "controlplane.auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token from the Tokens page: "
            "`Authorization: Bearer fy_...`. Shown once when created.",
        }
