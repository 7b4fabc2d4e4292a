"""Filing data-subject requests and running them again; the job itself is `compliance.dsar`."""

from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from compliance.dsar import redis_client, redis_keys
from compliance.models import DataSubjectRequest, RequestKind, RequestStatus, SubjectKind
from compliance.pseudonym import DAY, Pseudonymiser
from compliance.tasks import run_data_subject_request_task
from reporting.stream import partitions

MAX_ID_LENGTH = 1024
# What iOS and Android send when the user limits ad tracking: it names no one.
ZERO_IFA = "00000000-0000-0000-0000-000000000000"


def clean_subject_id(subject_kind: str, raw_id: str) -> str:
    """The id as serving would have seen it, or a ValidationError saying what is wrong."""
    value = (raw_id or "").strip()
    if not value:
        raise ValidationError({"subject_id": ["Give the user or device id."]})
    if len(value) > MAX_ID_LENGTH:
        raise ValidationError({"subject_id": [f"At most {MAX_ID_LENGTH} characters."]})
    if not value.isprintable():
        raise ValidationError({"subject_id": ["The id contains control characters."]})
    if subject_kind == SubjectKind.DEVICE_ID and value.lower() == ZERO_IFA:
        raise ValidationError(
            {"subject_id": ["The all-zero device id is sent by every device that limits ad "
                            "tracking; it identifies no one."]}
        )  # fmt: skip
    return value


def _variants(subject_kind: str, raw_id: str) -> list[str]:
    # An IFA is a UUID that iOS sends in upper case and Android in lower case; which form
    # reached serving is unknown, so all are looked for. User ids are case-sensitive.
    if subject_kind == SubjectKind.DEVICE_ID:
        return sorted({raw_id, raw_id.lower(), raw_id.upper()})
    return [raw_id]


def subject_window(now: datetime) -> tuple[datetime, datetime]:
    """The span a subject's data may come from: raw-event retention, the previous pseudonym
    period (frequency caps outlive a rotation a little), and the oldest event still held."""
    lookback = max(settings.RAW_EVENT_RETENTION_SECONDS, settings.PSEUDONYM_ROTATION_DAYS * DAY)
    start = now - timedelta(seconds=lookback)
    client = redis_client()
    for stream in partitions(client, redis_keys()):
        oldest: Any = client.xrange(stream, count=1)
        if oldest:
            first_ms = int(oldest[0][0].decode().partition("-")[0])
            start = min(start, datetime.fromtimestamp(first_ms / 1000, now.tzinfo))
    return start, now


def file_request(
    *, kind: str, subject_kind: str, subject_id: str, by: Any, notes: str = ""
) -> DataSubjectRequest:
    """Record a request (pseudonyms and a fingerprint, never the id) and queue its job."""
    if kind not in RequestKind.values:
        raise ValidationError({"kind": [f"One of: {', '.join(RequestKind.values)}."]})
    if subject_kind not in SubjectKind.values:
        raise ValidationError({"subject_kind": [f"One of: {', '.join(SubjectKind.values)}."]})
    raw_id = clean_subject_id(subject_kind, subject_id)
    pseudonymiser = Pseudonymiser.from_settings()
    start, end = subject_window(timezone.now())
    pseudonyms = sorted(
        {
            p
            for variant in _variants(subject_kind, raw_id)
            for p in pseudonymiser.pseudonyms_between(variant, start.timestamp(), end.timestamp())
        }
    )
    with transaction.atomic():
        request = DataSubjectRequest.objects.create(
            kind=kind,
            subject_kind=subject_kind,
            fingerprint=pseudonymiser.fingerprint(raw_id),
            pseudonyms=pseudonyms,
            window_start=start,
            window_end=end,
            notes=notes,
            requested_by=by,
        )
        transaction.on_commit(partial(run_data_subject_request_task.delay, request.pk))
    return request


def run_again(request: DataSubjectRequest) -> bool:
    """Queue a failed request's job again (it finishes the work); False if it is not failed."""
    with transaction.atomic():
        queued = DataSubjectRequest.objects.filter(
            pk=request.pk, status=RequestStatus.FAILED
        ).update(status=RequestStatus.PENDING)
        if queued:
            transaction.on_commit(partial(run_data_subject_request_task.delay, request.pk))
    request.refresh_from_db()
    return bool(queued)
