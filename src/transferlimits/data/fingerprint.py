"""One stable hash over the real-data inputs the cohort reads, for Snakemake to re-run the data rule.

:func:`inputs_fingerprint` covers exactly the files :class:`~transferlimits.data.picai.PicaiDataset`
and :func:`~transferlimits.data.cohort.build_cohort` read from the user's folders:

* images (``--data``): ``<patient>/<case>_{t2w,adc,hbv}.mha``, keyed by relative path, size and
  ``st_mtime_ns``. Content hashing 4500 images (tens of GB for all of PI-CAI) would take minutes at every
  workflow start; a changed size or modification time is what a re-download, an edit or a copy leaves.
  A copy that keeps neither (``cp`` without ``-p`` keeps the size but sets a new mtime) re-runs the
  rule; the rule itself then rebuilds only the cases whose content digest changed.
* labels (``--labels``, a picai_labels checkout): the marksheet and every ``*.nii.gz`` of the gland,
  zone and csPCa lesion folders, keyed by relative path and SHA-256 of the content. These are small
  (88 MB for all 6000 masks, about a second to hash) and are what a user edits by hand or by ``git
  checkout``, which may keep sizes and set any mtime.

Files the cohort does not read (READMEs, sagittal/coronal images, other annotation sources, anything
outside the two folders) do not enter the hash.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from transferlimits import paths
from transferlimits.data.io_volume import DataError
from transferlimits.data.picai import IMAGE_SEQUENCES
from transferlimits.data.picai_labels import GLAND_DIR, LESION_DIRS, MARKSHEET, ZONE_DIR

__all__ = ["inputs_fingerprint", "image_files", "label_files", "FINGERPRINT_VERSION"]

#: Part of the hash: bump when the rule for which files count, or how, changes.
FINGERPRINT_VERSION = "1"
_CHUNK = 1 << 20


def image_files(data_path: str | os.PathLike) -> list[Path]:
    """The image files a PI-CAI folder contributes: ``<patient>/<case>_{t2w,adc,hbv}.mha``, sorted.

    Raises:
        DataError: ``data_path`` is not a folder.
    """
    root = Path(data_path)
    if not root.is_dir():
        raise DataError(f"{root}: images folder not found")
    suffixes = tuple(f"_{seq}.mha" for seq in IMAGE_SEQUENCES)
    return sorted(p for p in root.glob("*/*.mha") if p.name.endswith(suffixes) and p.is_file())


def label_files(labels_path: str | os.PathLike, gland_source: str = "Bosma22b",
                zone_source: str = "HeviAI23") -> list[Path]:
    """The files of a picai_labels checkout the cohort reads: marksheet + gland, zone and lesion masks.

    Raises:
        DataError: ``labels_path`` is not a folder.
    """
    root = Path(labels_path)
    if not root.is_dir():
        raise DataError(f"{root}: picai_labels folder not found")
    folders = [root / GLAND_DIR / gland_source, root / ZONE_DIR / zone_source] + [root / d for d in LESION_DIRS]
    files = [p for folder in folders if folder.is_dir() for p in folder.glob("*.nii.gz") if p.is_file()]
    if (root / MARKSHEET).is_file():
        files.append(root / MARKSHEET)
    return sorted(files)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def inputs_fingerprint(data_path: str | os.PathLike | None, labels_path: str | os.PathLike | None = None,
                       gland_source: str = "Bosma22b", zone_source: str = "HeviAI23") -> str:
    """A SHA-256 hex digest over the real-data files the cohort would read (see the module docstring).

    Args:
        data_path: the ``--data`` folder in the PI-CAI public-image layout; None (phantom profiles, no
            real data) gives the constant ``"none"``.
        labels_path: the ``--labels`` picai_labels checkout (default: the shipped ``paths.PICAI_LABELS``,
            as the cohort).
        gland_source, zone_source: the annotation folders the cohort reads (``PicaiDataset`` defaults).

    Returns:
        64 hex characters; equal for equal trees (the absolute location of the folders does not count),
        different after any edit of a mask or the marksheet, or a new size / mtime of an image.

    Raises:
        DataError: a folder that does not exist.
    """
    if data_path is None:
        return "none"
    labels = Path(labels_path) if labels_path is not None else paths.PICAI_LABELS
    digest = hashlib.sha256(f"transferlimits inputs v{FINGERPRINT_VERSION}\n".encode())
    root = Path(data_path)
    for path in image_files(root):
        st = path.stat()
        digest.update(f"image {path.relative_to(root).as_posix()} {st.st_size} {st.st_mtime_ns}\n".encode())
    for path in label_files(labels, gland_source, zone_source):
        digest.update(f"label {path.relative_to(labels).as_posix()} {_sha256(path)}\n".encode())
    digest.update(f"sources {gland_source} {zone_source}\n".encode())
    return digest.hexdigest()
