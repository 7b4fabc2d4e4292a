"""The creative API's input and output: multipart uploads, one field per thing to upload."""

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from campaigns.api.permissions import writable_organisations
from campaigns.api.serializers import OrgScopedField
from creatives import services
from creatives.files import asset_url
from creatives.models import Creative, Rendition
from creatives.rendering import bundle_entry_url

MAX_MEDIA_FILES = 10


class FormBooleanField(serializers.BooleanField):
    """A boolean that, left out of a multipart form, is "not given" (as in JSON), not false."""

    default_empty_html = serializers.empty


class RenditionSerializer(serializers.ModelSerializer[Rendition]):
    url = serializers.SerializerMethodField()

    class Meta:
        model = Rendition
        fields = [
            "id", "url", "original_name", "mime_type", "width", "height", "duration",
            "bitrate", "codec", "file_size",
        ]  # fmt: skip
        read_only_fields = fields

    def get_url(self, obj: Rendition) -> str:
        return asset_url(obj.file.name or "")


class CheckFailureSerializer(serializers.Serializer[dict[str, str]]):
    field = serializers.CharField()
    message = serializers.CharField()


class CreativeSerializer(serializers.ModelSerializer[Creative]):
    organisation = OrgScopedField(writable_organisations, source="advertiser")
    size = serializers.CharField(
        required=False, allow_blank=True, max_length=9,
        help_text="WIDTHxHEIGHT, like 300x250: the declared size of an image or HTML5 creative "
        "(an image must match it; left out, it is read from the image). Read-only otherwise.",
    )  # fmt: skip
    image = serializers.FileField(
        required=False, allow_null=True, write_only=True,
        help_text="Image creatives, and native's main image: JPEG, PNG, GIF or WebP.",
    )  # fmt: skip
    bundle = serializers.FileField(
        required=False, allow_null=True, write_only=True,
        help_text="HTML5: a zip with the entry file (entry_file, index.html by default).",
    )  # fmt: skip
    media = serializers.ListField(
        child=serializers.FileField(), required=False, write_only=True,
        max_length=MAX_MEDIA_FILES,
        help_text="Video (MP4, WebM) or audio (MP3, AAC) renditions of one ad; repeat the "
        "field for each file. Sending media replaces the renditions.",
    )  # fmt: skip
    secure = FormBooleanField(required=False)
    renditions = RenditionSerializer(many=True, read_only=True)
    check_failures = CheckFailureSerializer(many=True, read_only=True)
    reviewed_by = serializers.SlugRelatedField(slug_field="username", read_only=True)  # type: ignore[var-annotated]
    image_url = serializers.SerializerMethodField()
    entry_url = serializers.SerializerMethodField()
    preview_url = serializers.SerializerMethodField()

    class Meta:
        model = Creative
        fields = [
            "id", "organisation", "name", "kind", "status", "rejection_reason",
            "check_failures", "reviewed_by", "reviewed_at", "size", "click_url", "adomain",
            "categories", "secure", "image", "image_url", "alt_text", "html_tag", "bundle",
            "entry_file", "entry_url", "vast_tag_url", "duration", "universal_ad_id",
            "ad_verifications", "media", "renditions", "title", "body", "call_to_action",
            "sponsored_by", "preview_url",
            "archived_at", "version", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = [
            "status", "rejection_reason", "reviewed_at", "adomain", "archived_at", "version",
            "created_at", "updated_at",
        ]  # fmt: skip

    def to_representation(self, instance: Creative) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["size"] = instance.size
        return data

    def get_image_url(self, obj: Creative) -> str | None:
        return asset_url(obj.image.name or "") if obj.image else None

    def get_entry_url(self, obj: Creative) -> str | None:
        return bundle_entry_url(obj) if obj.bundle_root else None

    @extend_schema_field(serializers.CharField())
    def get_preview_url(self, obj: Creative) -> str:
        return reverse("creative-preview", args=[obj.pk])

    def _split(self, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        extra = {"size": data.pop("size", None), "media": data.pop("media", None)}
        return data, extra

    def create(self, validated_data: dict[str, Any]) -> Creative:
        fields, extra = self._split(validated_data)
        return services.create_creative(
            by=self.context["request"].user,
            size=extra["size"],
            media=extra["media"] or (),
            **fields,
        )

    def update(self, instance: Creative, validated_data: dict[str, Any]) -> Creative:
        if validated_data.pop("advertiser", instance.advertiser) != instance.advertiser:
            raise serializers.ValidationError({"organisation": "A creative cannot move."})
        fields, extra = self._split(validated_data)
        return services.update_creative(
            instance,
            by=self.context["request"].user,
            expected_version=self.context.get("expected_version"),
            size=extra["size"],
            media=extra["media"],
            **fields,
        )


class RejectSerializer(serializers.Serializer[dict[str, str]]):
    reason = serializers.CharField(
        max_length=2000, help_text="Why: the advertiser sees it and fixes the creative."
    )
