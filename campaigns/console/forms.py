"""Console forms. They parse what the controls send into the values the services take; the
rules (budgets, bids, targeting lists) are the models' and validators', run by the services,
whose errors `add_service_errors` puts back next to the field they name."""

from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError

from campaigns.console import choices
from campaigns.models import (
    Advertiser,
    BidStrategy,
    BidType,
    Campaign,
    CreativeRotation,
    LineItem,
    PacingMode,
    Placement,
)
from campaigns.validators import CAP_PERIODS, SIZE_RE

DATETIME = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
# Service error keys that are not form fields, and the field that shows them.
ERROR_FIELDS = {"frequency_caps": "cap_day", "status": None, "campaign": None}


def add_service_errors(form: forms.BaseForm, exc: ValidationError) -> None:
    """A service's ValidationError on the form: each message next to the field it names."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for name, errors in exc.message_dict.items():
        field = ERROR_FIELDS.get(name, name)
        if field not in form.fields:
            field = None
        for message in errors:
            form.add_error(field, message)


def split_list(text: str) -> list[str]:
    """One entry a line (or comma-separated), blanks dropped, each once."""
    items = [part.strip() for line in text.splitlines() for part in line.split(",")]
    return list(dict.fromkeys(i for i in items if i))


class CampaignForm(forms.ModelForm):
    class Meta:
        model = Campaign
        fields = [
            "name", "start_at", "end_at", "daily_budget", "lifetime_budget", "pacing_mode",
            "goal_type", "goal_target",
        ]  # fmt: skip
        widgets = {"start_at": DATETIME, "end_at": DATETIME}
        help_texts = {
            "start_at": "In the organisation's time zone.",
            "end_at": "Leave empty to run until paused.",
            "lifetime_budget": "Optional: the most the whole flight may spend.",
        }


class NewCampaignForm(CampaignForm):
    organisation = forms.ModelChoiceField(queryset=Advertiser.objects.none(), empty_label=None)

    class Meta(CampaignForm.Meta):
        fields = ["organisation", *CampaignForm.Meta.fields]

    def __init__(self, *args: Any, organisations: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = cast("forms.ModelChoiceField[Advertiser]", self.fields["organisation"])
        field.queryset = organisations
        if organisations.count() == 1:
            field.widget = forms.HiddenInput()


def _cells(dayparts: list[dict[str, Any]]) -> list[str]:
    """The week grid's "day:hour" cells a stored daypart list covers."""

    def minutes(text: str) -> int:
        h, m = text.split(":")
        return int(h) * 60 + int(m)

    cells = []
    for part in dayparts:
        start, end = minutes(part["start"]), minutes(part["end"])
        for day in part["days"]:
            for hour in range(24):
                if hour * 60 < end and (hour + 1) * 60 > start:
                    cells.append(f"{day}:{hour}")
    return cells


def dayparts_from_cells(cells: list[str]) -> list[dict[str, Any]]:
    """Ticked hours of the week as dayparts: a run of hours a day, days with equal runs
    grouped, so a weekday grid reads back as one daypart."""
    hours: dict[int, set[int]] = {}
    for cell in cells:
        day_text, _, hour_text = cell.partition(":")
        hours.setdefault(int(day_text), set()).add(int(hour_text))
    runs: dict[tuple[str, str], list[int]] = {}
    for day in sorted(hours):
        ticked = sorted(hours[day])
        start = prev = ticked[0]
        following: list[int | None] = [*ticked[1:], None]
        for hour in following:
            if hour is not None and hour == prev + 1:
                prev = hour
                continue
            runs.setdefault((f"{start:02d}:00", f"{prev + 1:02d}:00"), []).append(day)
            if hour is not None:
                start = prev = hour
    return [{"days": days, "start": s, "end": e} for (s, e), days in sorted(runs.items())]


def _placement_label(placement: Placement) -> str:
    return f"{placement} ({', '.join(placement.sizes)})"


