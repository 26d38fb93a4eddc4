"""What a project's ``agentflow.yaml`` says about workflows: the modules ``python`` nodes may use.

.. code-block:: yaml

    # agentflow.yaml
    python:
      allow: [mysteps, myproject.tools]   # modules (and their submodules) python nodes may call

The allowlist is the project's decision, like ``agentflow run --allow-module``: a workflow file
alone can never make agentflow import code. The ``models:`` section of the same file is read by
the model router (:mod:`agentflow.models.profiles`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentflow.spec.yamlio import load_file

CONFIG_FILE = "agentflow.yaml"
ModuleName = Field(pattern=r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class PythonSettings(BaseModel):
    """The ``python:`` section of ``agentflow.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow: list[Annotated[str, ModuleName]] = Field(default_factory=list)
    """Modules whose functions ``python`` nodes may call (submodules included)."""


def python_allowlist(root: str | Path = ".") -> list[str]:
    """The modules ``python.allow`` of ``root/agentflow.yaml`` names (none without the file);
    a malformed section is a :class:`SpecError` at its line in that file."""
    path = Path(root) / CONFIG_FILE
    if not path.is_file():
        return []
    located = load_file(path)
    section = located.data.get("python") if isinstance(located.data, dict) else None
    if section is None:
        return []
    try:
        return PythonSettings.model_validate(section).allow
    except ValidationError as exc:
        err = exc.errors()[0]
        problem = (f"unknown field {err['loc'][-1]!r}" if err["type"] == "extra_forbidden"
                   else f"{err['msg']} (got {err.get('input')!r})")
        raise located.error(f"{problem}; expected a list of module names, as in python: "
                            "{allow: [mysteps, pkg.tools]}", ("python", *err["loc"])) from None


__all__ = ["CONFIG_FILE", "PythonSettings", "python_allowlist"]
