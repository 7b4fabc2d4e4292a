from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from campaigns.models import ApiToken
from campaigns.organisations import switch_organisation


@login_required
def tokens_page(request: HttpRequest) -> HttpResponse:
    """Create and revoke the user's API tokens; a new key is shown once."""
    new_key = None
    if request.method == "POST":
        if "revoke" in request.POST:
            ApiToken.objects.filter(
                user_id=int(request.user.pk or 0), pk=request.POST["revoke"]
            ).update(revoked_at=timezone.now())
            messages.success(request, "Token revoked.")
            return redirect("tokens")
        name = request.POST.get("name", "").strip()[:100]
        if not name:
            messages.error(request, "Give the token a name.")
        else:
            _, new_key = ApiToken.issue(request.user, name)
    tokens = ApiToken.objects.filter(user_id=int(request.user.pk or 0)).order_by("-created_at")
    return render(request, "dashboard/tokens.html", {"tokens": tokens, "new_key": new_key})


@login_required
@require_POST
def switch_organisation_view(request: HttpRequest) -> HttpResponse:
    """Choose the organisation the dashboard shows ("" for all of the user's)."""
    raw = request.POST.get("organisation", "")
    if not switch_organisation(request, int(raw) if raw.isdigit() else None):
        messages.error(request, "You are not a member of that organisation.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "/"
    return redirect(target)
