#!/usr/bin/env python
"""The README's generalisation table: how well a recipe fitted on one photo holds on colours
it never saw. Each filter with a Hald pair (calibration/hald) is fitted on the photo alone,
then scored on the Hald colour pattern (the whole RGB cube), beside the bundled recipe of
filters.yaml, which was fitted on both.

    python tools/generalisation.py      # about five minutes on 2 cores (seven refits)

Scores are mean CIEDE2000 of the compiled filter: on the photo in the app's square frame
(as `make fidelity`), and on the pattern filtered whole, over its central 2000x2000 pixels
(the pattern's plain border carries no colour information).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_recipes import FRAME, HALD, OUTPUT, existing, fit_filter, table  # noqa: E402

from instafilters import fit  # noqa: E402
from instafilters.calibration import apply_in_frame  # noqa: E402
from instafilters.fidelity import fidelity  # noqa: E402
from instafilters.fit.pairs import load_image  # noqa: E402
from instafilters.settings import calibration_dir  # noqa: E402

CENTRE = 2000


def centre(image, size=CENTRE):
    h, w = image.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return image[top:top + size, left:left + size]


def main():
    shared = calibration_dir()
    bundled = existing(OUTPUT)
    references = {row[0]: row[1] for row in table()}
    normal = load_image(shared / "instagram" / "Normal.jpg", "Normal.jpg")
    hald_before = load_image(shared / "hald" / "0.original.png", "0.original.png")
    print("| filter | do nothing | fitted on the photo only | bundled (photo + Hald) "
          "| photo dE00, photo only | photo dE00, bundled |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, hald_file in HALD.items():
        photo_after = load_image(shared / "instagram" / references[name], references[name])
        hald_after = centre(load_image(shared / "hald" / hald_file, hald_file))
        row = [fidelity(centre(hald_before), hald_after).mean]
        recipes = (fit_filter(name, shared, use_hald=False), bundled[name])
        for recipe in recipes:
            filtered = apply_in_frame(fit.compiled(recipe), hald_before)
            row.append(fidelity(centre(filtered), hald_after).mean)
        row += [fit.score(recipe, normal, photo_after, FRAME).mean for recipe in recipes]
        print(f"| {name} | " + " | ".join(f"{x:.2f}" for x in row) + " |", flush=True)


if __name__ == "__main__":
    main()
