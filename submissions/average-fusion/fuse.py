"""A fusion baseline: the mean of the two source images, as 8-bit gray levels.

Inputs: the first two image sockets of /input/inputs.json. Output:
/output/images/fused-image/<uuid>.mha on the sources' grid.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import mha
import numpy as np

INPUT, OUTPUT = Path("/input"), Path("/output") / "images" / "fused-image"


def main() -> None:
    images = [e for e in json.loads((INPUT / "inputs.json").read_text()) if e["value"] is None][:2]
    (a, header), (b, _) = (mha.read(next((INPUT / e["interface"]["relative_path"]).glob("*.mha")))
                           for e in images)
    fused = np.clip(np.rint((a.astype(np.float64) + b) / 2), 0, 255).astype(np.uint8)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    mha.write(OUTPUT / f"{uuid.uuid4()}.mha", fused, header)


if __name__ == "__main__":
    main()
