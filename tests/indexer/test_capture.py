"""Capture metadata read from EXIF and container tags: exact values where the file says,
missing (never an error) where a tag is malformed."""

from __future__ import annotations

import calendar
import io

import pytest

from mmsearch.indexer.capture import (
    Capture,
    exif_datetime,
    file_capture,
    image_capture,
    mtime_capture,
    utc_offset_minutes,
    video_capture,
)
from tests.photos import LISBON, exif_bytes, malformed_exif_jpeg, shape_image, write_dng, write_heic


def wall(*parts: int) -> float:
    return float(calendar.timegm((*parts, 0)[:6] + (0, 0, 0)))


def jpeg(exif: bytes | None) -> bytes:
    buf = io.BytesIO()
    shape_image("circle", "red").save(buf, "JPEG", **({"exif": exif} if exif else {}))
    return buf.getvalue()


def test_exif_gives_time_offset_camera_lens_description_and_position():
    got = image_capture(
        jpeg(exif_bytes("Canon", "Canon EOS 5D", "2019:06:01 14:30:00", "+01:00", "EF 50mm", "At sea", LISBON))
    )
    assert (got.taken_at, got.taken_offset, got.taken_source) == (wall(2019, 6, 1, 14, 30, 0), 60, "exif")
    assert (got.camera_make, got.camera_model, got.lens, got.description) == (
        "Canon",
        "Canon EOS 5D",
        "EF 50mm",
        "At sea",
    )
    # 38°43'20" N, 9°8'21" W
    assert got.gps_lat == pytest.approx(38 + 43 / 60 + 20 / 3600) and got.gps_lon == pytest.approx(
        -(9 + 8 / 60 + 21 / 3600)
    )


def test_a_photo_without_exif_has_an_empty_capture():
    assert image_capture(jpeg(None)) == Capture()
    assert image_capture(b"not an image at all") == Capture()


def test_malformed_exif_is_read_as_missing_fields(tmp_path):
    malformed_exif_jpeg(tmp_path / "bad.jpg", shape_image("circle", "red"))
    assert image_capture((tmp_path / "bad.jpg").read_bytes()) == Capture()


@pytest.mark.parametrize(
    "value",
    [
        "0000:00:00 00:00:00",
        "2019:13:01 00:00:00",
        "2019:02:30 10:00:00",
        "1700:01:01 00:00:00",
        "3000:01:01 00:00:00",
        "yesterday",
        20190601,
        b"\xff\xfe",
        None,
    ],
)
def test_absurd_or_mistyped_dates_are_missing(value):
    assert exif_datetime(value) is None


@pytest.mark.parametrize(
    "value, minutes",
    [("+01:00", 60), ("-09:30", -570), ("+0545", 345), ("+15:00", None), ("+01:75", None), ("Z", None), (60, None)],
)
def test_utc_offsets(value, minutes):
    assert utc_offset_minutes(value) == minutes


def test_heic_and_dng_carry_their_exif(tmp_path):
    write_heic(
        tmp_path / "a.heic", shape_image("square", "blue"), exif_bytes("Apple", "iPhone 12", "2022:07:10 18:45:00")
    )
    write_dng(tmp_path / "b.dng", shape_image("square", "green"), "Leica", "M10", "2017:05:05 05:05:05")
    heic, dng = file_capture(str(tmp_path / "a.heic"), "image"), file_capture(str(tmp_path / "b.dng"), "image")
    assert (heic.camera_make, heic.camera_model, heic.taken_at) == ("Apple", "iPhone 12", wall(2022, 7, 10, 18, 45, 0))
    assert (dng.camera_make, dng.camera_model, dng.taken_at) == ("Leica", "M10", wall(2017, 5, 5, 5, 5, 5))


def test_video_tags_give_utc_creation_time_and_an_iso6709_place():
    got = video_capture({"creation_time": "2019-06-01T12:00:00.000000Z", "location": "+38.7223-009.1393/"})
    assert (got.taken_at, got.taken_offset, got.taken_source) == (wall(2019, 6, 1, 12, 0, 0), 0, "video")
    assert (got.gps_lat, got.gps_lon) == (38.7223, -9.1393)
    # Apple's own tag keeps the local time and its offset, and names the camera
    got = video_capture(
        {"com.apple.quicktime.creationdate": "2019-06-01T14:30:00+0100", "com.apple.quicktime.model": "iPhone 12"}
    )
    assert (got.taken_at, got.taken_offset, got.camera_model) == (wall(2019, 6, 1, 14, 30, 0), 60, "iPhone 12")
    assert video_capture({"creation_time": "1904-01-01T00:00:00Z", "location": "+91.0+010.0/"}) == Capture()


def test_the_mtime_is_the_time_only_when_the_file_gives_none():
    dated = Capture(taken_at=wall(2019, 6, 1, 0, 0, 0), taken_source="exif")
    assert mtime_capture(dated, 1.6e9).taken_source == "exif"
    got = mtime_capture(Capture(), 1.6e9)
    assert (
        got.taken_source == "mtime" and got.taken_at - got.taken_offset * 60 == 1.6e9
    )  # the local clock, and its offset
