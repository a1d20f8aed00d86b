"""Allocate memory (touching every page) until the container's memory limit kills the process."""

import numpy as np

print("oom: allocating 64 MiB at a time", flush=True)
hoard = [np.ones(2**23, dtype=np.float64) for _ in range(256)]  # stops at 16 GiB at the latest
