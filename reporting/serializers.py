from rest_framework import serializers

from reporting.models import DeliveryDiagnosticHourly, HourlyRollup


class HourlyRollupSerializer(serializers.ModelSerializer[HourlyRollup]):
    spend = serializers.DecimalField(max_digits=18, decimal_places=9, coerce_to_string=True)

    class Meta:
        model = HourlyRollup
        fields = [
            "hour",
            "placement_id",
            "line_item_id",
            "campaign_id",
            "advertiser_id",
            "requests",
            "impressions",
            "clicks",
            "errors",
            "spend",
        ]


class DeliveryDiagnosticSerializer(serializers.ModelSerializer[DeliveryDiagnosticHourly]):
    class Meta:
        model = DeliveryDiagnosticHourly
        fields = ["hour", "line_item_id", "campaign_id", "advertiser_id", "reason", "count"]
