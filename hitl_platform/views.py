from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.views import defaults

from hitl_platform.roles import Role


@login_required
def home(request):
    """Send each person to where their role works: the console, the review queue, or the API docs."""
    user = request.user
    if user.is_staff:
        return redirect("admin:index")
    if user.groups.filter(name__in=[Role.REVIEWER, Role.ADJUDICATOR]).exists():
        try:
            return redirect(reverse("reviews:queue"))
        except NoReverseMatch:
            pass
    return render(request, "home.html")


def not_found(request, exception):
    """API clients get JSON for an unknown URL, like every other API error; people get the HTML page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)
