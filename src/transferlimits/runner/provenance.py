"""The provenance block every executed notebook glues: profile, hardware, commit, date, wall time.

Chapters show it in an admonition through cross-document glue, e.g.
``{glue:md}`../generated/current/30_alignment.ipynb::prov_block``.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

__all__ = ["provenance", "glue_provenance", "hardware_line"]


def hardware_line(device: Any = None) -> str:
    """One line: CPU model and cores, plus the GPU name on CUDA."""
    from transferlimits.runtime import hardware_info

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
    from transferlimits.runtime import git_commit

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
    from IPython.display import Markdown
    from myst_nb import glue

    prov = provenance(profile, t0, device)
    for key in ("profile", "hardware", "device", "commit", "date"):
        glue(f"prov_{key}", Markdown(f"`{prov[key]}`" if key == "commit" else str(prov[key])), display=False)
    glue("prov_wall_s", float(prov["wall_s"]), display=False)
    block = (f"**Provenance** — profile `{prov['profile']}` · hardware {prov['hardware']} · device "
             f"`{prov['device']}` · commit `{prov['commit']}` · {prov['date']} · notebook wall time "
             f"{prov['wall_s']:.1f} s")
    glue("prov_block", Markdown(block), display=display)
    return prov
