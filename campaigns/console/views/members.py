"""Members of the working organisation: admins invite by email, set roles, remove."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from campaigns import members
from campaigns.console import access
from campaigns.console.forms import add_service_errors
from campaigns.models import Advertiser, Membership, Role


class InviteForm(forms.Form):
    email = forms.EmailField()
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MANAGER)


def _organisation(request: HttpRequest) -> Advertiser:
    organisation = access.working_organisation(request)
    if organisation is None:
        raise Http404("You are not a member of an organisation.")
    return organisation


@login_required
def member_list(request: HttpRequest) -> HttpResponse:
    organisation = _organisation(request)
    is_admin = access.is_admin(request.user, organisation)
    form = InviteForm()
    if request.method == "POST":
        access.require_admin(request.user, organisation)
        form = InviteForm(request.POST)
        if form.is_valid():
            try:
                members.invite_member(
                    organisation, email=form.cleaned_data["email"],
                    role=form.cleaned_data["role"], by=request.user,
                    base_url=request.build_absolute_uri("/").rstrip("/"),
                )  # fmt: skip
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, f"Invitation sent to {form.cleaned_data['email']}.")
                return redirect("console-members")
    rows = (
        Membership.objects.filter(advertiser=organisation)
        .select_related("user")
        .order_by("user__username")
    )
    return render(
        request,
        "console/members.html",
        {
            "organisation": organisation,
            "memberships": list(rows),
            "form": form,
            "is_admin": is_admin,
            "roles": Role.choices,
        },
    )


def _membership(request: HttpRequest, pk: int) -> Membership:
    organisation = _organisation(request)
    membership = get_object_or_404(
        Membership.objects.select_related("user"), pk=pk, advertiser=organisation
    )
    access.require_admin(request.user, organisation)
    return membership


@login_required
@require_POST
def member_role(request: HttpRequest, pk: int) -> HttpResponse:
    membership = _membership(request, pk)
    try:
        members.change_role(membership, role=request.POST.get("role", ""))
        messages.success(request, f"{membership.user.username} is now {request.POST['role']}.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("console-members")


@login_required
@require_POST
def member_remove(request: HttpRequest, pk: int) -> HttpResponse:
    membership = _membership(request, pk)
    try:
        members.remove_member(membership)
        messages.success(request, f"{membership.user.username} was removed.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("console-members")
