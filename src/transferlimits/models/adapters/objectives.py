"""The contract of a pre-training objective (:class:`ObjectiveInfo`) and the profile-driven constructor kwargs
the study's two objective families share.

Each model adapter declares its objectives as :class:`ObjectiveInfo` (``ModelAdapter.objective_infos``); code
that depends on what an objective is (does it take labels, is it a reconstruction) reads the declaration, never
the objective's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

__all__ = ["OBJECTIVE_FAMILIES", "ObjectiveInfo", "masked_objective_kwargs", "pair_objective_kwargs"]

#: What a pre-training objective does: reconstruct the (masked) input, pull and push representations apart, or
#: fit labels. H4 and the 2x2 control (STUDY H6) compare the reconstruction and contrastive families.
OBJECTIVE_FAMILIES: tuple[str, ...] = ("reconstruction", "contrastive", "supervised")


@dataclass(frozen=True)
class ObjectiveInfo:
    """The contract of one pre-training objective of a model.

    Attributes:
        name: the objective's name (in file names, ``metrics.json`` ``objective_name`` and the CLI).
        family: one of :data:`OBJECTIVE_FAMILIES`.
        uses_labels: the objective module takes the 4-class label map of the pre-training item as its last
            argument (``module(x[, pos], labels)``).
        description: one line on what the loss is.

    Raises:
        ValueError: an empty name or an unknown family (the message lists the valid ones).
    """

    name: str
    family: str
    uses_labels: bool
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"ObjectiveInfo.name must be a non-empty string, got {self.name!r}")
        if self.family not in OBJECTIVE_FAMILIES:
            raise ValueError(f"objective {self.name!r}: unknown family {self.family!r}; valid: {list(OBJECTIVE_FAMILIES)}")
        if not isinstance(self.uses_labels, bool):
            raise ValueError(f"objective {self.name!r}: uses_labels must be True or False, got {self.uses_labels!r}")


def masked_objective_kwargs(profile: Any, decoder_dims: Mapping[str, int], size: str) -> dict[str, Any]:
    """Kwargs of a masked-autoencoding module (FCMAE, MAE2D): the profile's ``mask_ratio`` and the decoder width
    of encoder ``size`` (``decoder_dims``, 64 for a size it does not list)."""
    return {"mask_ratio": profile.pretrain.mask_ratio, "decoder_dim": decoder_dims.get(size, 64)}


def pair_objective_kwargs(profile: Any, published: bool, small: Mapping[str, Any]) -> dict[str, Any]:
    """Kwargs of a DiceCE + patch-pair module (``models.contrastive``): the profile's ``contrastive_alpha`` and
    pair-mining rules, plus ``small`` (narrower heads) unless the encoder has its ``published`` size."""
    rec = profile.pretrain
    return {"alpha": rec.contrastive_alpha, "anchor_frac": rec.anchor_frac, "neg_frac": rec.neg_frac,
            **({} if published else dict(small))}