class LineItemForm(forms.Form):
    """A line item's bid, budgets, caps and targeting, with controls instead of JSON."""

    name = forms.CharField(max_length=200)
    bid_type = forms.ChoiceField(choices=BidType.choices, initial=BidType.CPM)
    bid = forms.DecimalField(
        max_digits=10, decimal_places=4, help_text="Per thousand impressions (CPM) or per click."
    )
    bid_strategy = forms.ChoiceField(choices=BidStrategy.choices, initial=BidStrategy.FIXED)
    creative_rotation = forms.ChoiceField(
        choices=CreativeRotation.choices, initial=CreativeRotation.WEIGHTED, required=False,
        help_text="Optimise shows the creatives clicked more more often.",
    )  # fmt: skip
    min_bid = forms.DecimalField(
        max_digits=10, decimal_places=4, required=False,
        help_text="The lowest a dynamic strategy may take the bid.",
    )  # fmt: skip
    daily_budget = forms.DecimalField(max_digits=14, decimal_places=4, required=False)
    lifetime_budget = forms.DecimalField(max_digits=14, decimal_places=4, required=False)
    click_url = forms.URLField(
        max_length=2000, required=False, assume_scheme="https", help_text="Required for CPC."
    )
    cap_minute = forms.IntegerField(min_value=1, required=False, label="Per minute")
    cap_hour = forms.IntegerField(min_value=1, required=False, label="Per hour")
    cap_day = forms.IntegerField(min_value=1, required=False, label="Per day")
    cap_lifetime = forms.IntegerField(min_value=1, required=False, label="Per lifetime")
    sizes = forms.MultipleChoiceField(
        choices=[], required=False, widget=forms.CheckboxSelectMultiple
    )
    other_sizes = forms.CharField(
        required=False, help_text="Sizes the inventory list does not show, like 640x360."
    )
    placements = forms.ModelMultipleChoiceField(
        queryset=Placement.objects.none(), required=False, widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every placement that sells the sizes.",
    )  # fmt: skip
    countries = forms.MultipleChoiceField(
        choices=[], required=False, widget=forms.SelectMultiple(attrs={"data-filterable": ""}),
        help_text="None chosen: every country.",
    )  # fmt: skip
    regions = forms.MultipleChoiceField(
        choices=[], required=False, widget=forms.SelectMultiple(attrs={"data-filterable": ""}),
        help_text="Regions of the chosen countries (ISO 3166-2).",
    )  # fmt: skip
    device_types = forms.TypedMultipleChoiceField(
        choices=[], coerce=int, required=False, widget=forms.CheckboxSelectMultiple
    )
    channels = forms.MultipleChoiceField(
        choices=[], required=False, widget=forms.CheckboxSelectMultiple
    )
    properties = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Named properties (apps, channels), one a line.",
    )  # fmt: skip
    dayparts = forms.MultipleChoiceField(choices=[], required=False)
    keywords = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    negative_keywords = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), label="Negative keywords"
    )
    segments = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="Audience segment ids."
    )
    categories = forms.MultipleChoiceField(
        choices=[], required=False, widget=forms.SelectMultiple(attrs={"data-filterable": ""}),
        label="IAB categories",
    )  # fmt: skip
    other_categories = forms.CharField(
        required=False, help_text="Tier-2 codes like IAB7-39, comma-separated."
    )
    child_safe = forms.BooleanField(
        required=False, help_text="May serve to child-directed (COPPA) traffic."
    )

    LIST_FIELDS = ("properties", "keywords", "negative_keywords", "segments")

    def __init__(
        self,
        *args: Any,
        inventory: list[Placement],
        line_item: LineItem | None = None,
        **kwargs: Any,
    ) -> None:
        if line_item is not None and "initial" not in kwargs:
            kwargs["initial"] = self.initial_from(line_item)
        super().__init__(*args, **kwargs)
        # The sizes the line item has (or the form sent back) stay choosable even when no
        # placement sells them any more; the list shows that as "matches no inventory".
        current = (
            [s for s in self.data.getlist("sizes") if SIZE_RE.match(s)]  # type: ignore[attr-defined]
            if self.is_bound
            else self.initial.get("sizes", [])
        )
        sizes = choices.inventory_sizes(inventory)
        self.fields["sizes"].choices = [(s, s) for s in dict.fromkeys([*sizes, *current])]  # type: ignore[attr-defined]
        placements = cast("forms.ModelMultipleChoiceField[Placement]", self.fields["placements"])
        placements.queryset = Placement.objects.filter(
            pk__in=[p.pk for p in inventory]
        ).select_related("publisher")
        placements.label_from_instance = _placement_label  # type: ignore[method-assign,assignment]
        self.fields["countries"].choices = choices.countries()  # type: ignore[attr-defined]
        chosen = (
            self.data.getlist("countries")  # type: ignore[attr-defined]
            if self.is_bound
            else self.initial.get("countries", [])
        )
        self.fields["regions"].choices = choices.regions_of(list(chosen))  # type: ignore[attr-defined]
        self.fields["device_types"].choices = choices.device_types()  # type: ignore[attr-defined]
        self.fields["channels"].choices = choices.channels()  # type: ignore[attr-defined]
        self.fields["dayparts"].choices = [  # type: ignore[attr-defined]
            (f"{d}:{h}", f"{choices.DAYS[d]} {h:02d}:00") for d in range(7) for h in range(24)
        ]
        self.fields["categories"].choices = [  # type: ignore[attr-defined]
            (code, f"{label} ({code})") for code, label in choices.IAB_TIER1.items()
        ]

    @staticmethod
    def initial_from(li: LineItem) -> dict[str, Any]:
        caps = {c["period"]: c["count"] for c in li.frequency_caps}
        tier1 = [c for c in li.categories if c in choices.IAB_TIER1]
        return {
            "name": li.name, "bid_type": li.bid_type, "bid": li.bid,
            "bid_strategy": li.bid_strategy, "min_bid": li.min_bid,
            "creative_rotation": li.creative_rotation,
            "daily_budget": li.daily_budget, "lifetime_budget": li.lifetime_budget,
            "click_url": li.click_url, "sizes": list(li.sizes),
            "placements": list(li.placements.all()), "countries": list(li.countries),
            "regions": list(li.regions), "device_types": list(li.device_types),
            "channels": list(li.channels), "properties": "\n".join(li.properties),
            "dayparts": _cells(li.dayparts), "keywords": "\n".join(li.keywords),
            "negative_keywords": "\n".join(li.negative_keywords),
            "segments": "\n".join(li.segments), "categories": tier1,
            "other_categories": ", ".join(c for c in li.categories if c not in tier1),
            "child_safe": li.child_safe,
            **{f"cap_{p}": caps.get(p) for p in CAP_PERIODS},
        }  # fmt: skip

    def values(self) -> dict[str, Any]:
        """The cleaned form as the services' keyword arguments."""
        data = self.cleaned_data
        caps = [
            {"count": data[f"cap_{p}"], "period": p}
            for p in CAP_PERIODS
            if data.get(f"cap_{p}") is not None
        ]
        out: dict[str, Any] = {
            "name": data["name"],
            "bid_type": data["bid_type"],
            "bid": data["bid"],
            "bid_strategy": data["bid_strategy"],
            "creative_rotation": data["creative_rotation"] or CreativeRotation.WEIGHTED,
            "min_bid": data["min_bid"],
            "daily_budget": data["daily_budget"],
            "lifetime_budget": data["lifetime_budget"],
            "click_url": data["click_url"] or "",
            "frequency_caps": caps,
            "sizes": list(dict.fromkeys([*data["sizes"], *split_list(data["other_sizes"])])),
            "countries": list(data["countries"]),
            "regions": list(data["regions"]),
            "device_types": list(data["device_types"]),
            "channels": list(data["channels"]),
            "dayparts": dayparts_from_cells(data["dayparts"]),
            "categories": list(
                dict.fromkeys([*data["categories"], *split_list(data["other_categories"])])
            ),
            "child_safe": data["child_safe"],
            "placements": list(data["placements"]),
        }
        for name in self.LIST_FIELDS:
            out[name] = split_list(data[name])
        return out


