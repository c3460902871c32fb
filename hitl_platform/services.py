"""Writes that belong to no single app: people and their roles."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.db import transaction

from hitl_platform.roles import CONSOLE_ROLES, Role


@transaction.atomic
def user_assign_roles(*, user: AbstractUser, roles: list[Role]) -> AbstractUser:
    """Put a user in exactly these role groups; console roles get admin access (is_staff), others lose it."""
    groups = list(Group.objects.filter(name__in=[role.value for role in roles]))
    if len(groups) != len(set(roles)):
        raise ValueError("Role groups are missing: run `manage.py migrate` first.")
    user.groups.remove(*Group.objects.filter(name__in=[role.value for role in Role]))
    user.groups.add(*groups)
    needs_console = bool(CONSOLE_ROLES & set(roles)) or user.is_superuser
    if user.is_staff != needs_console:
        user.is_staff = needs_console
        user.save(update_fields=["is_staff"])
    return user


@transaction.atomic
def user_create_with_roles(*, username: str, password: str, roles: list[Role], email: str = "") -> AbstractUser:
    user = get_user_model().objects.create_user(username=username, password=password, email=email)
    return user_assign_roles(user=user, roles=roles)
