"""Apple Podcasts' artwork rules (docs/platform.md, "Artwork"), in one place: the tag stage checks the cover and
chapter images it embeds (:func:`check_artwork`), the live-feed release check the images the feed points at
(:func:`artwork_problems`). Artwork is checked, never re-encoded."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image, UnidentifiedImageError

from ..errors import TagError

#: Apple Podcasts artwork rules: square, 1400-3000 px, JPEG or PNG, RGB, no alpha.
ARTWORK_MIN_PX = 1400
ARTWORK_MAX_PX = 3000
#: Pillow's format name -> (media type, the file extensions that name it).
FORMATS = {"JPEG": ("image/jpeg", (".jpg", ".jpeg")), "PNG": ("image/png", (".png",))}
ARTWORK_HINT = "export it again as a square RGB JPEG or PNG, 1400-3000 px; keylime-prod never re-encodes artwork"
_ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")


@dataclass(frozen=True)
class Artwork:
    """An image file that passed :func:`check_artwork`, read once, bytes untouched."""

    path: Path
    format: str  # "JPEG" or "PNG"
    mime: str
    width: int
    height: int
    data: bytes


def artwork_problems(
    fmt: str, mode: str, width: int, height: int, *, transparency: bool, name: str, cover: bool = True
) -> list[tuple[str, str]]:
    """Every Apple artwork rule an image breaks, in the order they are checked, as ``(what, what to do)``.

    ``fmt`` is Pillow's format name, ``name`` the file's name (its extension must match the content). A ``cover``
    must also be square and 1400-3000 px; chapter images skip the size rules. Empty when the image passes.
    """
    if fmt not in FORMATS:
        return [(f"must be JPEG or PNG, this is {fmt}", ARTWORK_HINT)]
    out = []
    exts = FORMATS[fmt][1]
    named = PurePosixPath(name)
    if named.suffix.lower() not in exts:
        out.append(
            (
                f"the extension must match the content: this is {fmt} named {named.suffix or '(none)'}",
                f"rename it to {named.stem}{exts[0]} (and update the config) or export it as the format its name says",
            )
        )
    if mode in _ALPHA_MODES or transparency:
        out.append((f"no alpha channel (transparency), this image is {mode}", ARTWORK_HINT))
    elif mode != "RGB":
        out.append((f"colour must be RGB, this image is {mode}", ARTWORK_HINT))
    if cover:
        if width != height:
            out.append((f"must be square, this is {width}x{height} px", ARTWORK_HINT))
        elif not ARTWORK_MIN_PX <= width <= ARTWORK_MAX_PX:
            out.append((f"{ARTWORK_MIN_PX}-{ARTWORK_MAX_PX} px square, this is {width}x{height} px", ARTWORK_HINT))
    return out


def check_artwork(path: Path, *, cover: bool = True) -> Artwork:
    """Check an image against Apple's artwork rules and return its bytes unchanged.

    Rules, in this order: a JPEG or PNG file; the extension matches the content; no alpha channel; RGB colour;
    and for a ``cover``: square, 1400 to 3000 px. Chapter images (``cover=False``) skip the size rules. The first
    violation is a one-line :class:`TagError` naming the rule.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TagError("artwork file not found", where=path, hint="fix the artwork path in the config") from None
    except OSError as e:
        raise TagError(f"cannot read artwork: {e.strerror}", where=path) from e
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or "unknown"
            mode = img.mode
            width, height = img.size
            transparency = "transparency" in img.info
            if fmt in FORMATS:
                img.load()  # a truncated or corrupt file fails here rather than in a player
    except Image.DecompressionBombError as e:
        # Pillow refuses images over ~179 Mpx before decoding them (a decompression bomb); Apple's limit is 3000 px.
        raise TagError(f"artwork rule: at most {ARTWORK_MAX_PX} px square, this image is far larger ({e})", where=path,
                       hint=ARTWORK_HINT) from None  # fmt: skip
    except UnidentifiedImageError:
        raise TagError("artwork rule: must be a JPEG or PNG image (not an image file)", where=path,
                       hint=ARTWORK_HINT) from None  # fmt: skip
    except (OSError, ValueError, SyntaxError) as e:
        raise TagError(f"artwork is corrupt: {e}", where=path, hint=ARTWORK_HINT) from e
    problems = artwork_problems(fmt, mode, width, height, transparency=transparency, name=path.name, cover=cover)
    if problems:
        what, hint = problems[0]
        raise TagError(f"artwork rule: {what}", where=path, hint=hint)
    return Artwork(path=path, format=fmt, mime=FORMATS[fmt][0], width=width, height=height, data=data)
