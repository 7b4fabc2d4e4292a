import hashlib
from pathlib import PurePath

from django.core.exceptions import ValidationError
from django.db import models
from PIL import Image, UnidentifiedImageError

ALLOWED_IMAGE_FORMATS = {"JPEG", "PNG", "GIF", "WEBP"}


def creative_upload_to(instance: "Creative", filename: str) -> str:
    # Content-hashed names: a changed file gets a new URL, so CDNs can cache forever.
    content = instance.image.file
    content.seek(0)
    digest = hashlib.sha256(content.read()).hexdigest()[:20]
    content.seek(0)
    return f"creatives/{digest}{PurePath(filename).suffix.lower()}"


class CreativeKind(models.TextChoices):
    IMAGE = "image", "Image"


class Creative(models.Model):
    advertiser = models.ForeignKey(
        "campaigns.Advertiser", on_delete=models.PROTECT, related_name="creatives"
    )
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=CreativeKind.choices, default=CreativeKind.IMAGE)
    image = models.ImageField(
        upload_to=creative_upload_to, width_field="width", height_field="height"
    )
    width = models.PositiveIntegerField(editable=False, default=0)
    height = models.PositiveIntegerField(editable=False, default=0)
    alt_text = models.CharField(max_length=200, blank=True)
    click_url = models.URLField(max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.size})"

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    def clean(self) -> None:
        # The real format is read from the file, never trusted from its name.
        if not self.image:
            return
        try:
            self.image.seek(0)
            with Image.open(self.image) as img:
                fmt = img.format
            self.image.seek(0)
        except (UnidentifiedImageError, OSError) as exc:
            raise ValidationError({"image": "The file is not a readable image."}) from exc
        if fmt not in ALLOWED_IMAGE_FORMATS:
            raise ValidationError({"image": f"{fmt} is not supported; use JPEG, PNG, GIF or WebP."})
