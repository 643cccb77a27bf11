"""Pure functions on float RGB arrays (values in [0, 1], last axis = 3).

No I/O and no uint8 here: every op is `array -> array` so it can be tested against hand
computed values and evaluated on a 256-step ramp to build the compiled LUTs.
"""
from .blend import BLEND_MODES, blend, composite
from .color import (apply_matrix, grayscale_matrix, hue_rotate_matrix, saturation_matrix,
                    sepia_matrix)
from .spatial import (gradient_weights, radial_distance, linear_position, vignette_mask,
                      vignette_weight)
from .tone import brightness, contrast, curve, gamma, levels, monotone_spline

__all__ = [
    "BLEND_MODES", "blend", "composite", "apply_matrix", "grayscale_matrix",
    "hue_rotate_matrix", "saturation_matrix", "sepia_matrix", "gradient_weights",
    "radial_distance", "linear_position", "vignette_mask", "vignette_weight", "brightness",
    "contrast", "curve", "gamma", "levels", "monotone_spline",
]
