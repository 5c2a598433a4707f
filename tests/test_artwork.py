"""Artwork is checked against Apple's rules, never trusted and never re-encoded (issue 4, item 2 and 6)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from support.media import make_image, sha256

from keylime_prod.errors import TagError
from keylime_prod.tags import check_artwork


def _one_line(err: TagError) -> str:
    text = str(err)
    assert "\n" not in text
    return text


def test_valid_jpeg_is_returned_byte_for_byte(tmp_path: Path) -> None:
    path = make_image(tmp_path / "cover.jpg", (1400, 1400))
    before = sha256(path)
    art = check_artwork(path)
    assert (art.format, art.mime, art.width, art.height) == ("JPEG", "image/jpeg", 1400, 1400)
    assert art.data == path.read_bytes()  # never re-encoded
    assert sha256(path) == before  # never modified


@pytest.mark.parametrize(("name", "size"), [("cover.png", (1400, 1400)), ("cover.jpeg", (3000, 3000))])
def test_boundaries_and_png_accepted(tmp_path: Path, name: str, size: tuple[int, int]) -> None:
    path = make_image(tmp_path / name, size)
    art = check_artwork(path)
    assert (art.width, art.height) == size
    assert art.mime == ("image/png" if name.endswith(".png") else "image/jpeg")


@pytest.mark.parametrize(
    ("name", "size", "mode", "fmt", "rule"),
    [
        ("cmyk.jpg", (1400, 1400), "CMYK", None, "colour must be RGB, this image is CMYK"),
        ("gray.jpg", (1400, 1400), "L", None, "colour must be RGB, this image is L"),
        ("alpha.png", (1400, 1400), "RGBA", None, "no alpha channel"),
        ("small.jpg", (600, 600), "RGB", None, "1400-3000 px square, this is 600x600 px"),
        ("huge.jpg", (3001, 3001), "RGB", None, "1400-3000 px square, this is 3001x3001 px"),
        ("wide.jpg", (1600, 1400), "RGB", None, "must be square, this is 1600x1400 px"),
        ("png-named.jpg", (1400, 1400), "RGB", "PNG", "extension must match the content: this is PNG named .jpg"),
        ("jpeg-named.png", (1400, 1400), "RGB", "JPEG", "extension must match the content: this is JPEG named .png"),
        ("cover.gif", (1400, 1400), "RGB", "GIF", "must be JPEG or PNG, this is GIF"),
    ],
)
def test_each_broken_rule_is_one_named_error(
    tmp_path: Path, name: str, size: tuple[int, int], mode: str, fmt: str | None, rule: str
) -> None:
    path = make_image(tmp_path / name, size, mode, fmt)
    before = sha256(path)
    with pytest.raises(TagError) as e:
        check_artwork(path)
    text = _one_line(e.value)
    assert rule in text
    assert text.startswith(str(path))  # where
    assert "never re-encodes" in text or "rename" in text  # what to do
    assert sha256(path) == before


def test_palette_png_with_transparency_is_alpha(tmp_path: Path) -> None:
    img = Image.new("P", (1400, 1400), 0)
    img.putpalette([0, 0, 0, 255, 255, 255])
    img.info["transparency"] = 0
    path = tmp_path / "pal.png"
    img.save(path, transparency=0)
    with pytest.raises(TagError, match="no alpha channel"):
        check_artwork(path)


def test_not_an_image_missing_and_truncated(tmp_path: Path) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    with pytest.raises(TagError, match="must be a JPEG or PNG image"):
        check_artwork(text)
    with pytest.raises(TagError, match="artwork file not found"):
        check_artwork(tmp_path / "missing.jpg")
    good = make_image(tmp_path / "good.jpg")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(TagError, match="corrupt"):
        check_artwork(cut)


def test_chapter_images_skip_only_the_size_rules(tmp_path: Path) -> None:
    small = make_image(tmp_path / "chapter.png", (320, 180))
    art = check_artwork(small, cover=False)
    assert (art.width, art.height, art.mime) == (320, 180, "image/png")
    with pytest.raises(TagError, match="no alpha channel"):
        check_artwork(make_image(tmp_path / "chapter-alpha.png", (320, 320), "RGBA"), cover=False)


def test_the_release_check_and_the_tag_stage_share_one_rule_list() -> None:
    """artwork_problems lists every rule broken (the release check reports them all; check_artwork the first)."""
    from keylime_prod.tags.artwork import artwork_problems

    assert artwork_problems("JPEG", "RGB", 3000, 3000, transparency=False, name="cover.JPG") == []
    got = [what for what, _ in artwork_problems("PNG", "RGBA", 1600, 1400, transparency=False, name="art.jpg")]
    assert got == [
        "the extension must match the content: this is PNG named .jpg",
        "no alpha channel (transparency), this image is RGBA",
        "must be square, this is 1600x1400 px",
    ]
    assert [w for w, _ in artwork_problems("GIF", "P", 1, 1, transparency=True, name="a.gif")] == [
        "must be JPEG or PNG, this is GIF"
    ]
    assert artwork_problems("PNG", "L", 320, 200, transparency=False, name="ch.png", cover=False)[0][0] == (
        "colour must be RGB, this image is L"
    )
