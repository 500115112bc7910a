"""API for cross-cutting rows: audit events."""


def register(router) -> None:
    """Add audit viewsets to the shared router."""
