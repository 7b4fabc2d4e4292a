"""Writes to creatives: upload, edit, the automatic checks and the review.

Every function takes the acting user (`by`) for the audit log (`campaigns.audit`, object type
"creative"). An edit sends the creative back to review; only approved, unarchived creatives
reach the serving snapshot, which `campaigns.signals` republishes after every commit.
"""

import hashlib
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import IO, Any

from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import transaction
from django.db.models.fields.files import FieldFile
from django.utils import timezone

from campaigns import audit
from campaigns.models import Advertiser, AuditAction
from campaigns.services import StaleVersion
from creatives import html5, validation
from creatives.files import PREFIX, store_once
from creatives.media import MediaFacts
from creatives.models import (
    Creative,
    CreativeKind,
    Rendition,
    ReviewStatus,
    VerifiedDomain,
)

# Bookkeeping that changes without the creative changing.
_UNAUDITED = {"id", "version", "created_at", "updated_at", "check_failures", "checked_at"}
# Bump when the way bundles are unpacked changes (the injected CSP, say): new directories.
BUNDLE_LAYOUT = "3"  # 3: the entry page says it loaded (html5.LOADED_MESSAGE)
_MEDIA_KINDS = (CreativeKind.VIDEO, CreativeKind.AUDIO)


def _fields(creative: Creative) -> dict[str, Any]:
    """The creative's fields as the audit log stores them (JSON: files by name)."""
    out: dict[str, Any] = {}
    for f in creative._meta.concrete_fields:
        if f.attname in _UNAUDITED:
            continue
        value = getattr(creative, f.attname)
        if isinstance(value, FieldFile):
            value = value.name or ""
        elif isinstance(value, Decimal):
            value = str(value)
        elif isinstance(value, datetime):
            value = value.isoformat()
        out[f.attname] = value
    return out


def _record(
    creative: Creative, action: AuditAction, by: Any, changes: dict[str, list[Any]]
) -> None:
    audit.record(creative, action, advertiser=creative.advertiser, by=by, changes=changes)


def _apply_size(creative: Creative, size: str | None) -> None:
    if size is None:
        return
    if size == "":
        creative.width = creative.height = 0
        return
    try:
        creative.width, creative.height = validation.parse_size(size)
    except ValidationError as exc:
        raise ValidationError({"size": exc.messages}) from exc


def _validate(creative: Creative, media: Sequence[IO[bytes]] | None) -> list[MediaFacts] | None:
    """Everything wrong with the creative and its new media files, raised at once."""
    errors: dict[str, list[str]] = {}
    try:
        creative.full_clean()
    except ValidationError as exc:
        errors.update(exc.message_dict)
    facts = None
    if creative.kind in _MEDIA_KINDS:
        noun = (
            "video files (MP4 or WebM)" if creative.kind == "video" else "audio files (MP3 or AAC)"
        )
        if media and creative.vast_tag_url:
            errors.setdefault("media", []).append(f"Give {noun} or a VAST tag URL, not both.")
        elif media:
            try:
                facts = validation.read_renditions(creative.kind, media)
            except ValidationError as exc:
                errors.setdefault("media", []).extend(exc.message_dict["media"])
        elif not creative.vast_tag_url and (
            media is not None or creative.pk is None or not creative.renditions.exists()
        ):
            errors.setdefault("media", []).append(
                f"A {creative.kind} creative needs {noun} or a VAST tag URL."
            )
    elif media:
        errors.setdefault("media", []).append(
            "Only video and audio creatives have media files; leave it empty."
        )
    if errors:
        raise ValidationError(errors)
    return facts


def _store_renditions(
    creative: Creative, files: Sequence[IO[bytes]], facts: list[MediaFacts]
) -> None:
    creative.renditions.all().delete()
    for file, fact in zip(files, facts, strict=True):
        Rendition.objects.create(
            creative=creative,
            file=file if isinstance(file, File) else File(file, name=validation.file_label(file)),
            original_name=validation.file_label(file)[:255],
            mime_type=fact.mime_type,
            width=fact.width,
            height=fact.height,
            duration=fact.duration,
            bitrate=fact.bitrate,
            codec=fact.codec[:50],
            file_size=fact.size,
        )
    largest = max(facts, key=lambda f: (f.width * f.height, f.bitrate))
    creative.width, creative.height = largest.width, largest.height
    creative.duration = max(f.duration for f in facts)


