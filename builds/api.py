"""REST API of the builds app."""


def register(router) -> None:
    """Add this app's viewsets to the shared router."""
