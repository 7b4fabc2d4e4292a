"""Files: static files, uploaded media, and where creatives and telemetry files are stored."""

from adsplatform.settings.base import DEBUG, VAR_DIR, env

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=VAR_DIR / "static")
MEDIA_URL = "media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=VAR_DIR / "media")
# Uploaded creatives are served by Django itself only when no CDN fronts them (the demo).
SERVE_MEDIA = env.bool("SERVE_MEDIA", default=DEBUG)

# Creative files are stored under content-hashed names, so every object may be cached for a
# year; the CDN (and the demo's media view) sends this header. Rendered asset URLs are built
# on CDN_BASE_URL, which maps to the root of this storage.
CREATIVES_CACHE_CONTROL = "public, max-age=31536000, immutable"
# An S3-compatible bucket when set (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
# or the instance role); the local MEDIA_ROOT otherwise.
CREATIVES_S3_BUCKET = env.str("CREATIVES_S3_BUCKET", default="")
# An S3-compatible bucket when set (endpoint and region as the creatives'); the local
# var/telemetry/ otherwise (docs/telemetry.md).
TELEMETRY_S3_BUCKET = env.str("TELEMETRY_S3_BUCKET", default="")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    "creatives": (
        {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": CREATIVES_S3_BUCKET,
                "endpoint_url": env.str("CREATIVES_S3_ENDPOINT_URL", default="") or None,
                "region_name": env.str("CREATIVES_S3_REGION", default="") or None,
                "location": env.str("CREATIVES_S3_PREFIX", default=""),
                "querystring_auth": False,
                "file_overwrite": True,  # a name is a content hash: same name, same bytes
                "object_parameters": {"CacheControl": CREATIVES_CACHE_CONTROL},
            },
        }
        if CREATIVES_S3_BUCKET
        else {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    ),
    "telemetry": (
        {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": TELEMETRY_S3_BUCKET,
                "endpoint_url": env.str("CREATIVES_S3_ENDPOINT_URL", default="") or None,
                "region_name": env.str("CREATIVES_S3_REGION", default="") or None,
                "location": env.str("TELEMETRY_S3_PREFIX", default="telemetry"),
                "querystring_auth": False,
                "file_overwrite": True,  # a batch written again replaces its file
            },
        }
        if TELEMETRY_S3_BUCKET
        else {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(env.path("TELEMETRY_ROOT", default=VAR_DIR / "telemetry"))},
        }
    ),
}
