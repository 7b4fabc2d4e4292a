"""Tiny but well-formed media files, built byte by byte so the tests need no encoder.

Each builder writes only what a container parser reads: MP4 boxes with an H.264 sequence
parameter set, a WebM/Matroska header with VP8 key-frame headers, MPEG-1 Layer III frame
headers and AAC ADTS frame headers. The payloads are silence or blank pictures in spirit
and zeros in fact: good enough for libmediainfo, not for a decoder.
"""

import io
import struct
import zipfile

from django.core.files.base import ContentFile
from PIL import Image

# -- MP4 ---------------------------------------------------------------------------------


def _box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I", 8 + len(body)) + kind + body


def _full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *payload)


class _Bits:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, n: int, value: int) -> None:
        self.bits += [(value >> (n - 1 - i)) & 1 for i in range(n)]

    def ue(self, value: int) -> None:
        code = value + 1
        length = code.bit_length()
        self.u(length - 1, 0)
        self.u(length, code)

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def rbsp(self) -> bytes:
        self.u(1, 1)  # rbsp_stop_one_bit
        while len(self.bits) % 8:
            self.bits.append(0)
        raw = bytes(
            int("".join(map(str, self.bits[i : i + 8])), 2) for i in range(0, len(self.bits), 8)
        )
        # Emulation prevention: 00 00 0x (x <= 3) gets a 03 inserted.
        out, zeros = bytearray(), 0
        for b in raw:
            if zeros >= 2 and b <= 3:
                out.append(3)
                zeros = 0
            out.append(b)
            zeros = zeros + 1 if b == 0 else 0
        return bytes(out)


