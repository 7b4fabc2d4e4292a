"""The pseudonyms refunds keep (`reporting.ivt.refunds`), for data-subject requests
(`compliance.dsar.STORES`): a staff refund keeps the id it was asked for; an automatic one
keeps it until it is done."""

from typing import TYPE_CHECKING, Any

from reporting.ivt.models import IvtRefund, RefundStatus

if TYPE_CHECKING:
    from compliance.dsar import Job

ERASED = "its pseudonymous id was erased by a data-subject request"


class RefundPseudonyms:
    """Refunds naming one of the subject's pseudonyms."""

    name = "ivt_refunds"

    def collect(self, job: "Job") -> list[dict[str, Any]]:
        rows = IvtRefund.objects.filter(pseudonym__in=job.pseudonyms).order_by("created_at")
        return [
            {
                "pseudonym": r.pseudonym,
                "start": r.start.isoformat(),
                "end": r.end.isoformat(),
                "status": r.status,
                "note": r.note,
            }
            for r in rows
        ]

    def erase(self, job: "Job") -> None:
        """Forget the id; a refund still to run cannot find its events any more (they are
        erased too), so it fails, saying why."""
        rows = IvtRefund.objects.filter(pseudonym__in=job.pseudonyms)
        rows.filter(status=RefundStatus.PENDING).update(status=RefundStatus.FAILED, error=ERASED)
        erased = rows.update(pseudonym="")
        if erased:
            job.client.hincrby(job.counts_key, self.name, erased)
