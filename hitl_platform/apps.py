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
        from hitl_platform.roles import sync_role_permissions_after_migrate

        post_migrate.connect(sync_role_permissions_after_migrate, dispatch_uid="hitl_sync_roles")
