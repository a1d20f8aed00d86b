"""Reading images from disk with SimpleITK into :class:`~medarena.evaluators.image.Image`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from medarena.evaluators.image import Image

# DICOM tag of the modality (CT, MR, ...); the only tag kept from a series, never patient data.
_MODALITY_TAG = "0008|0060"


def read_image(path: str | Path, *, series_id: str | None = None) -> Image:
    """Read one image file, or a DICOM series from a folder, into an :class:`Image`.

    Any format SimpleITK reads works (NIfTI, MHA/MHD, NRRD, TIFF, PNG, single DICOM files, ...).
    The array is indexed (z, y, x) in 3D and (y, x) in 2D (a 2D file stays 2D); a multi-component
    pixel (RGB, vector field) becomes a trailing axis. ``spacing`` is returned in array order
    (z, y, x); ``origin`` and ``direction`` stay in ITK order (x, y, z), as :class:`Image` documents.

    A folder is read as a DICOM series with ``ImageSeriesReader`` (slices sorted by position). When
    the folder holds several series, ``series_id`` chooses one; without it that is an error.

    Raises:
        ValueError: the path does not exist, cannot be read, holds no or several DICOM series, or
            is not a 2D or 3D image. The message names the path.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such file or folder")
    modality = ""
    try:
        if path.is_dir():
            image, modality = _read_dicom_series(path, series_id)
        else:
            image = sitk.ReadImage(str(path))
            if image.HasMetaDataKey(_MODALITY_TAG):
                modality = image.GetMetaData(_MODALITY_TAG).strip()
    except ValueError:
        raise
    except Exception as error:  # SimpleITK raises RuntimeError with a long ITK trace
        reason = str(error).strip().splitlines()
        raise ValueError(f"{path}: cannot read image ({_short_reason(reason)})") from None
    ndim = image.GetDimension()
    if ndim not in (2, 3):
        raise ValueError(f"{path}: a {ndim}D image; only 2D and 3D images are supported")
    array = sitk.GetArrayFromImage(image)
    return Image(
        array=np.ascontiguousarray(array),
        spacing=tuple(float(s) for s in reversed(image.GetSpacing())),
        origin=tuple(float(o) for o in image.GetOrigin()),
        direction=tuple(float(d) for d in image.GetDirection()),
        modality=modality,
        metadata={"path": str(path), "pixel_type": image.GetPixelIDTypeAsString()},
    )


def _read_dicom_series(folder: Path, series_id: str | None) -> tuple[sitk.Image, str]:
    warnings_shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # GDCM warns on folders without series
    try:
        ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)) or ()
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(warnings_shown)
    if not ids:
        raise ValueError(f"{folder}: a folder without any DICOM series")
    if series_id is None:
        if len(ids) > 1:
            raise ValueError(f"{folder}: holds {len(ids)} DICOM series ({', '.join(ids)}); choose one")
        series_id = ids[0]
    elif series_id not in ids:
        raise ValueError(f"{folder}: no DICOM series {series_id!r} (found: {', '.join(ids)})")
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_id)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()
    image = reader.Execute()
    modality = ""
    if reader.HasMetaDataKey(0, _MODALITY_TAG):
        modality = reader.GetMetaData(0, _MODALITY_TAG).strip()
    return image, modality


def _short_reason(lines: list[str]) -> str:
    """The informative line of a SimpleITK error message (its last non-empty line)."""
    for line in reversed(lines):
        if line.strip():
            return line.strip()
    return "unknown error"
