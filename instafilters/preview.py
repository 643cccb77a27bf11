"""Contact sheets: one labelled thumbnail per filter, the picture a user wants first."""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

LABEL_HEIGHT = 22
GAP = 4


def _font(size=15):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
        return ImageFont.load_default()


MAX_ASPECT = 3  # a tile is at most 3 times as tall as --width


def thumbnail(rgb: np.ndarray, width: int) -> np.ndarray:
    """`rgb` scaled to `width` pixels wide, or narrower when that would make it more than
    MAX_ASPECT * width tall: a 1x20000 image made 240x4,800,000 tiles (3.5 GB, then
    MemoryError)."""
    h, w = rgb.shape[:2]
    scale = min(width / w, MAX_ASPECT * width / h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.LANCZOS))


def contact_sheet(tiles: list[tuple[str, np.ndarray]], columns: int | None = None,
                  background=(255, 255, 255)) -> Image.Image:
    """Grid of (label, image) tiles of equal size, label under each."""
    columns = columns or min(len(tiles), math.ceil(math.sqrt(len(tiles) * 1.3)))
    rows = math.ceil(len(tiles) / columns)
    th, tw = tiles[0][1].shape[:2]
    cell_w, cell_h = tw + GAP, th + LABEL_HEIGHT + GAP
    sheet = Image.new("RGB", (columns * cell_w + GAP, rows * cell_h + GAP), background)
    draw, font = ImageDraw.Draw(sheet), _font()
    for i, (label, tile) in enumerate(tiles):
        x = GAP + (i % columns) * cell_w
        y = GAP + (i // columns) * cell_h
        sheet.paste(Image.fromarray(tile), (x, y))
        box = draw.textbbox((0, 0), label, font=font)
        draw.text((x + (tw - (box[2] - box[0])) // 2, y + th + 3), label, fill=(20, 20, 20),
                  font=font)
    return sheet


def filter_sheet(rgb: np.ndarray, registry, names, width=240, strength=1.0) -> Image.Image:
    """The original followed by every named filter applied to it."""
    small = thumbnail(rgb, width)
    tiles = [("original", small)] + [(n, registry[n](small, strength)) for n in names]
    return contact_sheet(tiles)
