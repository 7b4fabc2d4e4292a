"""What a video or audio file really is, read with libmediainfo (pymediainfo).

The container, dimensions, duration and bitrate come from the file, never from its name or
the form. ADTS (raw AAC) streams carry no duration header, so their frames are counted here.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import IO, Any

from pymediainfo import MediaInfo

from creatives.units import weight

MS = Decimal("0.001")
VIDEO_TYPES = "MP4 or WebM"
AUDIO_TYPES = "MP3 or AAC (.aac or .m4a)"

# What libmediainfo's container names are, in words for a message.
_NAMES = {
    "MPEG-4": "an MP4 file",
    "WebM": "a WebM file",
    "MPEG Audio": "an MP3 file",
    "ADTS": "an AAC file",
    "QuickTime": "a QuickTime movie",
    "AVI": "an AVI file",
    "Matroska": "a Matroska file",
    "Wave": "a WAV file",
    "Ogg": "an Ogg file",
    "FLAC": "a FLAC file",
    "Flash Video": "a Flash video",
    "MPEG-TS": "an MPEG transport stream",
    "MPEG-PS": "an MPEG program stream",
}


@dataclass(frozen=True)
class MediaFacts:
    mime_type: str
    width: int
    height: int
    duration: Decimal  # seconds, to the millisecond
    bitrate: int  # kbit/s
    codec: str
    size: int  # bytes


class MediaError(ValueError):
    """What is wrong with a media file, in words for the uploader."""


def _ms(value: Any) -> Decimal:
    return (Decimal(str(float(value))) / 1000).quantize(MS)


def _what(general: Any, tracks: list[Any]) -> str:
    fmt = general.format or ""
    images = [t for t in tracks if t.track_type == "Image"]
    if fmt in _NAMES:
        return _NAMES[fmt]
    if images:
        return f"a {images[0].format} image"
    return f"a {fmt} file"


_ADTS_RATES = (
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
)  # fmt: skip


def adts_duration(data: bytes) -> Decimal | None:
    """The length of an ADTS stream from its frame count (1,024 samples a frame)."""
    start = 0
    if data[:3] == b"ID3" and len(data) >= 10:  # an ID3v2 tag before the stream
        start = 10 + ((data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9])
    frames, rate, i = 0, 0, start
    while i + 7 <= len(data) and data[i] == 0xFF and data[i + 1] & 0xF6 == 0xF0:
        length = ((data[i + 3] & 0x03) << 11) | (data[i + 4] << 3) | (data[i + 5] >> 5)
        index = (data[i + 2] >> 2) & 0x0F
        if length < 7 or index >= len(_ADTS_RATES):
            break
        rate = _ADTS_RATES[index]
        frames += 1
        i += length
    if not frames or not rate:
        return None
    return (Decimal(frames * 1024) / rate).quantize(MS)


def _read_all(file: IO[bytes]) -> bytes:
    file.seek(0)
    data = file.read()
    file.seek(0)
    return data


def probe(file: IO[bytes], label: str, kind: str, max_bytes: int) -> MediaFacts:
    """The facts of one video (`kind` "video") or audio file; raises MediaError."""
    size = getattr(file, "size", None)
    if size is None:
        size = len(_read_all(file))
    if size > max_bytes:
        raise MediaError(
            f"{label} weighs {weight(size)}, over the {weight(max_bytes)} limit for {kind} files."
        )
    file.seek(0)
    try:
        info = MediaInfo.parse(file)
    except (OSError, RuntimeError, ValueError) as exc:
        raise MediaError(f"{label} could not be read ({exc}).") from exc
    finally:
        file.seek(0)
    general = info.general_tracks[0] if info.general_tracks else None
    if general is None or not general.format:
        noun = "an audio file" if kind == "audio" else "a video file"
        raise MediaError(
            f"{label} is not {noun} that can be read: it is damaged or not media at all."
        )
    tracks = list(info.tracks)
    videos, audios = info.video_tracks, info.audio_tracks
    if kind == "video":
        return _video(label, general, tracks, videos, size)
    return _audio(label, general, tracks, videos, audios, size, file)


def _video(label: str, general: Any, tracks: list[Any], videos: list[Any], size: int) -> MediaFacts:
    mime = {"MPEG-4": "video/mp4", "WebM": "video/webm"}.get(general.format)
    if mime is None:
        raise MediaError(
            f"{label} is {_what(general, tracks)}; video renditions must be {VIDEO_TYPES}."
        )
    if not videos:
        raise MediaError(
            f"{label} has no video track that can be read: it is damaged or audio only."
        )
    track = videos[0]
    duration = track.duration or general.duration
    if not track.width or not track.height or not duration:
        raise MediaError(
            f"{label} is damaged or truncated: its video track has no dimensions or duration."
        )
    bitrate = track.bit_rate or general.overall_bit_rate or 0
    codec = track.codec_id if mime == "video/mp4" else (track.format or "").lower()
    return MediaFacts(
        mime_type=mime,
        width=int(track.width),
        height=int(track.height),
        duration=_ms(duration),
        bitrate=round(int(float(bitrate)) / 1000),
        codec=str(codec or ""),
        size=size,
    )


def _audio(
    label: str,
    general: Any,
    tracks: list[Any],
    videos: list[Any],
    audios: list[Any],
    size: int,
    file: IO[bytes],
) -> MediaFacts:
    fmt = general.format
    if fmt == "MPEG Audio":
        mime = "audio/mpeg"
    elif fmt == "ADTS":
        mime = "audio/aac"
    elif fmt == "MPEG-4" and audios and not videos:
        mime = "audio/mp4"
    else:
        what = "a video file" if fmt in ("MPEG-4", "WebM") and videos else _what(general, tracks)
        raise MediaError(f"{label} is {what}; audio must be {AUDIO_TYPES}.")
    if not audios:
        raise MediaError(f"{label} has no audio track that can be read: it is damaged.")
    track = audios[0]
    if mime == "audio/mpeg" and track.format_profile != "Layer 3":
        raise MediaError(
            f"{label} is MPEG audio {track.format_profile}; audio must be {AUDIO_TYPES}."
        )
    duration = (
        adts_duration(_read_all(file))
        if mime == "audio/aac"
        else _ms(track.duration or general.duration or 0)
    )
    if not duration:
        raise MediaError(f"{label} is damaged or truncated: its duration cannot be read.")
    bitrate = track.bit_rate or general.overall_bit_rate
    if not bitrate:
        bitrate = Decimal(size * 8) / duration
    codec = "mp3" if mime == "audio/mpeg" else "mp4a.40.2"
    return MediaFacts(
        mime_type=mime,
        width=0,
        height=0,
        duration=duration,
        bitrate=round(int(float(bitrate)) / 1000),
        codec=codec,
        size=size,
    )