def _unpack_bundle(creative: Creative) -> None:
    """Unpack the zip into storage, entry page prepared; the directory is a content hash."""
    bundle = validation.read_bundle_of(creative)
    key = f"{creative.bundle.name}|{bundle.entry}|{creative.secure}|{BUNDLE_LAYOUT}"
    root = f"{PREFIX}/h5/{hashlib.sha256(key.encode()).hexdigest()[:32]}"
    for path, data in bundle.files.items():
        if path == bundle.entry:
            data = html5.prepare_entry(data, creative.secure)
        store_once(f"{root}/{path}", data)
    creative.bundle_root, creative.entry_file = root, bundle.entry


def _store_assets(
    creative: Creative, media: Sequence[IO[bytes]] | None, facts: list[MediaFacts] | None
) -> None:
    if creative.kind in _MEDIA_KINDS:
        if facts is not None and media:
            _store_renditions(creative, media, facts)
        elif creative.vast_tag_url:
            creative.renditions.all().delete()
            creative.width = creative.height = 0
        if creative.kind == CreativeKind.AUDIO:
            creative.width = creative.height = 0
    if creative.kind == CreativeKind.HTML5:
        if creative.bundle:
            _unpack_bundle(creative)
        else:
            creative.bundle_root = ""


def _check(creative: Creative) -> list[dict[str, str]]:
    """The automatic checks: the upload's own rules again, plus the landing domain."""
    errors = validation.Errors()
    validation.check_creative(creative, errors)
    if (
        creative.kind in _MEDIA_KINDS
        and not creative.vast_tag_url
        and not creative.renditions.exists()
    ):
        errors.add("media", f"A {creative.kind} creative needs media files or a VAST tag URL.")
    domains = list(creative.advertiser.verified_domains.values_list("domain", flat=True))
    problem = validation.domain_problem(creative, domains)
    if problem:
        errors.add("click_url", problem)
    host = validation.host_of(creative.click_url)
    creative.adomain = validation.matching_domain(host, domains) or host.removeprefix("www.")
    creative.checked_at = timezone.now()
    return [{"field": f, "message": m} for f, ms in errors.by_field.items() for m in ms]


def run_automatic_checks(creative: Creative) -> list[dict[str, str]]:
    """Run the checks again (after a domain is verified, say) and store what they find."""
    creative.check_failures = _check(creative)
    creative.save(update_fields=["check_failures", "checked_at", "adomain", "updated_at"])
    return creative.check_failures


@transaction.atomic
def create_creative(
    *,
    advertiser: Advertiser,
    by: Any = None,
    size: str | None = None,
    media: Sequence[IO[bytes]] = (),
    **fields: Any,
) -> Creative:
    """A new creative, pending review, its automatic checks run.

    `size` ("300x250") is the declared size (image, HTML5); `media` the video or audio files.
    """
    creative = Creative(advertiser=advertiser, **fields)
    errors: dict[str, list[str]] = {}
    try:
        _apply_size(creative, size)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    try:
        facts = _validate(creative, media)
    except ValidationError as exc:
        # A malformed size was reported already; "give a size" would only repeat it.
        raise ValidationError(exc.message_dict | errors) from exc
    if errors:
        raise ValidationError(errors)
    creative.save()
    _store_assets(creative, media, facts)
    creative.check_failures = _check(creative)
    creative.save()
    _record(creative, AuditAction.CREATE, by, audit.diff({}, _fields(creative)))
    return creative


