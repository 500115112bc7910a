"""Ferry's project package: settings, urls, the Celery app, auth and test bases."""

from .celery import app as celery_app

__all__ = ("celery_app",)
