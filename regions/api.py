"""REST API of the regions app."""


def register(router) -> None:
    """Add this app's viewsets to the shared router."""
