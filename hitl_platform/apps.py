from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig
from django.db.models.signals import post_migrate


class GovernanceAdminConfig(AdminConfig):
    """Makes the governance console the default admin site, so every app's admin.register lands there."""

    default_site = "hitl_platform.admin_site.GovernanceAdminSite"


class HitlPlatformConfig(AppConfig):
    """Project-wide pieces that belong to no single app: roles, the admin site, shared API plumbing."""

    name = "hitl_platform"
    label = "hitl_platform"
    verbose_name = "Platform"

    def ready(self) -> None:
        # The Celery app, so @shared_task binds to it in web processes as in workers (celery -A hitl_platform).
        from hitl_platform import celery  # noqa: F401
        from hitl_platform.roles import sync_role_permissions_after_migrate

        post_migrate.connect(sync_role_permissions_after_migrate, dispatch_uid="hitl_sync_roles")
