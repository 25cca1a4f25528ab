"""A poorer scanner's pages for scripts/bench-scan (HBI_SCAN_WORSE=1): each grey JPEG given
turned by 1.5 degrees (odd pages clockwise, even ones back, by the number in its name) on
white, with Gaussian noise of sigma 12 grey levels, written back in place (JPEG quality 85,
its resolution kept)."""

import re
import sys

import numpy as np
from PIL import Image

SKEW_DEGREES = 1.5
NOISE_SIGMA = 12.0


def degrade(path: str) -> None:
    page = int(re.findall(r"(\d+)\.jpg$", path)[0])
    with Image.open(path) as image:
        dpi = image.info.get("dpi", (200, 200))
        grey = image.convert("L")
    angle = SKEW_DEGREES if page % 2 else -SKEW_DEGREES
    turned = grey.rotate(angle, resample=Image.BICUBIC, expand=True, fillcolor=255)
    rng = np.random.default_rng(page)
    pixels = np.asarray(turned, dtype=np.float32)
    noisy = np.clip(pixels + rng.normal(0.0, NOISE_SIGMA, pixels.shape), 0, 255).astype(np.uint8)
    Image.fromarray(noisy, mode="L").save(path, "JPEG", quality=85, dpi=dpi)


for argument in sys.argv[1:]:
    degrade(argument)
