#!/bin/sh
# A no-op algorithm without Python: an all-zero label map on the input's grid, written as the
# input's MetaImage header with one-byte voxels, followed by that many zero bytes.
set -eu
image=$(ls /input/images/scan/*.mha | head -n 1)
mkdir -p /output/images/segmentation
out=/output/images/segmentation/noop.mha
sed -e '/^CompressedDataSize/d' -e 's/^CompressedData = .*/CompressedData = False/' \
    -e 's/^ElementType = .*/ElementType = MET_UCHAR/' -e '/^ElementDataFile/q' "$image" > "$out"
voxels=$(sed -n -e 's/^DimSize = //p' -e '/^ElementDataFile/q' "$image" |
         awk '{ n = 1; for (i = 1; i <= NF; i++) n *= $i; print n }')
head -c "$voxels" /dev/zero >> "$out"
