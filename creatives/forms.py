"""The creative upload form the admin and the console share: every kind's fields, media
files read and checked before the services store them."""

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from creatives import services, validation
from creatives.models import Creative, CreativeKind


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one field (the renditions of a video or audio creative)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        files = data if isinstance(data, list | tuple) else [data] if data else []
        return [super(MultipleFileField, self).clean(f, initial) for f in files]


# The form's fields that are model fields, passed to the services by name.
CONTENT_FIELDS = [
    "advertiser", "name", "kind", "click_url", "categories", "secure", "image", "alt_text",
    "html_tag", "bundle", "entry_file", "vast_tag_url", "duration", "universal_ad_id",
    "ad_verifications",
    "title", "body", "call_to_action", "sponsored_by",
]  # fmt: skip


class CreativeForm(forms.ModelForm):
    size = forms.CharField(
        required=False,
        help_text="WIDTHxHEIGHT, like 300x250: the size an image or HTML5 creative is served "
        "at (an image must match it; empty: read from the image).",
    )
    media_files = MultipleFileField(
        required=False,
        help_text="Video: MP4 or WebM renditions. Audio: MP3 or AAC. Choose several files; "
        "uploading replaces the current renditions.",
    )

    class Meta:
        model = Creative
        fields = CONTENT_FIELDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.kind in (CreativeKind.IMAGE, CreativeKind.HTML5):
            self.initial.setdefault("size", self.instance.size)
        if self.instance.pk:
            self.fields["kind"].disabled = True
            self.fields["advertiser"].disabled = True

    def clean_ad_verifications(self) -> Any:
        # An empty box is no verifications (the form field gives None for it).
        return self.cleaned_data.get("ad_verifications") or []

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        size = data.get("size") or ""
        if size:
            try:
                self.instance.width, self.instance.height = validation.parse_size(size)
            except ValidationError as exc:
                self.add_error("size", exc)
        elif data.get("kind") != CreativeKind.IMAGE or "image" in self.changed_data:
            self.instance.width = self.instance.height = 0
        kind, files = data.get("kind"), data.get("media_files") or []
        if files and kind in (CreativeKind.VIDEO, CreativeKind.AUDIO):
            try:
                validation.read_renditions(str(kind), files)
            except ValidationError as exc:
                self.add_error("media_files", exc.message_dict["media"])
        elif files:
            self.add_error("media_files", "Only video and audio creatives have media files.")
        elif (
            kind in (CreativeKind.VIDEO, CreativeKind.AUDIO)
            and not data.get("vast_tag_url")
            and not (self.instance.pk and self.instance.renditions.exists())
        ):
            self.add_error("media_files", f"A {kind} creative needs media files or a VAST tag URL.")
        return data

    def save_through_services(self, *, by: Any) -> Creative:
        """Create or change the creative through `creatives.services` (checks, storage,
        back to review); their ValidationError names the fields."""
        data = self.cleaned_data
        size = data.get("size") or ""
        if self.instance.pk:
            fields = {f: data[f] for f in self.changed_data if f in CONTENT_FIELDS}
            return services.update_creative(
                self.instance, by=by, size=size if "size" in self.changed_data else None,
                media=data.get("media_files") or None, **fields,
            )  # fmt: skip
        fields = {f: data[f] for f in CONTENT_FIELDS if f in data}
        return services.create_creative(
            by=by, size=size or None, media=data.get("media_files") or (), **fields
        )
