"""A promoter's share poster: a PNG drawn with Pillow (the product's picture, name and price, the
promoter's QR code with their referral link, a line of text), for saving and posting in WeChat.

Chinese text needs a font with CJK glyphs: `settings.O2O_POSTER_FONT` (a path) when it opens,
else the first Noto CJK or WenQuanYi font found in the usual places, else Pillow's own font
(Latin only: Chinese then shows as boxes, but the poster is still drawn and its QR code works).
Nothing here touches the database.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO

import qrcode
from django.conf import settings
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError
from qrcode.image.pil import PilImage

logger = logging.getLogger(__name__)

WIDTH, HEIGHT = 750, 1200  # WeChat's usual poster width; tall enough for a square picture
MARGIN = 40
BRAND = (232, 83, 122)  # --brand of the mall's style sheet
INK, MUTED, PAPER = (34, 34, 34), (119, 119, 119), (255, 255, 255)
QR_SIZE = 240
# The largest picture read for a poster; a bigger upload is skipped rather than decoded.
MAX_PICTURE_PIXELS = 40_000_000

# Where Debian/Ubuntu, Fedora, Alpine and macOS keep fonts with Chinese glyphs, best first.
FONT_CANDIDATES: tuple[str, ...] = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/wqy-microhei/wqy-microhei.ttc",
    "/usr/share/fonts/wenquanyi/wqy-microhei/wqy-microhei.ttc",
    "/System/Library/Fonts/PingFang.ttc",
)


@dataclass(frozen=True)
class PosterContent:
    heading: str  # the chain's name, in the band at the top
    title: str  # the product's name, or the mall's invitation
    price: str  # "¥199.00", or "" for the mall
    caption: str  # the line under the QR code
    link: str  # what the QR code opens: the promoter's referral link
    subtitle: str = ""  # a line under the title (the SKU's specification)


def _opens(path: str) -> tuple[str, int] | None:
    """(path, face index) of a font file Pillow can open; in a collection, the Simplified Chinese face."""
    try:
        if not path or not Path(path).is_file():
            return None
    except (OSError, ValueError):  # unreadable directory, or not a path at all
        return None
    faces = []
    for index in range(8):  # a collection (.ttc) holds several faces; a plain font one
        try:
            faces.append((index, ImageFont.truetype(path, 12, index=index)))
        except (OSError, ValueError):  # no such face, or not a font Pillow can read
            break
    if not faces:
        logger.warning("The poster font %s cannot be read", path)
        return None
    for index, face in faces:
        family = " ".join(face.getname() or ())
        if "SC" in family.split() or "Simplified" in family:
            return path, index
    return path, faces[0][0]


@lru_cache(maxsize=8)
def _font_file(configured: str) -> tuple[str, int] | None:
    found = _opens(configured)
    if configured and found is None:
        logger.warning("O2O_POSTER_FONT=%s does not open; looking for a CJK font on the system", configured)
    for candidate in () if found else FONT_CANDIDATES:
        found = _opens(candidate)
        if found:
            break
    return found


def poster_font_file() -> tuple[str, int] | None:
    """The font file posters use and its face index, or None for Pillow's own font."""
    return _font_file(getattr(settings, "O2O_POSTER_FONT", "") or "")


def forget_poster_font() -> None:
    _font_file.cache_clear()
    _font.cache_clear()


