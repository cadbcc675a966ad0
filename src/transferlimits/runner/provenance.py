"""The provenance block every executed notebook glues: profile, hardware, commit, date, wall time.

Chapters show it in an admonition through cross-document glue, e.g.
``{glue}`../generated/current/30_alignment.ipynb::prov_profile``` (the keys hold ``text/html``, which
myst-nb pastes inline across documents).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any
from transferlimits.runtime import git_commit, hardware_info

__all__ = ["provenance", "glue_provenance", "hardware_line"]


def hardware_line(device: Any = None) -> str:
    """One line: CPU model and cores, plus the GPU name on CUDA."""

    info = hardware_info(device)
    line = f"{info.get('cpu_model', '?')} ({info.get('cpu_count', '?')} cores)"
    if info.get("gpu"):
        line += f", GPU {info['gpu']}"
    return line


def provenance(profile: str, t0: float, device: Any = None) -> dict[str, Any]:
    """``{"profile", "hardware", "device", "commit", "date", "wall_s"}`` for a notebook started at ``t0``.

    Args:
        profile: profile name.
        t0: ``time.time()`` at the notebook's start.
        device: torch device the notebook used (default None = cpu).
    """

    return {
        "profile": profile,
        "hardware": hardware_line(device),
        "device": str(device or "cpu"),
        "commit": git_commit(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "wall_s": round(time.time() - t0, 1),
    }


def glue_provenance(profile: str, t0: float, device: Any = None, display: bool = True) -> dict[str, Any]:
    """Glue ``prov_*`` keys (markdown strings + ``prov_wall_s`` float) and ``prov_block``; show the block.

    Args:
        profile: profile name. t0: notebook start time. device: torch device (default None).
        display: also show the block in the notebook (default True).
    """
    from html import escape

    from IPython.display import HTML, Markdown
    from myst_nb import glue

    prov = provenance(profile, t0, device)
    for key in ("profile", "hardware", "device", "commit", "date"):
        # HTML, not Markdown: cross-document {glue} pastes text/html inline (myst-nb 1.4 has no cross-doc glue:md)
        tag = "code" if key in ("commit", "profile") else "span"
        glue(f"prov_{key}", HTML(f"<{tag}>{escape(str(prov[key]))}</{tag}>"), display=False)
    glue("prov_wall_s", float(prov["wall_s"]), display=False)
    block = (f"**Provenance** — profile `{prov['profile']}` · hardware {prov['hardware']} · device "
             f"`{prov['device']}` · commit `{prov['commit']}` · {prov['date']} · notebook wall time "
             f"{prov['wall_s']:.1f} s")
    glue("prov_block", Markdown(block), display=display)
    return prov
