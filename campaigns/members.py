"""Members of an organisation: invite by email, change a role, remove. Admins do this (the
views check it, as the API's `MemberSerializer` does); an organisation always keeps an admin."""

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from campaigns.models import Advertiser, Membership, Role


def _keeps_an_admin(membership: Membership, new_role: str | None) -> None:
    if membership.role != Role.ADMIN or new_role == Role.ADMIN:
        return
    others = (
        Membership.objects.filter(advertiser_id=membership.advertiser_id, role=Role.ADMIN)
        .exclude(pk=membership.pk)
        .exists()
    )
    if not others:
        raise ValidationError({"role": "The organisation needs at least one admin."})


def _username_for(email: str) -> str:
    base = email.split("@")[0][:140] or "member"
    name, n = base, 1
    users = get_user_model().objects
    while users.filter(username=name).exists():
        n += 1
        name = f"{base}{n}"
    return name


@transaction.atomic
def invite_member(
    advertiser: Advertiser, *, email: str, role: str, by: Any, base_url: str
) -> Membership:
    """Add the person with this email (a new account if they have none) and email them a
    link to the console, with one to choose a password when the account is new."""
    email = get_user_model().objects.normalize_email(email.strip())
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role: {role}."})
    users = get_user_model().objects
    user = users.filter(email__iexact=email).order_by("id").first()
    created = user is None
    if user is None:
        user = users.create_user(_username_for(email), email=email)
        user.set_unusable_password()
        user.save()
    if Membership.objects.filter(user=user, advertiser=advertiser).exists():
        raise ValidationError({"email": f"{email} is already a member."})
    membership = Membership.objects.create(user=user, advertiser=advertiser, role=role)
    inviter = getattr(by, "username", "An admin")
    lines = [
        f"{inviter} invited you to {advertiser.name} on adsplatform as {Role(role).label}.",
        f"Your user name: {user.username}",
    ]
    if created:
        token = default_token_generator.make_token(user)
        uid = urlsafe_base64_encode(force_bytes(user.pk))
        path = reverse("password_reset_confirm", args=[uid, token])
        lines.append(f"Choose a password: {base_url}{path}")
    lines.append(f"Then sign in: {base_url}{reverse('login')}")
    transaction.on_commit(
        lambda: send_mail(f"You are invited to {advertiser.name}", "\n".join(lines), None, [email])
    )
    return membership


@transaction.atomic
def change_role(membership: Membership, *, role: str) -> Membership:
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role: {role}."})
    locked = Membership.objects.select_for_update().get(pk=membership.pk)
    _keeps_an_admin(locked, role)
    locked.role = role
    locked.save(update_fields=["role"])
    return locked


@transaction.atomic
def remove_member(membership: Membership) -> None:
    locked = Membership.objects.select_for_update().get(pk=membership.pk)
    _keeps_an_admin(locked, None)
    locked.delete()