def _sps(width: int, height: int) -> bytes:
    mbs_w, mbs_h = -(-width // 16), -(-height // 16)
    b = _Bits()
    b.u(8, 66)  # profile_idc: Baseline
    b.u(8, 0xC0)  # constraint_set0/1 flags
    b.u(8, 30)  # level_idc 3.0
    b.ue(0)  # seq_parameter_set_id
    b.ue(0)  # log2_max_frame_num_minus4
    b.ue(2)  # pic_order_cnt_type
    b.ue(1)  # max_num_ref_frames
    b.u(1, 0)  # gaps_in_frame_num_value_allowed_flag
    b.ue(mbs_w - 1)
    b.ue(mbs_h - 1)
    b.u(1, 1)  # frame_mbs_only_flag
    b.u(1, 1)  # direct_8x8_inference_flag
    crop_right, crop_bottom = (mbs_w * 16 - width) // 2, (mbs_h * 16 - height) // 2
    if crop_right or crop_bottom:
        b.u(1, 1)
        for value in (0, crop_right, 0, crop_bottom):
            b.ue(value)
    else:
        b.u(1, 0)
    b.u(1, 0)  # vui_parameters_present_flag
    return b"\x67" + b.rbsp()


def _pps() -> bytes:
    b = _Bits()
    b.ue(0)  # pic_parameter_set_id
    b.ue(0)  # seq_parameter_set_id
    b.u(1, 0)  # entropy_coding_mode_flag
    b.u(1, 0)  # bottom_field_pic_order_in_frame_present_flag
    b.ue(0)  # num_slice_groups_minus1
    b.ue(0)  # num_ref_idx_l0_default_active_minus1
    b.ue(0)  # num_ref_idx_l1_default_active_minus1
    b.u(1, 0)  # weighted_pred_flag
    b.u(2, 0)  # weighted_bipred_idc
    b.se(0)  # pic_init_qp_minus26
    b.se(0)  # pic_init_qs_minus26
    b.se(0)  # chroma_qp_index_offset
    b.u(1, 1)  # deblocking_filter_control_present_flag
    b.u(1, 0)  # constrained_intra_pred_flag
    b.u(1, 0)  # redundant_pic_cnt_present_flag
    return b"\x68" + b.rbsp()


def _esds() -> bytes:
    """An MPEG-4 elementary stream descriptor for AAC-LC, 8 kHz, mono."""
    audio_config = bytes([0x15, 0x88])  # object type 2, frequency index 11, one channel
    decoder_info = b"\x05" + bytes([len(audio_config)]) + audio_config
    decoder_config = bytes([0x40, 0x15]) + bytes(3) + struct.pack(">II", 16000, 8000)
    decoder = b"\x04" + bytes([len(decoder_config) + len(decoder_info)]) + decoder_config
    decoder += decoder_info
    es = struct.pack(">HB", 1, 0) + decoder + b"\x06\x01\x02"
    return _full_box(b"esds", 0, 0, b"\x03" + bytes([len(es)]) + es)


def mp4(width: int = 640, height: int = 360, seconds: float = 15.0, fps: int = 2,
        sample_bytes: int = 600, audio_only: bool = False) -> bytes:  # fmt: skip
    """An MP4 (ISO BMFF) file with one H.264 video track, or one AAC track (an .m4a)."""
    timescale = 1000
    frames = max(1, round(seconds * fps))
    delta = round(timescale / fps)
    duration = frames * delta
    samples = [
        struct.pack(">I", sample_bytes - 4) + b"\x65" + bytes(sample_bytes - 5)
        for _ in range(frames)
    ]
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    mvhd = _full_box(
        b"mvhd", 0, 0,
        struct.pack(">IIII", 0, 0, timescale, duration),
        struct.pack(">IH", 0x10000, 0x100), bytes(10), matrix, bytes(24), struct.pack(">I", 2),
    )  # fmt: skip
    if audio_only:
        width = height = 0
    tkhd = _full_box(
        b"tkhd", 0, 3,
        struct.pack(">IIIII", 0, 0, 1, 0, duration), bytes(8),
        struct.pack(">hhhH", 0, 0, 0x100 if audio_only else 0, 0), matrix,
        struct.pack(">II", width << 16, height << 16),
    )  # fmt: skip
    mdhd = _full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, timescale, duration, 0x55C4, 0))
    if audio_only:
        hdlr = _full_box(b"hdlr", 0, 0, struct.pack(">I", 0), b"soun", bytes(12), b"Sound\x00")
        entry = _box(
            b"mp4a",
            bytes(6), struct.pack(">H", 1), bytes(8), struct.pack(">HH", 1, 16), bytes(4),
            struct.pack(">I", 8000 << 16), _esds(),
        )  # fmt: skip
        header = _full_box(b"smhd", 0, 0, bytes(4))
        brand = b"M4A "
    else:
        sps, pps = _sps(width, height), _pps()
        hdlr = _full_box(b"hdlr", 0, 0, struct.pack(">I", 0), b"vide", bytes(12), b"Video\x00")
        avcc = _box(
            b"avcC",
            bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1]), struct.pack(">H", len(sps)), sps,
            b"\x01", struct.pack(">H", len(pps)), pps,
        )  # fmt: skip
        entry = _box(
            b"avc1",
            bytes(6), struct.pack(">H", 1), bytes(16), struct.pack(">HH", width, height),
            struct.pack(">II", 0x480000, 0x480000), bytes(4), struct.pack(">H", 1), bytes(32),
            struct.pack(">Hh", 0x18, -1), avcc,
        )  # fmt: skip
        header = _full_box(b"vmhd", 0, 1, bytes(8))
        brand = b"isom"
    stsd = _full_box(b"stsd", 0, 0, struct.pack(">I", 1), entry)
    stts = _full_box(b"stts", 0, 0, struct.pack(">III", 1, frames, delta))
    stsc = _full_box(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, frames, 1))
    stsz = _full_box(b"stsz", 0, 0, struct.pack(">II", 0, frames),
                     b"".join(struct.pack(">I", len(s)) for s in samples))  # fmt: skip
    ftyp = _box(b"ftyp", brand, struct.pack(">I", 0x200), b"isomiso2mp41")

    def build(chunk_offset: int) -> bytes:
        stco = _full_box(b"stco", 0, 0, struct.pack(">II", 1, chunk_offset))
        stbl = _box(b"stbl", stsd, stts, stsc, stsz, stco)
        dinf = _box(b"dinf", _full_box(b"dref", 0, 0, struct.pack(">I", 1),
                                       _full_box(b"url ", 0, 1)))  # fmt: skip
        minf = _box(b"minf", header, dinf, stbl)
        trak = _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, minf))
        return ftyp + _box(b"moov", mvhd, trak)

    head = build(0)
    head = build(len(head) + 8)  # the media data starts after the header and mdat's own
    return head + _box(b"mdat", *samples)


