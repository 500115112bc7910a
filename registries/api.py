"""REST API of the registries app."""


def register(router) -> None:
    """Add this app's viewsets to the shared router."""
