from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse

from hitl_platform.roles import Role
from hitl_platform.selectors import user_is_ml_engineer


@login_required
def home(request):
    """Send each person to where their role works: the console, the review queue, or (ML engineers) their pages."""
    user = request.user
    if user.is_staff:
        return redirect("admin:index")
    if user.groups.filter(name__in=[Role.REVIEWER, Role.ADJUDICATOR]).exists():
        try:
            return redirect(reverse("reviews:queue"))
        except NoReverseMatch:
            pass
    return render(request, "home.html", {"is_ml_engineer": user_is_ml_engineer(user)})
