from django.contrib import admin


class GovernanceAdminSite(admin.AdminSite):
    """The compliance officers' console."""

    site_header = "hitl_platform governance console"
    site_title = "hitl_platform governance"
    index_title = "Governance"