@lru_cache(maxsize=32)
def _font(source: tuple[str, int] | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if source is not None:
        try:
            return ImageFont.truetype(source[0], size, index=source[1])
        except OSError:
            logger.warning("The poster font %s cannot be read", source[0], exc_info=True)
    return ImageFont.load_default(size=size)


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return _font(poster_font_file(), size)


def qr_image(data: str, size: int) -> Image.Image:
    """The QR code of `data` as a square RGB image of `size` pixels (error correction M)."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=10, border=2)
    code.add_data(data)
    code.make(fit=True)
    image = code.make_image(image_factory=PilImage).get_image().convert("RGB")
    return image.resize((size, size), Image.Resampling.NEAREST)


def _picture(source: IO[bytes] | None, box: tuple[int, int]) -> Image.Image | None:
    """The product's picture fitted into `box`, or None when there is none or it does not decode."""
    if source is None:
        return None
    try:
        with Image.open(source) as picture:
            width, height = picture.size
            if width * height > MAX_PICTURE_PIXELS:
                return None
            picture.draft("RGB", box)  # JPEG: decode at a reduced scale
            fitted = picture.convert("RGB")
            fitted.thumbnail(box, Image.Resampling.LANCZOS)
            return fitted
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        logger.warning("A product picture could not be drawn on a poster", exc_info=True)
        return None


# Words of Latin script and numbers stay whole; every other character (Chinese) may break anywhere.
_TOKENS = re.compile(r"[0-9A-Za-z\u00c0-\u024f¥$.,:;!?'’%&()\-/]+|\s+|.")


def _wrap(draw: ImageDraw.ImageDraw, text: str, face, width: int, max_lines: int) -> list[str]:
    """Break `text` into lines of at most `width` pixels (Chinese between any two characters,
    other scripts between words), ending with "…" when it needs more than `max_lines`."""

    def fits(line: str) -> bool:
        return draw.textlength(line, font=face) <= width

    tokens: list[str] = []
    for token in _TOKENS.findall(text.replace("\n", " ")):
        tokens.extend([token] if fits(token) else list(token))  # a word longer than a line: by character
    lines: list[str] = []
    line = ""
    for token in tokens:
        if fits(line + token):
            line += token
            continue
        lines.append(line.rstrip())
        line = token.lstrip()
        if len(lines) == max_lines:
            break
    else:
        if line.strip():
            lines.append(line.rstrip())
        return lines
    last = lines[-1]
    while last and not fits(last + "…"):
        last = last[:-1]
    lines[-1] = last.rstrip() + "…"
    return lines


def draw_poster(content: PosterContent, *, picture: IO[bytes] | None = None) -> bytes:
    """The poster as PNG bytes."""
    image = Image.new("RGB", (WIDTH, HEIGHT), PAPER)
    draw = ImageDraw.Draw(image)
    inner = WIDTH - 2 * MARGIN

    # The band with the chain's name.
    draw.rectangle((0, 0, WIDTH, 96), fill=BRAND)
    draw.text((MARGIN, 48), content.heading, font=font(36), fill=PAPER, anchor="lm")

    # The picture, or a plain panel with the invitation when there is none.
    top, box = 120, (inner, 500)
    fitted = _picture(picture, box)
    if fitted is not None:
        image.paste(fitted, (MARGIN + (inner - fitted.width) // 2, top + (box[1] - fitted.height) // 2))
    else:
        draw.rounded_rectangle((MARGIN, top, WIDTH - MARGIN, top + box[1]), radius=24, fill=(253, 236, 240))
        lines = _wrap(draw, content.heading, font(64), inner - 80, 2)
        y = top + box[1] // 2 - 40 * len(lines)
        for line in lines:
            draw.text((WIDTH // 2, y), line, font=font(64), fill=BRAND, anchor="mt")
            y += 80
    y = top + box[1] + 28

    # The title, the specification and the price.
    for line in _wrap(draw, content.title, font(40), inner, 2):
        draw.text((MARGIN, y), line, font=font(40), fill=INK)
        y += 54
    if content.subtitle:
        draw.text((MARGIN, y), content.subtitle, font=font(28), fill=MUTED)
        y += 42
    if content.price:
        draw.text((MARGIN, y + 4), content.price, font=font(52), fill=BRAND)

    # The QR code with the referral link, and the caption beside it.
    qr_top = HEIGHT - MARGIN - QR_SIZE
    draw.line((MARGIN, qr_top - 24, WIDTH - MARGIN, qr_top - 24), fill=(238, 238, 238), width=2)
    image.paste(qr_image(content.link, QR_SIZE), (WIDTH - MARGIN - QR_SIZE, qr_top))
    text_width = inner - QR_SIZE - 24
    y = qr_top + 60
    for line in _wrap(draw, content.caption, font(30), text_width, 3):
        draw.text((MARGIN, y), line, font=font(30), fill=INK)
        y += 44

    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
