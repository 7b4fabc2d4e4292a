"""Model versions in admin: the offline evaluation of each, and promote / roll back / train.

Each kind (pCTR, pCVR) has its own live version: promoting a version retires the live one of
its kind only, and rolling back acts on the kinds of the versions selected.

Promotions and roll backs are recorded in Django admin's history (LogEntry, shown on each
version's History page): the project's audit log (`campaigns.AuditEntry`) belongs to an
advertiser, and a model serves every advertiser.
"""

from typing import Any

from django.contrib import admin, messages
from django.db import models, transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.views.decorators.http import require_POST

from reporting.learning.registry import promote, roll_back
from reporting.models import ModelKind, ModelVersion


def _evaluation(obj: ModelVersion) -> dict[str, Any]:
    evaluation: dict[str, Any] = obj.metrics.get("evaluation", {})
    return evaluation


# What a kind's rows and positives are, for the evaluation's headings.
UNITS = {
    ModelKind.PCTR: ("rows", "clicks", "CTR"),
    ModelKind.PCVR: ("clicks", "conversions", "CVR"),
}


def _units(obj: ModelVersion) -> tuple[str, str, str]:
    return UNITS.get(ModelKind(obj.kind), UNITS[ModelKind.PCTR])


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = [
        "id", "kind", "status", "train_start", "train_end", "log_loss", "auc",
        "constant_log_loss", "smoothed_log_loss", "ips_ctr", "created_at", "promoted_at",
    ]  # fmt: skip
    list_filter = ["status", "kind"]
    exclude = ["weights", "metrics"]
    readonly_fields = [
        "kind", "status", "feature_set", "train_start", "train_end", "holdout_start",
        "holdout_end", "created_at", "promoted_at", "promoted_by", "retired_at", "verdict",
        "evaluation_table", "reliability_table", "off_policy_table", "training",
    ]  # fmt: skip
    actions = ["promote_selected", "roll_back_live"]

    @admin.display(description="held-out log-loss")
    def log_loss(self, obj: ModelVersion) -> str:
        return _fmt(_evaluation(obj).get("model", {}).get("log_loss"))

    @admin.display(description="AUC")
    def auc(self, obj: ModelVersion) -> str:
        return _fmt(_evaluation(obj).get("model", {}).get("auc"))

    @admin.display(description="constant baseline")
    def constant_log_loss(self, obj: ModelVersion) -> str:
        return _fmt(_evaluation(obj).get("constant", {}).get("log_loss"))

    @admin.display(description="smoothed baseline")
    def smoothed_log_loss(self, obj: ModelVersion) -> str:
        return _fmt(_evaluation(obj).get("smoothed", {}).get("log_loss"))

    @admin.display(description="IPS CTR")
    def ips_ctr(self, obj: ModelVersion) -> str:
        return _fmt(_evaluation(obj).get("off_policy", {}).get("ips_ctr"))

    @admin.display(description="promotion rule")
    def verdict(self, obj: ModelVersion) -> str:
        v = obj.metrics.get("verdict", {})
        return f"{'promote' if v.get('promote') else 'keep as candidate'}: {v.get('why', '')}"

    @admin.display(description="held-out evaluation")
    def evaluation_table(self, obj: ModelVersion) -> SafeString:
        ev = _evaluation(obj)
        rows_are, positives, rate = _units(obj)
        names = [("model", "this model"), ("live", "live model at training"),
                 ("smoothed", f"smoothed {rate}"), ("constant", f"constant {rate}")]  # fmt: skip
        rows = [
            (label, _fmt(ev[key].get("log_loss")), _fmt(ev[key].get("auc")),
             _fmt(ev[key].get("calibration")))
            for key, label in names
            if key in ev
        ]  # fmt: skip
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        return format_html(
            "<p>{} {}, {} {} held out ({} to {})</p><table><tr><th></th><th>log-loss</th>"
            "<th>AUC</th><th>predicted / observed</th></tr>{}</table>",
            ev.get("rows", 0), rows_are, ev.get(positives, 0), positives, obj.holdout_start,
            obj.holdout_end, body,
        )  # fmt: skip

    @admin.display(description="reliability (equal-count buckets)")
    def reliability_table(self, obj: ModelVersion) -> SafeString:
        buckets = _evaluation(obj).get("model", {}).get("reliability", [])
        rows = ((b["n"], _fmt(b["predicted"]), _fmt(b["observed"])) for b in buckets)
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        return format_html(
            "<table><tr><th>rows</th><th>mean predicted</th><th>observed</th></tr>{}</table>", body
        )

    @admin.display(description="off-policy estimate of its creative choice")
    def off_policy_table(self, obj: ModelVersion) -> SafeString:
        ev = _evaluation(obj)
        if "off_policy" not in ev:  # a pCVR model: the logs randomise no choice it makes
            return format_html("<p>{}</p>", "None: the logs randomise no choice this kind makes.")
        mine, logged = ev.get("off_policy", {}), ev.get("logged", {})
        live = ev.get("live", {}).get("off_policy", {})
        rows = [
            (key.replace("_", " "), _fmt(mine.get(key)), _fmt(live.get(key)))
            for key in (
                "ips_ctr",
                "snips_ctr",
                "ips_rpm",
                "snips_rpm",
                "match_share",
                "effective_n",
            )
        ]
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        return format_html(
            "<p>Logged policy: CTR {}, RPM {}</p><table><tr><th></th><th>this model</th>"
            "<th>live model</th></tr>{}</table>",
            _fmt(logged.get("ctr")), _fmt(logged.get("rpm")), body,
        )  # fmt: skip

    @admin.display(description="training")
    def training(self, obj: ModelVersion) -> SafeString:
        info = obj.metrics.get("training", {})
        items = ((k, str(v)) for k, v in info.items())
        return format_html("<dl>{}</dl>", format_html_join("", "<dt>{}</dt><dd>{}</dd>", items))

    @admin.action(description="Promote the selected version to live")
    def promote_selected(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to promote.", messages.ERROR)
            return
        version = queryset.get()
        if not promote(version, by=request.user):
            self.message_user(request, f"#{version.pk} is already live.", messages.WARNING)
            return
        self.log_change(request, version, "Promoted to live")
        self.message_user(request, f"#{version.pk} is live.", messages.SUCCESS)

    @admin.action(
        description="Roll back the selected versions' kind: its previously live version again"
    )
    def roll_back_live(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        kinds = sorted(set(queryset.values_list("kind", flat=True)))
        for kind in kinds:
            label = ModelKind(kind).label
            live = ModelVersion.objects.live(kind).first()
            previous = roll_back(by=request.user, kind=kind)
            if previous is None:
                self.message_user(
                    request, f"{label}: no earlier live version to roll back to.", messages.ERROR
                )
                continue
            if live is not None:
                self.log_change(request, live, f"Rolled back: #{previous.pk} live instead")
            self.log_change(request, previous, "Made live again by a roll back")
            self.message_user(request, f"{label}: #{previous.pk} is live again.", messages.SUCCESS)

    def get_urls(self) -> list[URLPattern]:
        train = self.admin_site.admin_view(require_POST(self.train_view))
        return [path("train/", train, name="reporting_modelversion_train"), *super().get_urls()]

    def train_view(self, request: HttpRequest) -> HttpResponse:
        from reporting.tasks import train_ctr_model_task

        if not self.has_change_permission(request):
            self.message_user(request, "You may not train models.", messages.ERROR)
        else:
            transaction.on_commit(train_ctr_model_task.delay)
            self.message_user(
                request,
                "Training queued (pCTR, then pCVR where conversions allow); the new "
                "versions appear here.",
            )
        return HttpResponseRedirect(reverse("admin:reporting_modelversion_changelist"))

    # Versions are made by training only, and their history is kept.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False
