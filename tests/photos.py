"""Photo files the tests make themselves: shapes `mini` recognises, saved as JPEG with EXIF,
HEIC (pillow-heif) and DNG (a Bayer mosaic written with tifffile), and a small photo
library of them whose expected metadata is known exactly."""

from __future__ import annotations

import calendar
import os
import struct
from pathlib import Path

import numpy as np
import pillow_heif
import tifffile
from PIL import ExifTags, Image, ImageDraw

SIZE = (160, 128)
# Fixed file times for files with no capture date, so their mtime-derived dates are known.
MTIME = calendar.timegm((2016, 3, 4, 5, 6, 7))
LISBON = ((38.0, 43.0, 20.0), "N", (9.0, 8.0, 21.0), "W")
PORTO = ((41.0, 9.0, 0.0), "N", (8.0, 36.0, 36.0), "W")


def shape_image(shape: str, color: str, background: str = "white") -> Image.Image:
    im = Image.new("RGB", SIZE, background)
    draw = ImageDraw.Draw(im)
    box = (40, 24, 120, 104)
    if shape == "circle":
        draw.ellipse(box, fill=color)
    elif shape == "square":
        draw.rectangle(box, fill=color)
    else:
        draw.polygon([(80, 20), (124, 104), (36, 104)], fill=color)
    return im


def exif_bytes(
    make: str | None = None,
    model: str | None = None,
    taken: str | None = None,
    offset: str | None = None,
    lens: str | None = None,
    description: str | None = None,
    gps: tuple | None = None,
) -> bytes:
    exif = Image.Exif()
    for tag, value in ((ExifTags.Base.Make, make), (ExifTags.Base.Model, model), (270, description)):
        if value is not None:
            exif[tag] = value
    details = exif.get_ifd(ExifTags.IFD.Exif)
    for tag, value in (
        (ExifTags.Base.DateTimeOriginal, taken),
        (ExifTags.Base.OffsetTimeOriginal, offset),
        (ExifTags.Base.LensModel, lens),
    ):
        if value is not None:
            details[tag] = value
    if gps is not None:
        lat, lat_ref, lon, lon_ref = gps
        exif.get_ifd(ExifTags.IFD.GPSInfo).update({1: lat_ref, 2: lat, 3: lon_ref, 4: lon})
    return exif.tobytes()


def malformed_exif_jpeg(path: Path, im: Image.Image) -> None:
    """A JPEG whose EXIF (written byte by byte: PIL refuses to write such tags) has a make that
    is a number, a date of zeros, an offset of 99 hours, a latitude that is text, a longitude
    ref that is a number and a longitude whose values lie past the end of the data."""

    def ifd(entries: list[tuple[int, int, int, bytes]], at: int) -> bytes:
        # entries: (tag, type, count, value or offset as 4 bytes); the next-IFD offset is 0
        out = struct.pack("<H", len(entries))
        for tag, typ, count, value in entries:
            out += struct.pack("<HHI", tag, typ, count) + value.ljust(4, b"\x00")
        return out + struct.pack("<I", 0)

    ascii_, short, long_, rational = 2, 3, 4, 5
    exif_at, gps_at = 8 + 2 + 3 * 12 + 4, 8 + 2 + 3 * 12 + 4 + 2 + 2 * 12 + 4
    data_at = gps_at + 2 + 4 * 12 + 4
    date, offset = b"0000:00:00 00:00:00\x00", b"+99:00\x00"
    tiff = b"II*\x00" + struct.pack("<I", 8)
    tiff += ifd(
        [
            (ExifTags.Base.Make, short, 1, struct.pack("<H", 12345)),
            (ExifTags.IFD.Exif, long_, 1, struct.pack("<I", exif_at)),
            (ExifTags.IFD.GPSInfo, long_, 1, struct.pack("<I", gps_at)),
        ],
        8,
    )
    tiff += ifd(
        [
            (ExifTags.Base.DateTimeOriginal, ascii_, len(date), struct.pack("<I", data_at)),
            (ExifTags.Base.OffsetTimeOriginal, ascii_, len(offset), struct.pack("<I", data_at + len(date))),
        ],
        exif_at,
    )
    tiff += ifd(
        [
            (ExifTags.GPS.GPSLatitudeRef, ascii_, 2, b"N\x00"),
            (ExifTags.GPS.GPSLatitude, ascii_, 4, b"38N\x00"),
            (ExifTags.GPS.GPSLongitudeRef, short, 1, struct.pack("<H", 7)),
            (ExifTags.GPS.GPSLongitude, rational, 3, struct.pack("<I", 1 << 20)),  # far past the end
        ],
        gps_at,
    )
    assert len(tiff) == data_at
    im.save(path, "JPEG", exif=b"Exif\x00\x00" + tiff + date + offset)


def write_heic(path: Path, im: Image.Image, exif: bytes | None = None) -> None:
    heif = pillow_heif.from_pillow(im)
    heif.save(path, quality=90, exif=exif)