def default_line_item(campaign: Campaign, inventory: list[Placement]) -> dict[str, Any]:
    """A new line item's starting point: the campaign's name, a CPM bid, the inventory's
    most common size."""
    sizes = [s for p in inventory for s in p.sizes]
    common = max(set(sizes), key=sizes.count) if sizes else "300x250"
    return {
        "name": f"{campaign.name}, line item {campaign.line_items.count() + 1}",
        "bid_type": BidType.CPM,
        "bid": Decimal("2.00"),
        "bid_strategy": BidStrategy.FIXED,
        "creative_rotation": CreativeRotation.WEIGHTED,
        "sizes": [common],
    }


def default_campaign(now: datetime, organisation: Advertiser) -> dict[str, Any]:
    return {
        "organisation": organisation,
        "start_at": now.replace(second=0, microsecond=0),
        "pacing_mode": PacingMode.EVEN,
        "daily_budget": Decimal("50.00"),
    }


def daypart_grid(form: LineItemForm) -> list[tuple[str, list[tuple[str, str, bool]]]]:
    """The week grid's rows: (day, [(cell value, hour label, ticked)])."""
    ticked = set(form["dayparts"].value() or [])
    return [
        (
            label,
            [
                (f"{d}:{h}", f"{label} {h:02d}:00 to {h + 1:02d}:00", f"{d}:{h}" in ticked)
                for h in range(24)
            ],
        )
        for d, label in enumerate(choices.DAYS)
    ]
