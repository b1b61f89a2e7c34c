"""sniff(): what kind of media a file is, from its first bytes and never from its name.

The index job relies on it to pick files up (a photo saved without an extension), to leave
non-media alone (a README), and to record a file named like media whose bytes are not."""

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from mmsearch.indexer.scan import sniff


def _image(tmp_path: Path, name: str, fmt: str) -> Path:
    path = tmp_path / name
    Image.new("RGB", (16, 12), (200, 30, 40)).save(path, format=fmt)
    return path


def _video(tmp_path: Path, name: str, codec: str) -> Path:
    """A real two-frame video written by the same library (FFmpeg) the indexer decodes with."""
    path = tmp_path / name
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=4)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for k in range(2):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 60 * k, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _bytes(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("a.png", "PNG"), ("a.jpg", "JPEG"), ("a.gif", "GIF"), ("a.webp", "WEBP"), ("a.bmp", "BMP"), ("a.tif", "TIFF")],
)
def test_real_images_written_by_pil_are_images(tmp_path, name, fmt):
    assert sniff(_image(tmp_path, name, fmt)) == "image"


@pytest.mark.parametrize(
    ("name", "codec"),
    [("a.mp4", "mpeg4"), ("a.mov", "mpeg4"), ("a.avi", "mpeg4"), ("a.mkv", "mpeg4"), ("a.webm", "libvpx")],
)
def test_real_videos_are_videos(tmp_path, name, codec):
    assert sniff(_video(tmp_path, name, codec)) == "video"


def test_the_name_is_ignored_an_image_without_extension_or_with_a_video_extension_is_an_image(tmp_path):
    png = _image(tmp_path, "a.png", "PNG")
    no_ext = tmp_path / "scan0001"
    as_video = tmp_path / "holiday.mp4"
    no_ext.write_bytes(png.read_bytes())
    as_video.write_bytes(png.read_bytes())
    assert sniff(no_ext) == "image"
    assert sniff(as_video) == "image"


def test_a_video_named_jpg_is_a_video(tmp_path):
    mp4 = _video(tmp_path, "a.mp4", "mpeg4")
    renamed = tmp_path / "photo.jpg"
    renamed.write_bytes(mp4.read_bytes())
    assert sniff(renamed) == "video"


def test_a_text_file_renamed_jpg_is_not_media(tmp_path):
    assert sniff(_bytes(tmp_path, "photo.jpg", b"this is not a picture, just some notes\n" * 4)) is None


def test_an_empty_file_is_not_media(tmp_path):
    assert sniff(_bytes(tmp_path, "empty.png", b"")) is None


@pytest.mark.parametrize(
    "head",
    [
        b"\xff\xd8",  # JPEG SOI without the marker that follows it
        b"\x89PNG",  # PNG signature cut after 4 of its 8 bytes
        b"GIF8",  # GIF87a/GIF89a cut short
        b"RIFF\x10\x00\x00\x00",  # RIFF container with no form type (WEBP/AVI) yet
        b"\x00\x00\x00\x18fty",  # "ftyp" box cut short
        b"\x1a\x45\xdf",  # Matroska/WebM EBML magic cut short
    ],
)
def test_a_header_truncated_before_its_signature_is_complete_is_not_media(tmp_path, head):
    assert sniff(_bytes(tmp_path, "cut.bin", head)) is None


def test_an_image_truncated_after_its_header_is_still_an_image(tmp_path):
    """Judged by its header: the decoder, not sniff, finds it broken (and records the error)."""
    jpg = _image(tmp_path, "a.jpg", "JPEG")
    cut = _bytes(tmp_path, "cut.jpg", jpg.read_bytes()[:40])
    assert sniff(cut) == "image"


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "image"),  # HEIC photo
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1", "image"),  # AVIF photo
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic", "image"),  # HEIF, generic brand
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2", "video"),  # MP4
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  ", "video"),  # QuickTime .mov
        (b"RIFF\x24\x00\x00\x00AVI LIST", "video"),  # AVI
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image"),  # WebP
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),  # WAV audio: RIFF, but neither WebP nor AVI
        (b"II*\x00\x08\x00\x00\x00", "image"),  # TIFF little endian
        (b"MM\x00*\x00\x00\x00\x08", "image"),  # TIFF big endian
        (b"%PDF-1.7\n", None),
        (b"PK\x03\x04\x14\x00", None),  # zip
    ],
)
def test_container_brands_decide_between_image_video_and_neither(tmp_path, head, kind):
    assert sniff(_bytes(tmp_path, "f.bin", head + b"\x00" * 64)) == kind


def test_a_file_that_cannot_be_read_is_not_media(tmp_path):
    assert sniff(tmp_path / "gone.jpg") is None  # missing
    assert sniff(tmp_path) is None  # a folder


def test_a_text_file_that_happens_to_start_with_bm_is_not_media(tmp_path):
    assert sniff(_bytes(tmp_path, "README.txt", b"BMW service history\n2019: brakes\n")) is None


def test_an_m4a_audio_file_is_not_a_video(tmp_path):
    assert (
        sniff(_bytes(tmp_path, "song.m4a", b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00M4A isom" + b"\x00" * 64)) is None
    )
