"""The ``transferability`` entry of metrics.json (pre-hoc, H5): its fields, documented and validated here.

:mod:`transferlimits.study.schema` renders :data:`TRANSFER_FIELDS` in its documentation and calls
:func:`validate_transferability`. Files written before per-patch targets (the committed ``cpu`` and ``smoke``
results) hold only the fields marked *required*; the others are checked where present, and a reader treats an
absent one as undefined (``unit`` absent = ``"case"``: those files scored the pooled embedding per case).
"""

from __future__ import annotations

from typing import Any

__all__ = ["TRANSFER_FIELDS", "TRANSFER_REQUIRED", "TRANSFER_UNITS", "TARGET_TYPES", "validate_transferability",
           "transfer_unit"]

#: what a transferability target is: a class label, a binary label, or a continuous value (z-scored for LogME)
TARGET_TYPES = ("class", "binary", "continuous")
#: one row per image (pooled embedding) or per feature-map cell (token/voxel rows, images as groups)
TRANSFER_UNITS = ("case", "patch")


def _field(name: str, typ: type, doc: str, nullable: bool = False) -> tuple[str, type, str, bool]:
    return name, typ, doc, nullable


#: ``(name, type, doc, nullable)`` of every field; :data:`TRANSFER_REQUIRED` names the ones every file has.
TRANSFER_FIELDS: tuple[tuple[str, type, str, bool], ...] = (
    _field("target", str, "what the target is (the task kind's description; per patch: of the row's cell)"),
    _field("target_type", str, "class | binary | continuous"),
    _field("regression", bool, "continuous target (LogME on a real column, probe R²)"),
    _field("unit", str, 'case (pooled embedding, one row per image) | patch (rows of the deepest feature map at '
           "sampled positions, each against the target of its cell: study.patch_features, TaskKind.patch_targets)"),
    _field("feature", str, 'the features: "embedding" (case) or the map layer (patch)'),
    _field("n", int, "rows (images, or patches: at most 4096)"),
    _field("n_groups", int, "images (independent units; folds of the probe never split one)"),
    _field("dim", int, "feature dimension"),
    _field("rows_per_image", int, "patch rows drawn per image (unit patch)"),
    _field("cells_per_image", int, "feature-map cells per image the rows are drawn from (unit patch)"),
    _field("sampling", str, "how the patch rows were drawn: uniform, or enriched (up to half of each image's rows "
           "from cells with a non-zero target: a rare target such as lesions; TaskKind.patch_enrich)"),
    _field("standardised", bool, "the continuous target was z-scored before LogME / the probe"),
    _field("target_sd", float, "SD of the continuous target before z-scoring (its spread)"),
    _field("logme", float, "LogME (You et al. 2021) of the frozen pretrained features; null with logme_note when "
           "the target has one value (an error, not a score) or the features are degenerate", nullable=True),
    _field("logme_note", str, "why logme is null"),
    _field("linear_probe", dict, "cross-validated linear probe, folds by image (accuracy/auroc or r2, cv, folds), "
           "or {note} when it cannot be fitted"),
)
TRANSFER_REQUIRED = ("target", "target_type", "regression", "logme", "linear_probe")


def transfer_unit(entry: dict[str, Any]) -> str:
    """The entry's ``unit``; ``"case"`` for files written before the field existed."""
    return str(entry.get("unit") or "case")


def _ok(value: Any, typ: type, nullable: bool) -> bool:
    if value is None:
        return nullable
    if typ in (int, float) and isinstance(value, bool):
        return False
    return isinstance(value, (int, float)) if typ is float else isinstance(value, typ)


def validate_transferability(entry: Any) -> None:
    """Check a ``transferability`` entry: required fields present, every present field of its type, the enums.

    Raises:
        ValueError: naming the missing or mistyped field (``transferability.<name>``) or the bad enum value.
    """
    if not isinstance(entry, dict):
        raise ValueError(f"metrics.json: transferability must be a dict, got {type(entry).__name__}")
    for name, typ, _, nullable in TRANSFER_FIELDS:
        if name not in entry:
            if name in TRANSFER_REQUIRED:
                raise ValueError(f"metrics.json: missing field transferability.{name}")
            continue
        if not _ok(entry[name], typ, nullable):
            got = "null" if entry[name] is None else type(entry[name]).__name__
            raise ValueError(f"metrics.json: field transferability.{name} must be {typ.__name__}"
                             f"{' or null' if nullable else ''}, got {got}")
    if entry["target_type"] not in TARGET_TYPES:
        raise ValueError(f"metrics.json: transferability.target_type must be one of {list(TARGET_TYPES)}")
    if transfer_unit(entry) not in TRANSFER_UNITS:
        raise ValueError(f"metrics.json: transferability.unit must be one of {list(TRANSFER_UNITS)}")
