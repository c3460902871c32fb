from rest_framework.permissions import BasePermission


class RolePermission(BasePermission):
    """Declares, per HTTP method, the Django permissions a view needs (``required_permissions``).

    A method that a view implements but does not list is refused, so a new endpoint is closed until someone
    opens it. A method the view does not implement at all is let through to DRF, which answers 405. HEAD is GET;
    OPTIONS (which describes the endpoint) is open to whoever may use any of its methods.
    """

    def has_permission(self, request, view) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        required: dict[str, tuple[str, ...]] = getattr(view, "required_permissions", {})
        if request.method == "OPTIONS":
            return any(request.user.has_perms(permissions) for permissions in required.values())
        method = "GET" if request.method == "HEAD" else request.method
        if method not in required:
            return not hasattr(view, request.method.lower())
        return request.user.has_perms(required[method])
