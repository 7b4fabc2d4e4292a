from typing import Any

from django.contrib.auth import get_user_model
from rest_framework import serializers

from campaigns import services
from campaigns.api.permissions import writable_organisations
from campaigns.models import (
    Advertiser,
    AuditEntry,
    Campaign,
    Deal,
    LineItem,
    LineItemCreative,
    Membership,
    Placement,
)
from creatives.models import Creative


def _by(serializer: serializers.BaseSerializer[Any]) -> Any:
    return serializer.context["request"].user


def _expected_version(serializer: serializers.BaseSerializer[Any]) -> int | None:
    return serializer.context.get("expected_version")


class OrganisationSerializer(serializers.ModelSerializer[Advertiser]):
    class Meta:
        model = Advertiser
        fields = ["id", "name", "time_zone", "currency", "created_at"]
        read_only_fields = ["created_at"]


class MemberSerializer(serializers.ModelSerializer[Membership]):
    organisation = serializers.PrimaryKeyRelatedField(
        source="advertiser", queryset=Advertiser.objects.all()
    )
    username = serializers.SlugRelatedField(
        source="user", slug_field="username", queryset=get_user_model().objects.all()
    )

    class Meta:
        model = Membership
        fields = ["id", "organisation", "username", "role", "created_at"]
        read_only_fields = ["created_at"]

    def validate_organisation(self, value: Advertiser) -> Advertiser:
        user = _by(self)
        if (
            not user.is_staff
            and not Membership.objects.filter(
                user_id=user.pk, advertiser=value, role="admin"
            ).exists()
        ):
            raise serializers.ValidationError("Only the organisation's admins manage members.")
        return value


class OrgScopedField(serializers.PrimaryKeyRelatedField):
    """A reference limited to what the caller may write: anything else reads as 'not found'."""

    def __init__(self, scope: Any, **kwargs: Any) -> None:
        self.scope = scope
        super().__init__(**kwargs)

    def get_queryset(self) -> Any:
        return self.scope(self.context["request"].user)


class CampaignSerializer(serializers.ModelSerializer[Campaign]):
    organisation = OrgScopedField(writable_organisations, source="advertiser")

    class Meta:
        model = Campaign
        fields = [
            "id", "organisation", "name", "status", "start_at", "end_at", "currency",
            "daily_budget", "lifetime_budget", "pacing_mode", "priority_tier", "goal_type",
            "goal_target", "post_click_days", "post_view_days", "version", "created_at",
            "updated_at",
        ]  # fmt: skip
        read_only_fields = ["status", "version", "created_at", "updated_at"]

    def create(self, validated_data: dict[str, Any]) -> Campaign:
        return services.create_campaign(by=_by(self), **validated_data)

    def update(self, instance: Campaign, validated_data: dict[str, Any]) -> Campaign:
        if "advertiser" in validated_data and validated_data["advertiser"] != instance.advertiser:
            raise serializers.ValidationError({"organisation": "A campaign cannot move."})
        validated_data.pop("advertiser", None)
        return services.update_campaign(
            instance, by=_by(self), expected_version=_expected_version(self), **validated_data
        )


def _writable_campaigns(user: Any) -> Any:
    return Campaign.objects.filter(advertiser__in=writable_organisations(user))


def _writable_deals(user: Any) -> Any:
    return Deal.objects.filter(advertiser__in=writable_organisations(user))


def _writable_line_items(user: Any) -> Any:
    return LineItem.objects.filter(campaign__advertiser__in=writable_organisations(user))


def _writable_creatives(user: Any) -> Any:
    return Creative.objects.filter(advertiser__in=writable_organisations(user))


