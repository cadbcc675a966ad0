"""A pure-NumPy reader of MetaImage files (``.mha`` with the data inline, ``.mhd`` with a raw file beside it).

The compute path on an accelerator (``python -m transferlimits compute``) must not need SimpleITK (a 50 MiB
wheel): this reader gives the same :class:`~.io_volume.Volume` as ``sitk.ReadImage`` (array [D, H, W] in the
file's element type, spacing, origin and direction as ITK's MetaImageIO reads them; ``tests/test_io_mha.py``
checks every shipped ``.mha`` bit for bit). Supported: 3D scalar images, ``ElementType`` MET_UCHAR, MET_CHAR,
MET_SHORT, MET_USHORT, MET_INT, MET_UINT, MET_LONG_LONG, MET_ULONG_LONG, MET_FLOAT, MET_DOUBLE; raw or zlib
(``CompressedData = True``) data; either byte order. Anything else is a :class:`~.io_volume.DataError`.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np

from transferlimits.data.io_volume import DataError, Volume

__all__ = ["read_mha", "read_mha_header", "MET_TYPES"]

#: MetaIO ElementType -> NumPy dtype (little-endian; the byte order comes from the header).
MET_TYPES: dict[str, str] = {
    "MET_UCHAR": "u1", "MET_CHAR": "i1", "MET_SHORT": "i2", "MET_USHORT": "u2", "MET_INT": "i4",
    "MET_UINT": "u4", "MET_LONG": "i4", "MET_ULONG": "u4", "MET_LONG_LONG": "i8", "MET_ULONG_LONG": "u8",
    "MET_FLOAT": "f4", "MET_DOUBLE": "f8",
}
_MAX_HEADER = 1 << 20  # a header longer than 1 MiB is not a MetaImage header


def read_mha_header(path: str | os.PathLike) -> tuple[dict[str, str], int]:
    """The ``key = value`` lines of a MetaImage header (up to ``ElementDataFile``) and the data's byte offset.

    Raises:
        DataError: no ``ElementDataFile`` line within the first MiB (not a MetaImage file, or truncated).
    """
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(_MAX_HEADER)
    fields: dict[str, str] = {}
    pos = 0
    while pos < len(head):
        end = head.find(b"\n", pos)
        if end < 0:
            break
        key, sep, value = head[pos:end].decode("latin-1").partition("=")
        pos = end + 1
        if sep:
            fields[key.strip()] = value.strip()
            if key.strip() == "ElementDataFile":
                return fields, pos
    raise DataError(f"{path}: not a MetaImage file or a truncated header (no ElementDataFile line)")


def _floats(fields: dict[str, str], key: str, n: int, default: list[float], path: Path) -> list[float]:
    text = fields.get(key)
    if text is None:
        return default
    try:
        values = [float(v) for v in text.split()]
    except ValueError:
        raise DataError(f"{path}: header field {key} = {text!r} is not {n} numbers") from None
    if len(values) != n:
        raise DataError(f"{path}: header field {key} has {len(values)} values, expected {n}")
    return values


def _geometry(fields: dict[str, str], path: Path) -> tuple[list[float], list[float], tuple[float, ...]]:
    """Spacing, origin and row-major direction as ITK's MetaImageIO reads them."""
    spacing = _floats(fields, "ElementSpacing", 3, [1.0, 1.0, 1.0], path)
    origin_key = next((k for k in ("Offset", "Origin", "Position") if k in fields), "Offset")
    origin = _floats(fields, origin_key, 3, [0.0, 0.0, 0.0], path)
    matrix_key = next((k for k in ("TransformMatrix", "Rotation", "Orientation") if k in fields), "TransformMatrix")
    matrix = _floats(fields, matrix_key, 9, [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0], path)
    # MetaIO stores one image axis per row; ITK's direction has the axes as columns
    direction = tuple(float(v) for v in np.asarray(matrix, dtype=np.float64).reshape(3, 3).T.ravel())
    return spacing, origin, direction


def _raw_bytes(path: Path, fields: dict[str, str], offset: int) -> bytes:
    data_file = fields["ElementDataFile"]
    if data_file.upper() == "LOCAL":
        with open(path, "rb") as fh:
            fh.seek(offset)
            raw = fh.read()
    else:
        other = path.parent / data_file
        if not other.is_file():
            raise DataError(f"{path}: its data file {data_file!r} is missing")
        raw = other.read_bytes()
    if fields.get("CompressedData", "False").lower() == "true":
        try:
            raw = zlib.decompress(raw)
        except zlib.error as exc:
            raise DataError(f"{path}: truncated or corrupt image file: compressed data unreadable ({exc})") from exc
    return raw


def read_mha(path: str | os.PathLike) -> Volume:
    """Read a 3D scalar MetaImage into a :class:`Volume` (the array in the file's element type).

    Raises:
        DataError: not a 3D scalar image, an unsupported element type, or data shorter or longer than the header
            says (the message names the file).
    """
    path = Path(path)
    fields, offset = read_mha_header(path)
    ndims = int(fields.get("NDims", "0") or 0)
    channels = int(fields.get("ElementNumberOfChannels", "1") or 1)
    if ndims != 3 or channels != 1:
        raise DataError(f"{path}: expected a 3D scalar image, got NDims {ndims} with {channels} channel(s)")
    kind = fields.get("ElementType", "")
    if kind not in MET_TYPES:
        raise DataError(f"{path}: unsupported ElementType {kind!r}; valid: {sorted(MET_TYPES)}")
    dims = [int(v) for v in fields.get("DimSize", "").split()]
    if len(dims) != 3:
        raise DataError(f"{path}: DimSize {fields.get('DimSize')!r} is not 3 sizes")
    msb = (fields.get("ElementByteOrderMSB") or fields.get("BinaryDataByteOrderMSB") or "False").lower() == "true"
    dtype = np.dtype(MET_TYPES[kind]).newbyteorder(">" if msb else "<")
    raw = _raw_bytes(path, fields, offset)
    need = int(np.prod(dims)) * dtype.itemsize
    if len(raw) != need:
        raise DataError(f"{path}: truncated or corrupt image file: {len(raw)} data bytes, the header says {need}")
    array = np.frombuffer(raw, dtype=dtype).reshape(dims[::-1]).astype(dtype.newbyteorder("="))
    spacing, origin, direction = _geometry(fields, path)
    return Volume(array=array, spacing=tuple(spacing), origin=tuple(origin), direction=direction, path=path)