@transaction.atomic
def update_creative(
    creative: Creative,
    *,
    by: Any = None,
    expected_version: int | None = None,
    size: str | None = None,
    media: Sequence[IO[bytes]] | None = None,
    **fields: Any,
) -> Creative:
    """Change a creative; any change sends it back to review. New `media` replace the old."""
    locked = Creative.objects.select_for_update().select_related("advertiser").get(pk=creative.pk)
    if expected_version is not None and expected_version != locked.version:
        raise StaleVersion(locked.version)
    if locked.archived_at is not None:
        raise ValidationError("An archived creative cannot be changed.")
    if "kind" in fields and fields["kind"] != locked.kind:
        raise ValidationError({"kind": "A creative's kind cannot change; make a new creative."})
    before = _fields(locked)
    # The source given replaces the other one: a tag replaces a bundle, a VAST tag media.
    if fields.get("html_tag") and "bundle" not in fields:
        fields["bundle"] = ""
    if fields.get("bundle") and "html_tag" not in fields:
        fields["html_tag"] = ""
    if media and "vast_tag_url" not in fields:
        fields["vast_tag_url"] = ""
    for name, value in fields.items():
        setattr(locked, name, value)
    _apply_size(locked, size)
    facts = _validate(locked, media)
    changes = audit.diff(before, _fields(locked))
    if media:
        changes["media"] = [None, [validation.file_label(f) for f in media]]
    if not changes:
        return locked
    if locked.status != ReviewStatus.PENDING:
        changes["status"] = [locked.status, ReviewStatus.PENDING.value]
    locked.status = ReviewStatus.PENDING
    locked.rejection_reason = ""
    locked.reviewed_by, locked.reviewed_at = None, None
    locked.version += 1
    locked.save()
    _store_assets(locked, media, facts)
    locked.check_failures = _check(locked)
    locked.save()
    _record(locked, AuditAction.UPDATE, by, changes)
    return locked


def _review(creative: Creative, status: ReviewStatus, by: Any, reason: str) -> Creative:
    changes = {"status": [creative.status, status.value]}
    if reason != creative.rejection_reason:
        changes["rejection_reason"] = [creative.rejection_reason, reason]
    creative.status, creative.rejection_reason = status, reason
    creative.reviewed_by = by if getattr(by, "is_authenticated", False) else None
    creative.reviewed_at = timezone.now()
    creative.version += 1
    creative.save()
    _record(creative, AuditAction.STATUS, by, changes)
    return creative


def _lock(creative: Creative) -> Creative:
    locked = Creative.objects.select_for_update().select_related("advertiser").get(pk=creative.pk)
    if locked.archived_at is not None:
        raise ValidationError({"status": "An archived creative is not reviewed."})
    return locked


@transaction.atomic
def approve_creative(creative: Creative, *, by: Any = None) -> Creative:
    """Let the creative serve; refused while an automatic check fails."""
    locked = _lock(creative)
    locked.check_failures = _check(locked)  # a domain may have been verified since
    if locked.check_failures:
        failures = " ".join(f"{f['field']}: {f['message']}" for f in locked.check_failures)
        raise ValidationError({"status": f"Cannot approve while automatic checks fail. {failures}"})
    if locked.status == ReviewStatus.APPROVED:
        return locked
    return _review(locked, ReviewStatus.APPROVED, by, "")


@transaction.atomic
def reject_creative(creative: Creative, *, by: Any = None, reason: str) -> Creative:
    """Stop the creative serving, saying why (the advertiser sees the reason)."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(
            {"reason": "Say why the creative is rejected; the advertiser sees it."}
        )
    locked = _lock(creative)
    if locked.status == ReviewStatus.REJECTED and locked.rejection_reason == reason:
        return locked
    return _review(locked, ReviewStatus.REJECTED, by, reason)


@transaction.atomic
def archive_creative(creative: Creative, *, by: Any = None) -> Creative:
    """Retire a creative for good: it never serves again; its history stays."""
    locked = Creative.objects.select_for_update().select_related("advertiser").get(pk=creative.pk)
    if locked.archived_at is not None:
        return locked
    locked.archived_at = timezone.now()
    locked.version += 1
    locked.save()
    _record(locked, AuditAction.STATUS, by, {"archived_at": [None, locked.archived_at.isoformat()]})
    return locked


@transaction.atomic
def verify_domain(
    advertiser: Advertiser, domain: str, *, by: Any = None, note: str = ""
) -> VerifiedDomain:
    """Record that the advertiser owns `domain`; creatives waiting on it are checked again."""
    verified = VerifiedDomain(
        advertiser=advertiser,
        domain=domain,
        note=note,
        verified_by=by if getattr(by, "is_authenticated", False) else None,
    )
    verified.full_clean()
    verified.save()
    recheck_waiting_creatives(advertiser)
    return verified


def recheck_waiting_creatives(advertiser: Advertiser) -> None:
    """Run the checks again on the advertiser's creatives that await review."""
    for creative in (
        Creative.objects.awaiting_review()
        .filter(advertiser=advertiser)
        .select_related("advertiser")
    ):
        run_automatic_checks(creative)
