"""Creatives (issue #5; docs/creatives.md): weight and duration limits, the VAST schema.

Where creative files are stored is in `adsplatform.settings.storage`.
"""

from adsplatform.settings.base import env

CREATIVE_IMAGE_MAX_BYTES = env.int("CREATIVE_IMAGE_MAX_BYTES", default=150 * 1024)
CREATIVE_NATIVE_IMAGE_MAX_BYTES = env.int("CREATIVE_NATIVE_IMAGE_MAX_BYTES", default=500 * 1024)
CREATIVE_HTML5_MAX_BYTES = env.int("CREATIVE_HTML5_MAX_BYTES", default=1024 * 1024)  # the zip
CREATIVE_HTML5_MAX_UNPACKED_BYTES = env.int(
    "CREATIVE_HTML5_MAX_UNPACKED_BYTES", default=5 * 1024 * 1024
)
CREATIVE_HTML5_MAX_FILES = env.int("CREATIVE_HTML5_MAX_FILES", default=200)
CREATIVE_VIDEO_MAX_BYTES = env.int("CREATIVE_VIDEO_MAX_BYTES", default=200 * 1024 * 1024)
CREATIVE_AUDIO_MAX_BYTES = env.int("CREATIVE_AUDIO_MAX_BYTES", default=20 * 1024 * 1024)
CREATIVE_MAX_DURATION_SECONDS = env.int("CREATIVE_MAX_DURATION_SECONDS", default=180)
# The official VAST 4.2 XSD our VAST output is validated against (not in this repository);
# empty: ../shared/reference/vast_4.2.xsd when it exists.
VAST_XSD = env.str("VAST_XSD", default="")