def m4a(seconds: float = 15.0) -> bytes:
    """AAC in an MP4 container (an .m4a file)."""
    return mp4(seconds=seconds, fps=8, sample_bytes=40, audio_only=True)


# -- WebM ---------------------------------------------------------------------------------


def _ebml_size(n: int) -> bytes:
    return (n | (1 << 56)).to_bytes(8, "big")  # eight-byte vint: any size


def _el(ident: int, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return ident.to_bytes((ident.bit_length() + 7) // 8, "big") + _ebml_size(len(body)) + body


def _uint(ident: int, value: int) -> bytes:
    return _el(ident, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def webm(width: int = 640, height: int = 360, seconds: float = 15.0, fps: int = 2) -> bytes:
    """A WebM file with one VP8 video track of the given size and length."""
    header = _el(
        0x1A45DFA3,
        _uint(0x4286, 1), _uint(0x42F7, 1), _uint(0x42F2, 4), _uint(0x42F3, 8),
        _el(0x4282, b"webm"), _uint(0x4287, 2), _uint(0x4285, 2),
    )  # fmt: skip
    info = _el(
        0x1549A966,
        _uint(0x2AD7B1, 1_000_000),  # TimecodeScale: milliseconds
        _el(0x4489, struct.pack(">d", seconds * 1000)),
        _el(0x4D80, b"tests"), _el(0x5741, b"tests"),
    )  # fmt: skip
    video = _el(0xE0, _uint(0xB0, width), _uint(0xBA, height))
    track = _el(0xAE, _uint(0xD7, 1), _uint(0x73C5, 1), _uint(0x83, 1), _el(0x86, b"V_VP8"), video)
    tracks = _el(0x1654AE6B, track)
    # A VP8 key frame header: frame tag, start code, 14-bit width and height.
    key = bytes([0x50, 0x01, 0x00]) + b"\x9d\x01\x2a" + struct.pack("<HH", width, height)
    blocks = []
    frames = max(1, round(seconds * fps))
    for n in range(frames):
        timecode = round(n * 1000 / fps)
        blocks.append(
            _el(0xA3, b"\x81", struct.pack(">hB", timecode % 30000, 0x80), key, bytes(64))
        )
    cluster = _el(0x1F43B675, _uint(0xE7, 0), *blocks)
    return header + _el(0x18538067, info, tracks, cluster)


# -- Audio ---------------------------------------------------------------------------------


def mp3(seconds: float = 15.0) -> bytes:
    """MPEG-1 Layer III at 32 kbit/s, 32 kHz, mono: 144-byte frames of 36 ms."""
    frame = bytes([0xFF, 0xFB, 0x18, 0xC4]) + bytes(140)
    return frame * round(seconds * 32000 / 1152)


def adts(seconds: float = 15.0) -> bytes:
    """AAC-LC in ADTS frames, 8 kHz mono, 1,024 samples a frame."""
    length = 32
    header = bytes([
        0xFF, 0xF1, (1 << 6) | (11 << 2), (1 << 6) | (length >> 11),
        (length >> 3) & 0xFF, ((length & 7) << 5) | 0x1F, 0xFC,
    ])  # fmt: skip
    frame = header + bytes(length - 8) + b"\x07"
    return frame * round(seconds * 8000 / 1024)


# -- Images and bundles -------------------------------------------------------------------


def image_bytes(width: int, height: int, fmt: str = "PNG", colour: str = "#2e7d32") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buf, format=fmt)
    return buf.getvalue()


def zip_bytes(files: dict[str, bytes | str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return buf.getvalue()


def upload(data: bytes, name: str) -> "ContentFile[bytes]":
    return ContentFile(data, name=name)


def html5_zip(index: str = "", extra: dict[str, bytes | str] | None = None) -> bytes:
    """A small HTML5 bundle: index.html with its stylesheet and image."""
    page = index or (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><link rel="stylesheet" '
        'href="style.css"></head><body><a id="ad" href="#"><img src="logo.png" alt="Acme">'
        "</a><script>document.getElementById('ad').onclick=function(){window.open("
        "new URLSearchParams(location.search).get('clickTag'));return false};</script>"
        "</body></html>"
    )
    files: dict[str, bytes | str] = {
        "index.html": page,
        "style.css": "body{margin:0;background:#fff}",
        "logo.png": image_bytes(60, 20),
    }
    files.update(extra or {})
    return zip_bytes(files)
