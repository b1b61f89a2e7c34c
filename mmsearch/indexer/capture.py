"""When, with what and where a photo or video was taken: EXIF for images, container tags for
videos, the file's mtime when neither says. Read in the decode workers (no torch).

Times are kept as the clock on the wall where the picture was taken (seconds since the
epoch, read as if UTC), with the offset to UTC when the file gives one: "photos from last
summer" means summer where they were taken, and most cameras record no zone at all.

Malformed tags (wrong types, absurd dates, truncated IFDs, impossible coordinates) are read
as missing: a field is dropped, never the file.
"""

from __future__ import annotations

import calendar
import datetime as dt
import io
import math
import re
import time
import warnings
from dataclasses import asdict, dataclass

from PIL import ExifTags, Image

from .. import imageio  # noqa: F401 (registers the HEIF opener: iPhone photos' EXIF)

# Dates outside these years are a camera's unset clock or a corrupt tag, not a capture time.
FIRST_YEAR = 1826  # the oldest surviving photograph
FUTURE_SLACK_S = 2 * 86_400  # a clock a little ahead (or a zone away) is still believed
# The epochs of QuickTime and of Unix: what a camera with an unset clock writes.
UNSET_CLOCKS = (float(calendar.timegm((1904, 1, 1, 0, 0, 0))), 0.0)
TEXT_LIMIT = 256  # longest make, model, lens or description kept; longer ones are cut
_EXIF_DATE = re.compile(r"^\s*(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET = re.compile(r"^\s*([+-])(\d{2}):?(\d{2})\s*$")
# ISO 6709, as phones write a video's place: +38.7223-009.1393+012.5/
_ISO6709 = re.compile(r"^\s*([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)")
_VIDEO_LOCATION_TAGS = ("com.apple.quicktime.location.ISO6709", "location", "location-eng")


@dataclass
class Capture:
    taken_at: float | None = None  # wall-clock seconds where it was taken, read as if UTC
    taken_offset: int | None = None  # minutes east of UTC, when the file says
    taken_source: str | None = None  # exif | video | mtime
    camera_make: str | None = None
    camera_model: str | None = None
    lens: str | None = None
    description: str | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None

    def columns(self) -> dict:
        """As keyword arguments of a media row."""
        return asdict(self)


def image_capture(data: bytes) -> Capture:
    """What an encoded image's EXIF says, or a TIFF-based RAW file's (an empty Capture when
    it has none or it cannot be read)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Truncated File Read" and the like: the fields are dropped instead
        try:
            with Image.open(io.BytesIO(data)) as im:
                return exif_capture(im.getexif())
        except Exception:  # PIL raises many types for a truncated or corrupt header
            pass
        if data[:4] in (b"II*\x00", b"MM\x00*"):  # a camera RAW file PIL cannot open: its TIFF IFDs hold the EXIF
            try:
                exif = Image.Exif()
                exif.load(data)
                return exif_capture(exif)
            except Exception:
                pass
    return Capture()


def exif_capture(exif: Image.Exif) -> Capture:
    out = Capture()
    base = _ifd(exif, None)
    details = _ifd(exif, ExifTags.IFD.Exif)
    gps = _ifd(exif, ExifTags.IFD.GPSInfo)
    out.camera_make = _text(base.get(ExifTags.Base.Make))
    out.camera_model = _text(base.get(ExifTags.Base.Model))
    out.description = _text(base.get(ExifTags.Base.ImageDescription))
    out.lens = _text(details.get(ExifTags.Base.LensModel)) or _text(details.get(ExifTags.Base.LensMake))
    for date_tag, offset_tag in (
        (ExifTags.Base.DateTimeOriginal, ExifTags.Base.OffsetTimeOriginal),
        (ExifTags.Base.DateTimeDigitized, ExifTags.Base.OffsetTimeDigitized),
    ):
        # TIFF/EP (DNG and other RAW files) may keep the date in IFD0 itself
        taken = exif_datetime(details.get(date_tag)) or exif_datetime(base.get(date_tag))
        if taken is not None:
            out.taken_at, out.taken_source = taken, "exif"
            out.taken_offset = utc_offset_minutes(details.get(offset_tag) or base.get(offset_tag))
            break
    out.gps_lat, out.gps_lon = gps_position(gps)
    return out


def _ifd(exif: Image.Exif, ifd: int | None) -> dict:
    try:
        return dict(exif) if ifd is None else dict(exif.get_ifd(ifd))
    except Exception:  # a truncated or looping IFD
        return {}


def _text(value) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", "").strip()
    return value[:TEXT_LIMIT] or None


def believable(wall_clock: float) -> bool:
    """Within photography's years, and not the zero of a clock that was never set."""
    if wall_clock in UNSET_CLOCKS:
        return False
    return calendar.timegm((FIRST_YEAR, 1, 1, 0, 0, 0)) <= wall_clock <= time.time() + FUTURE_SLACK_S


def exif_datetime(value) -> float | None:
    """'2019:06:01 14:30:00' -> wall-clock seconds; None for anything else or an absurd date."""
    text = _text(value)
    match = _EXIF_DATE.match(text) if text else None
    if not match:
        return None
    try:
        seconds = calendar.timegm(dt.datetime(*map(int, match.groups())).timetuple())
    except ValueError:  # month 13, day 0, "0000:00:00 00:00:00"
        return None
    return float(seconds) if believable(seconds) else None


def utc_offset_minutes(value) -> int | None:
    """'+01:00' -> 60; None unless it is a real zone offset (within 14 hours)."""
    text = _text(value)
    match = _OFFSET.match(text) if text else None
    if not match:
        return None
    sign, hours, minutes = match.groups()
    total = int(hours) * 60 + int(minutes)
    return (-total if sign == "-" else total) if total <= 14 * 60 and int(minutes) < 60 else None


def gps_position(gps: dict) -> tuple[float | None, float | None]:
    """Signed degrees from the GPS IFD; (None, None) when missing, malformed or out of range.
    (0, 0) is taken as a receiver with no fix, which writes zeros, not as a photo at sea."""
    lat = _degrees(gps.get(ExifTags.GPS.GPSLatitude), gps.get(ExifTags.GPS.GPSLatitudeRef), "S")
    lon = _degrees(gps.get(ExifTags.GPS.GPSLongitude), gps.get(ExifTags.GPS.GPSLongitudeRef), "W")
    return valid_position(lat, lon)


def valid_position(lat: float | None, lon: float | None) -> tuple[float | None, float | None]:
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return None, None
    return lat, lon


def _degrees(value, ref, negative: str) -> float | None:
    try:
        d, m, s = (float(part) for part in value)
    except (TypeError, ValueError, ZeroDivisionError):  # not three rationals (or one with a zero denominator)
        return None
    degrees = d + m / 60 + s / 3600
    if not math.isfinite(degrees):
        return None
    return -degrees if _text(ref) and _text(ref).upper().startswith(negative) else degrees


def file_capture(path: str, kind: str) -> Capture:
    """The capture of a stored image or video file, read on its own (no decoding of pixels)."""
    if kind == "video":
        return video_file_capture(path)
    try:
        with open(path, "rb") as f:
            return image_capture(f.read())
    except OSError:
        return Capture()


def video_file_capture(path: str) -> Capture:
    """video_capture of a file's container tags (and its first video stream's, which some
    cameras write instead); an empty Capture when they cannot be read."""
    import av

    try:
        with av.open(path) as container:
            tags = {**(container.streams.video[0].metadata if container.streams.video else {}), **container.metadata}
    except Exception:  # the frames were readable (or the file is an error row already): tags are extra
        return Capture()
    return video_capture(tags)


def video_capture(tags: dict) -> Capture:
    """From a video container's tags (PyAV's container.metadata): creation_time is UTC by the
    QuickTime and Matroska specs; the place is an ISO 6709 string."""
    out = Capture()
    created = _iso_utc(tags.get("com.apple.quicktime.creationdate")) or _iso_utc(tags.get("creation_time"))
    if created is not None:
        out.taken_at, out.taken_offset = created
        out.taken_source = "video"
    out.camera_make = _text(tags.get("com.apple.quicktime.make") or tags.get("make"))
    out.camera_model = _text(tags.get("com.apple.quicktime.model") or tags.get("model"))
    for tag in _VIDEO_LOCATION_TAGS:
        match = _ISO6709.match(_text(tags.get(tag)) or "")
        if match:
            out.gps_lat, out.gps_lon = valid_position(float(match.group(1)), float(match.group(2)))
            break
    return out


def _iso_utc(value) -> tuple[float, int] | None:
    """An ISO 8601 time -> (wall-clock seconds, offset minutes); a time with no zone is UTC."""
    text = _text(value)
    if not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    offset = when.utcoffset() or dt.timedelta(0)
    wall = calendar.timegm(when.replace(tzinfo=None).timetuple())
    return (float(wall), int(offset.total_seconds() // 60)) if believable(wall) else None


def mtime_capture(capture: Capture, mtime: float) -> Capture:
    """The capture with the file's modification time as its time when it has none, as the
    indexing machine's clock showed it."""
    if capture.taken_at is not None or not mtime:
        return capture
    local = dt.datetime.fromtimestamp(mtime).astimezone()
    capture.taken_at = float(calendar.timegm(local.replace(tzinfo=None).timetuple()))
    capture.taken_offset = int(local.utcoffset().total_seconds() // 60)
    capture.taken_source = "mtime"
    return capture
