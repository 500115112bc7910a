"""REST API of the deployments app."""


def register(router) -> None:
    """Add this app's viewsets to the shared router."""
