"""An algorithm that fails on purpose, in a way chosen by the case's voxels, so that one run over
a test set shows every failure reason. The behaviour is ``BEHAVIOURS[crc32(voxels) % 6]``, where
``voxels`` are the input array's bytes as stored (``zlib.crc32(array.tobytes())`` in NumPy).
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
import zlib
from pathlib import Path

import mha
import numpy as np

INPUT = Path("/input")
OUTPUT = Path("/output") / os.environ.get("SEGMENTATION_FOLDER", "images/segmentation")
BEHAVIOURS = ("ok", "timeout", "invalid_output", "exit_code", "missing_output", "out_of_memory")


def main() -> None:
    entry = next(e for e in json.loads((INPUT / "inputs.json").read_text()) if e["value"] is None)
    array, header = mha.read(next((INPUT / entry["interface"]["relative_path"]).glob("*.mha")))
    behaviour = BEHAVIOURS[zlib.crc32(np.ascontiguousarray(array).tobytes()) % len(BEHAVIOURS)]
    print(f"misbehaving: this case gets {behaviour!r}", flush=True)
    mask = (array > array.mean()).astype(np.uint8)
    if behaviour == "timeout":
        time.sleep(10**6)
    elif behaviour == "exit_code":
        sys.stderr.write("misbehaving: giving up on this case on purpose\n")
        sys.exit(3)
    elif behaviour == "missing_output":
        return
    elif behaviour == "out_of_memory":
        hoard = []
        for _ in range(256):  # up to 16 GiB, touching every page
            hoard.append(np.ones(2**23, dtype=np.float64))
    elif behaviour == "invalid_output":
        mask = mask[1:]  # one slice short: not on the input's grid
    OUTPUT.mkdir(parents=True, exist_ok=True)
    mha.write(OUTPUT / f"{uuid.uuid4()}.mha", mask, like=header)


if __name__ == "__main__":
    main()