class AssignmentSerializer(serializers.ModelSerializer[LineItemCreative]):
    line_item = OrgScopedField(_writable_line_items)
    creative = OrgScopedField(_writable_creatives)

    class Meta:
        model = LineItemCreative
        fields = ["id", "line_item", "creative", "weight"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        line_item = attrs.get("line_item") or self.instance.line_item  # type: ignore[union-attr]
        creative = attrs.get("creative") or self.instance.creative  # type: ignore[union-attr]
        if creative.advertiser_id != line_item.campaign.advertiser_id:
            raise serializers.ValidationError({"creative": "Not found."})
        return attrs

    def create(self, validated_data: dict[str, Any]) -> LineItemCreative:
        return services.assign_creative(
            validated_data["line_item"], validated_data["creative"],
            weight=validated_data.get("weight", 1), by=_by(self),
        )  # fmt: skip

    def update(
        self, instance: LineItemCreative, validated_data: dict[str, Any]
    ) -> LineItemCreative:
        if {"line_item", "creative"} & set(validated_data) and (
            validated_data.get("line_item", instance.line_item) != instance.line_item
            or validated_data.get("creative", instance.creative) != instance.creative
        ):
            raise serializers.ValidationError("Only the weight of an assignment changes.")
        return services.assign_creative(
            instance.line_item, instance.creative,
            weight=validated_data.get("weight", instance.weight), by=_by(self),
        )  # fmt: skip


class LineItemSerializer(serializers.ModelSerializer[LineItem]):
    campaign = OrgScopedField(_writable_campaigns)
    placements = serializers.PrimaryKeyRelatedField(
        many=True, required=False, queryset=Placement.objects.filter(is_active=True)
    )
    deals = OrgScopedField(_writable_deals, many=True, required=False)
    creatives = serializers.SerializerMethodField()

    class Meta:
        model = LineItem
        fields = [
            "id", "campaign", "name", "status", "bid_type", "bid", "bid_strategy", "min_bid",
            "creative_rotation", "daily_budget", "lifetime_budget", "frequency_caps", "click_url",
            "sizes", "placements", "countries", "regions", "device_types", "channels", "properties",
            "dayparts", "keywords", "negative_keywords", "segments", "categories", "child_safe",
            "deals", "creatives", "version", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["status", "version", "created_at", "updated_at"]

    def get_creatives(self, obj: LineItem) -> list[dict[str, int]]:
        return [{"creative": a.creative_id, "weight": a.weight} for a in obj.assignments.all()]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        campaign = attrs.get("campaign") or getattr(self.instance, "campaign", None)
        for deal in attrs.get("deals", []):
            if campaign is not None and deal.advertiser_id != campaign.advertiser_id:
                raise serializers.ValidationError({"deals": f"Deal {deal.pk} not found."})
        return attrs

    def create(self, validated_data: dict[str, Any]) -> LineItem:
        return services.create_line_item(by=_by(self), **validated_data)

    def update(self, instance: LineItem, validated_data: dict[str, Any]) -> LineItem:
        if validated_data.pop("campaign", instance.campaign) != instance.campaign:
            raise serializers.ValidationError({"campaign": "A line item cannot move."})
        placements = validated_data.pop("placements", None)
        deals = validated_data.pop("deals", None)
        line_item = services.update_line_item(
            instance, by=_by(self), expected_version=_expected_version(self), **validated_data
        )
        if placements is not None:
            line_item.placements.set(placements)
        if deals is not None:
            line_item.deals.set(deals)
        return line_item


class DealSerializer(serializers.ModelSerializer[Deal]):
    organisation = OrgScopedField(writable_organisations, source="advertiser")

    class Meta:
        model = Deal
        fields = [
            "id", "organisation", "deal_id", "name", "floor", "fixed_price", "currency",
            "version", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["version", "created_at", "updated_at"]

    def create(self, validated_data: dict[str, Any]) -> Deal:
        return services.create_deal(by=_by(self), **validated_data)

    def update(self, instance: Deal, validated_data: dict[str, Any]) -> Deal:
        if validated_data.pop("advertiser", instance.advertiser) != instance.advertiser:
            raise serializers.ValidationError({"organisation": "A deal cannot move."})
        return services.update_deal(
            instance, by=_by(self), expected_version=_expected_version(self), **validated_data
        )


class AuditEntrySerializer(serializers.ModelSerializer[AuditEntry]):
    organisation: serializers.PrimaryKeyRelatedField[Advertiser] = (
        serializers.PrimaryKeyRelatedField(source="advertiser", read_only=True)
    )
    actor: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    object_type = serializers.CharField(source="content_type.model", read_only=True)

    class Meta:
        model = AuditEntry
        fields = [
            "id", "organisation", "created_at", "actor", "action", "object_type", "object_id",
            "object_repr", "changes",
        ]  # fmt: skip
        read_only_fields = fields


class LineItemPacingSerializer(serializers.Serializer[dict[str, Any]]):
    """A line item's share of its campaign's pacing state (read only)."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.CharField()
    spend_today = serializers.CharField(
        help_text="Charged at the win today, in the campaign currency (pending included)."
    )
    pending_spend_today = serializers.CharField(
        help_text="Part of spend_today: wins whose impression has not been rendered yet."
    )
    wins_today = serializers.IntegerField(help_text="Auctions won today (charged at the win).")
    impressions_today = serializers.IntegerField(
        help_text="Deprecated: the same count as wins_today (wins, not rendered impressions)."
    )
    daily_budget = serializers.CharField(allow_null=True)
    pass_through = serializers.FloatField(
        help_text="The share of its chances serving lets it bid on (campaign x line item)."
    )
    bid_strategy = serializers.CharField()
    bid_multiplier = serializers.FloatField(help_text="1 unless a dynamic-down bid is lowered.")
    exhausted = serializers.BooleanField(help_text="Its own budget is spent for today.")


class CampaignPacingSerializer(serializers.Serializer[dict[str, Any]]):
    """A campaign's pacing state now (GET /api/v1/campaigns/{id}/pacing/, read only)."""

    campaign = serializers.IntegerField()
    day = serializers.DateField(help_text="Today in the advertiser's time zone.")
    time_zone = serializers.CharField()
    pacing_mode = serializers.CharField()
    currency = serializers.CharField()
    daily_budget = serializers.CharField()
    budget_today = serializers.CharField(
        help_text="Today's budget: the daily budget within the lifetime budget and a spend goal."
    )
    lifetime_budget = serializers.CharField(allow_null=True)
    lifetime_spend = serializers.CharField()
    spend_today = serializers.CharField(
        help_text="Charged at the win, in real time: includes pending_spend_today."
    )
    pending_spend_today = serializers.CharField(
        help_text="Wins charged whose impression has not been rendered yet; released if it "
        "never is. spend_today minus this is what rendered impressions cost."
    )
    wins_today = serializers.IntegerField(help_text="Auctions won today (charged at the win).")
    impressions_today = serializers.IntegerField(
        help_text="Deprecated: the same count as wins_today (wins, not rendered impressions; "
        "the reports count rendered impressions)."
    )
    clicks_today = serializers.IntegerField()
    schedule_now = serializers.CharField(help_text="What the schedule wants spent by now.")
    schedule_fraction = serializers.FloatField()
    pacing_error = serializers.FloatField(
        allow_null=True, help_text="spend_today / schedule_now - 1: +0.05 is 5 % ahead."
    )
    pass_through = serializers.FloatField(help_text="The controller's rate for the campaign.")
    predicted_end_of_day_spend = serializers.CharField(allow_null=True)
    exhausted = serializers.BooleanField(help_text="Its budget (or goal) is reached for today.")
    goal_type = serializers.CharField(allow_blank=True)
    goal_target = serializers.CharField(allow_null=True)
    updated_at = serializers.DateTimeField(
        allow_null=True, help_text="The controller's last tick for this campaign today."
    )
    line_items = LineItemPacingSerializer(many=True)