def write_dng(path: Path, im: Image.Image, make: str, model: str, taken: str) -> None:
    """A DNG of the image as an RGGB Bayer mosaic (16-bit), its make, model and date in IFD0."""
    rgb = np.asarray(im.convert("RGB"), np.uint16) * 257
    mosaic = np.empty(rgb.shape[:2], np.uint16)
    mosaic[0::2, 0::2] = rgb[0::2, 0::2, 0]
    mosaic[0::2, 1::2] = rgb[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = rgb[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = rgb[1::2, 1::2, 2]
    identity = (1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1)
    tags = [
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50708, "s", 0, f"{make} {model}", True),  # UniqueCameraModel
        (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, "B", 4, (0, 1, 1, 2), True),  # CFAPattern: RGGB
        (50717, "I", 1, 65535, True),  # WhiteLevel
        (50721, "2i", 9, identity, True),  # ColorMatrix1
        (271, "s", 0, make, True),
        (272, "s", 0, model, True),
        (36867, "s", 0, taken, True),  # DateTimeOriginal, in IFD0 as TIFF/EP allows
    ]
    tifffile.imwrite(path, mosaic, photometric=32803, extratags=tags, metadata=None)


# name -> what indexing it must store: (taken_at ISO or None, source, make, model, place word)
EXPECTED = {
    "canon_lisbon_2019.jpg": ("2019-06-01T14:30:00+01:00", "exif", "Canon", "Canon EOS 5D", "Lisbon"),
    "canon_lisbon_2021.jpg": ("2021-08-15T09:00:00", "exif", "Canon", "Canon EOS 5D", "Lisbon"),
    "nikon_porto_2018.jpg": ("2018-12-24T20:15:00-02:00", "exif", "NIKON CORPORATION", "NIKON D750", "Porto"),
    "sony_2020.jpg": ("2020-02-29T12:00:00", "exif", "SONY", "ILCE-7M3", None),
    "IMG_2041.jpg": (None, "mtime", None, None, None),
    "plain.png": (None, "mtime", None, None, None),
    "malformed.jpg": (None, "mtime", None, None, None),
    "iphone.heic": ("2022-07-10T18:45:00+01:00", "exif", "Apple", "iPhone 12", "Porto"),
    "leica.dng": ("2017-05-05T05:05:05", "exif", "Leica", "M10", None),
    "pixel.avif": ("2023-03-03T03:03:03", "exif", "Google", "Pixel 7", None),
}


# The photos EXPECTED dates from EXIF, newest first (the rest are dated by their 2016 mtime).
DATED_NEWEST_FIRST = [
    "pixel.avif",
    "iphone.heic",
    "canon_lisbon_2021.jpg",
    "sony_2020.jpg",
    "canon_lisbon_2019.jpg",
    "nikon_porto_2018.jpg",
    "leica.dng",
]


def make_photo_library(folder: Path) -> dict[str, tuple]:
    """The library EXPECTED describes: three cameras (and an iPhone and a Leica), positions
    in Lisbon and Porto, files with no EXIF and one with malformed EXIF, a HEIC, an AVIF and a DNG.
    Content: the HEIC is the only blue square, the DNG the only green triangle."""
    folder.mkdir(parents=True, exist_ok=True)
    red, yellow = shape_image("circle", "red"), shape_image("circle", "yellow")
    jpegs = {
        "canon_lisbon_2019.jpg": (
            red,
            exif_bytes("Canon", "Canon EOS 5D", "2019:06:01 14:30:00", "+01:00", "EF 50mm f/1.8", gps=LISBON),
        ),
        "canon_lisbon_2021.jpg": (yellow, exif_bytes("Canon", "Canon EOS 5D", "2021:08:15 09:00:00", gps=LISBON)),
        "nikon_porto_2018.jpg": (
            red,
            exif_bytes("NIKON CORPORATION", "NIKON D750", "2018:12:24 20:15:00", "-02:00", gps=PORTO),
        ),
        "sony_2020.jpg": (
            yellow,
            exif_bytes("SONY", "ILCE-7M3", "2020:02:29 12:00:00", description="Birthday at the beach"),
        ),
        "IMG_2041.jpg": (shape_image("triangle", "red"), None),
    }
    for name, (im, exif) in jpegs.items():
        im.save(folder / name, "JPEG", quality=92, **({"exif": exif} if exif else {}))
    shape_image("circle", "yellow").save(folder / "plain.png")
    malformed_exif_jpeg(folder / "malformed.jpg", shape_image("triangle", "yellow"))
    write_heic(
        folder / "iphone.heic",
        shape_image("square", "blue"),
        exif_bytes("Apple", "iPhone 12", "2022:07:10 18:45:00", "+01:00", gps=PORTO),
    )
    shape_image("square", "red").save(
        folder / "pixel.avif", "AVIF", exif=exif_bytes("Google", "Pixel 7", "2023:03:03 03:03:03")
    )
    write_dng(folder / "leica.dng", shape_image("triangle", "green"), "Leica", "M10", "2017:05:05 05:05:05")
    for name in EXPECTED:
        os.utime(folder / name, (MTIME, MTIME))
    return EXPECTED


# The groups make_duplicate_library plants: keeper first (the largest), then its copies, the
# most similar first.
DUPLICATE_GROUPS = [
    ["scene-000000.jpg", "copy-0-small.jpg", "copy-0-cropped.jpg"],
    ["scene-000004.jpg", "copy-4-cropped.jpg"],
]


def make_duplicate_library(folder: Path) -> list[list[str]]:
    """Ten distinct photo-like scenes, three copies of two of them (cropped, scaled, re-encoded)
    in a folder of their own; DUPLICATE_GROUPS names them."""
    from mmsearch.datasets.photos import write_copy, write_scenes

    scenes = write_scenes(folder / "scenes", 10, seed=3)
    (folder / "copies").mkdir()
    write_copy(scenes[0], folder / "copies" / "copy-0-cropped.jpg", (0.03, 0.02, 0.0, 0.04), 0.8, 75)
    write_copy(scenes[0], folder / "copies" / "copy-0-small.jpg", (0, 0, 0, 0), 0.5, 60)
    write_copy(scenes[4], folder / "copies" / "copy-4-cropped.jpg", (0.04, 0.04, 0.04, 0.04), 0.9, 85)
    return DUPLICATE_GROUPS
