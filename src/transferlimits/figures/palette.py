"""One visual language for every figure of the book.

* **colour = model** (the adapter's ``color``; :func:`model_colour`), one hue per foundation model;
* **marker = initialisation** (:data:`INIT_MARKERS`: pretrained ●, scratch ■, linear probe ▲); where several
  initialisations of one model share a panel they keep the model's hue in a shade of their own
  (:func:`init_colour`);
* **line style / hatching = pre-training objective family** (:func:`objective_style`, the family the model
  adapters declare): reconstruction (FCMAE, MAE) solid and unhatched, contrastive dashed and hatched, supervised
  dotted;
* an **undefined** value is drawn as a grey hatched box labelled "n/a" (:func:`draw_undefined`), never as 0;
* a **mean** is always drawn with an error bar (seed SD, or a CI where the caption says so).
"""

from __future__ import annotations

from typing import Any

from matplotlib import colors as mcolors
from transferlimits.models.registry import MODEL_REGISTRY

__all__ = ["INIT_MARKERS", "INIT_LABELS", "INIT_SHADE", "FAMILY_STYLE", "UNDEFINED",
           "model_colour", "model_label", "init_colour", "init_style", "objective_family", "objective_style",
           "draw_undefined", "verdict_colour"]

#: marker per initialisation (the same in every figure).
INIT_MARKERS = {"pretrained": "o", "scratch": "s", "linear_probe": "^", "ablated": "v"}
INIT_LABELS = {"pretrained": "pretrained", "scratch": "scratch", "linear_probe": "linear probe (frozen)",
               "ablated": "encoder ablated (zeros)"}
#: lightness of each initialisation within the model's hue (1 = the model colour itself).
INIT_SHADE = {"pretrained": 1.0, "scratch": 0.55, "linear_probe": 1.45, "ablated": 1.8}
#: line style and hatch per objective family (the family is the adapters' declaration, ``ObjectiveInfo.family``).
FAMILY_STYLE = {"reconstruction": {"linestyle": "-", "hatch": ""},
                "contrastive": {"linestyle": "--", "hatch": "//"},
                "supervised": {"linestyle": ":", "hatch": ".."},
                "unknown": {"linestyle": "-.", "hatch": "++"}}
#: how an undefined cell looks.
UNDEFINED = {"facecolor": "none", "edgecolor": "0.55", "hatch": "xx", "label": "n/a"}
_FALLBACK = "tab:gray"


def model_colour(model: str) -> str:
    """The registered adapter's colour (grey for a model this process does not know)."""

    adapter = MODEL_REGISTRY.get(model)
    return adapter.color if adapter is not None and adapter.color else _FALLBACK


def model_label(model: str) -> str:
    """The adapter's display name (the raw name for an unknown model)."""

    adapter = MODEL_REGISTRY.get(model)
    return adapter.display_name if adapter is not None and adapter.display_name else model


def _shade(colour: Any, factor: float) -> tuple[float, float, float]:
    """``colour`` darker (factor < 1) or lighter (factor > 1), hue kept."""
    r, g, b = mcolors.to_rgb(colour)
    if factor <= 1:
        return (r * factor, g * factor, b * factor)
    t = min(factor - 1.0, 1.0)
    return (r + (1 - r) * t, g + (1 - g) * t, b + (1 - b) * t)


def init_colour(model: str, init: str) -> tuple[float, float, float]:
    """The model's hue in the initialisation's shade."""
    return _shade(model_colour(model), INIT_SHADE.get(init, 1.0))


def init_style(model: str, init: str) -> dict[str, Any]:
    """``plot`` keyword arguments of one (model, initialisation) series: colour, marker, label."""
    return {"color": init_colour(model, init), "marker": INIT_MARKERS.get(init, "D"),
            "label": INIT_LABELS.get(init, init)}


def objective_family(objective: str) -> str:
    """The family a registered adapter declares for ``objective`` (``ObjectiveInfo.family``: reconstruction,
    contrastive or supervised); ``"unknown"`` for an objective no registered model declares."""
    for adapter in MODEL_REGISTRY.values():
        for info in adapter.objective_infos:
            if info.name == objective:
                return info.family
    return "unknown"


def objective_style(objective: str) -> dict[str, str]:
    """``{"linestyle", "hatch"}`` of the objective's family."""
    return dict(FAMILY_STYLE[objective_family(objective)])


def draw_undefined(ax, x: float, width: float, height: float, bottom: float = 0.0, text: str = "n/a",
                   horizontal: bool = False) -> None:
    """A grey hatched box with "n/a" where a bar (or, ``horizontal``, a row) has no defined value."""
    if horizontal:
        ax.barh(x, width, height, left=bottom, facecolor=UNDEFINED["facecolor"], edgecolor=UNDEFINED["edgecolor"],
                hatch=UNDEFINED["hatch"], lw=0.8, zorder=1)
        ax.text(bottom + width / 2, x, text, ha="center", va="center", fontsize=8, color="0.3")
        return
    ax.bar(x, height, width, bottom=bottom, facecolor=UNDEFINED["facecolor"], edgecolor=UNDEFINED["edgecolor"],
           hatch=UNDEFINED["hatch"], lw=0.8, zorder=1)
    ax.text(x, bottom + height / 2, text, ha="center", va="center", fontsize=8, color="0.3", rotation=90)


def verdict_colour(word: str) -> str:
    """Colour of a verdict word's marker in the forest plot."""
    return {"supported": "#1a7f37", "contradicted": "#b42318"}.get(word, "0.25")
