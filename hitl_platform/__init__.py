"""hitl_platform: the Django project. The Celery app is loaded when Django starts (``HitlPlatformConfig.ready``),
not on import, so ``hitl_platform.client`` can be imported by an ML engineer's script without Django."""
