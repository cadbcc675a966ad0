"""Parameters of a notebook template: read the ``parameters`` cell, validate and coerce values.

papermill only *warns* about a parameter the notebook does not define; a mistyped name would then
silently run the template's default. Here every name is checked against the template's parameters
cell, string values from a command line are coerced to the type of the default, and the numbers of
:data:`PARAMETER_RANGES` are checked against their range (``seed=-3`` is refused, not run with the default).
Profile fields (epochs, recipes, sizes) are not notebook parameters: they are set one way, ``run --set``, and
reach every notebook through the resolved profile (:mod:`transferlimits.resolved`).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, Mapping

from transferlimits.config import Range

__all__ = ["read_template", "template_parameters", "validate_parameters", "coerce_value", "check_range",
           "bake_parameters", "PARAMETER_RANGES", "PARAMETER_HELP"]

#: Valid values of the numeric notebook parameters shared by the task templates, and what the edge
#: values mean. A parameter not listed here is only type-checked.
PARAMETER_RANGES: dict[str, tuple[Range, str]] = {
    "seed": (Range("int", 0), ""),
}
#: One line for ``--help``: the ranges of :data:`PARAMETER_RANGES`.
PARAMETER_HELP = "; ".join(
    f"{name}: {rng.describe()}{' (' + note + ')' if note else ''}" for name, (rng, note) in PARAMETER_RANGES.items())


def read_template(path: str | Path):
    """Read a notebook template (jupytext percent ``.py`` or ``.ipynb``) as an nbformat NotebookNode.

    Raises:
        ValueError: the file does not exist or has no cell tagged ``parameters``.
    """
    import jupytext

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"notebook template {str(path)!r} does not exist")
    nb = jupytext.read(path)
    if _parameters_cell(nb) is None:
        raise ValueError(f"notebook template {str(path)!r} has no cell tagged 'parameters'")
    return nb


def _parameters_cell(nb) -> Any:
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            return cell
    return None


def template_parameters(path_or_nb: Any) -> dict[str, Any]:
    """Names and default values of the template's parameters cell (simple assignments only).

    Args:
        path_or_nb: a template path or an already read NotebookNode.

    Returns:
        ``{name: default}`` in cell order; defaults are evaluated as Python literals.
    """
    nb = read_template(path_or_nb) if isinstance(path_or_nb, (str, Path)) else path_or_nb
    cell = _parameters_cell(nb)
    if cell is None:
        raise ValueError("notebook has no cell tagged 'parameters'")
    out: dict[str, Any] = {}
    for node in ast.parse(cell.source).body:
        target, value = None, None
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            target, value = node.target.id, node.value
        if target is None:
            continue
        try:
            out[target] = ast.literal_eval(value)
        except ValueError:
            out[target] = None  # a non-literal default: accept any value
    return out


def coerce_value(name: str, value: Any, default: Any) -> Any:
    """Coerce ``value`` (often a command-line string) to the type of ``default``.

    Raises:
        ValueError: the value cannot represent the default's type (message names both).
    """
    if default is None or not isinstance(value, str):
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ValueError(f"parameter {name!r} expects a bool, got {value!r}")
        if isinstance(default, (int, float)) and not isinstance(default, bool) and isinstance(value, bool):
            raise ValueError(f"parameter {name!r} expects a number, got {value!r}")
        return value
    if isinstance(default, bool):
        low = value.strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise ValueError(f"parameter {name!r} expects a bool (true/false), got {value!r}")
    if isinstance(default, int):
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"parameter {name!r} expects an int, got {value!r}") from None
    if isinstance(default, float):
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"parameter {name!r} expects a float, got {value!r}") from None
    if isinstance(default, (list, tuple, dict)):
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise ValueError(f"parameter {name!r} expects a {type(default).__name__}, got {value!r}") from None
        return parsed
    return value


def check_range(name: str, value: Any) -> Any:
    """Return ``value`` if ``name`` has no range in :data:`PARAMETER_RANGES` or ``value`` is within it.

    Raises:
        ValueError: out of range (the message names the parameter, the value and the valid range).
    """
    if name in PARAMETER_RANGES:
        rng, note = PARAMETER_RANGES[name]
        if not rng.ok(value):
            raise ValueError(f"parameter {name!r}={value!r} is invalid: expected {rng.describe()}"
                             f"{' (' + note + ')' if note else ''}")
    return value


def validate_parameters(template: Any, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Check every name against the template's parameters cell and coerce the values.

    Args:
        template: template path or NotebookNode.
        parameters: ``{name: value}``; string values are coerced to the default's type.

    Returns:
        The coerced parameters.

    Raises:
        ValueError: an unknown name (the message lists the valid ones), a value of the wrong type, or
            one outside its range in :data:`PARAMETER_RANGES`.
    """
    defaults = template_parameters(template)
    where = f" of {str(template)!r}" if isinstance(template, (str, Path)) else ""
    unknown = [k for k in parameters if k not in defaults]
    if unknown:
        raise ValueError(
            f"unknown notebook parameter(s) {unknown}{where}; valid: {sorted(defaults)}"
        )
    return {k: check_range(k, coerce_value(k, v, defaults[k])) for k, v in parameters.items()}


def bake_parameters(nb: Any, parameters: Mapping[str, Any]) -> None:
    """Write ``parameters`` into the template's ``parameters`` cell as its new defaults (in place).

    papermill replaces an executed notebook's injected-parameters cell with only the parameters of the
    new call, so ``papermill OUT.ipynb NEW.ipynb -p seed 1`` would otherwise fall back to the template's
    defaults for everything else (another task, another model). With the run's values baked into the
    parameters cell, a plain re-execution changes only what it names. Each ``name = value  # comment``
    line keeps its comment; values are written with ``repr``.

    Raises:
        ValueError: a parameter has no assignment line in the cell.
    """
    cell = _parameters_cell(nb)
    lines = cell.source.splitlines()
    todo = dict(parameters)
    for i, line in enumerate(lines):
        try:
            node = ast.parse(line).body[0] if line.strip() and not line.lstrip().startswith("#") else None
        except SyntaxError:
            continue
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id in todo):
            name = node.targets[0].id
            lines[i] = f"{line[:node.value.col_offset]}{todo.pop(name)!r}{line[node.value.end_col_offset:]}"
    if todo:
        raise ValueError(f"parameters {sorted(todo)} have no assignment line in the template's parameters cell")
    cell.source = "\n".join(lines)
