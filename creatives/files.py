"""Where creative files live and how their public URLs are built.

Every stored name is a content hash, so a changed file gets a new URL and every URL can be
cached forever (`CREATIVES_CACHE_CONTROL`); storing the same bytes twice stores one file.
The storage is the `creatives` alias in `STORAGES`: the local media directory by default,
an S3-compatible bucket when `CREATIVES_S3_BUCKET` is set.
"""

import hashlib
from pathlib import PurePosixPath
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.files.storage import Storage, storages
from django.db.models.fields.files import FieldFile, ImageFieldFile

PREFIX = "creatives"
HASH_CHARS = 32


def creative_storage() -> Storage:
    return storages["creatives"]


def content_digest(content: "File[Any] | bytes") -> str:
    """The hex SHA-256 of a file's bytes (the file is left at its start)."""
    digest = hashlib.sha256()
    if isinstance(content, bytes):
        digest.update(content)
    else:
        content.seek(0)
        for chunk in content.chunks():
            digest.update(chunk)
        content.seek(0)
    return digest.hexdigest()


def hashed_name(content: "File[Any]", original_name: str) -> str:
    suffix = PurePosixPath(original_name).suffix.lower()
    return f"{content_digest(content)[:HASH_CHARS]}{suffix}"


def store_once(name: str, content: "File[Any] | bytes") -> str:
    """Store `content` under `name` unless it is there already (names are content hashes)."""
    storage = creative_storage()
    if storage.exists(name):
        return name
    if isinstance(content, bytes):
        content = ContentFile(content)
    return storage.save(name, content)


def asset_url(name: str) -> str:
    """The public URL of a stored file, on the CDN base."""
    return f"{settings.CDN_BASE_URL}/{name}"


class _HashedSave:
    """FieldFile.save with the name taken from the content, skipping bytes already stored."""

    def save(self, name: str, content: "File[Any]", save: bool = True) -> None:
        field_file: Any = self
        name = field_file.field.generate_filename(field_file.instance, hashed_name(content, name))
        field_file.name = store_once(name, content)
        setattr(field_file.instance, field_file.field.attname, field_file.name)
        field_file._committed = True
        if save:
            field_file.instance.save()


class HashedFieldFile(_HashedSave, FieldFile):
    pass


class HashedImageFieldFile(_HashedSave, ImageFieldFile):
    pass
