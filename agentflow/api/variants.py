"""A/B tests of served workflows: variants that differ only in the LLM.

An experiment is declared in a file beside the workflow, ``<workflow>.ab.yaml`` (found on its own), or
given with ``agentflow serve --ab FILE``::

    # graphs/agentic_rag.ab.yaml
    experiment: answer-model       # recorded on every run as the tag experiment=answer-model
    workflow: agentic_rag          # the served workflow it splits
    assign_by: thread              # thread (default) or user: what keeps a conversation on one variant
    variants:
      control: {weight: 50}                              # the workflow's own models
      mini: {weight: 50, aliases: {large: {model: openai/gpt-4.1-mini}}}

A variant may change the model mapping only: ``profile`` (another profile for every alias) and
``aliases`` (alias -> model entries, as under ``profiles.NAME.aliases`` in ``agentflow.yaml``). Anything
else (nodes, prompts, retrieval, sampling) is refused when the server starts, so that the LLM is the one
difference the report can attribute a change to.

Assignment is sticky: the variant is a hash of the experiment's name and the thread id (or the user id,
with ``assign_by: user``; a request with neither is assigned at random), so every worker and every
machine puts a thread on the same variant with no shared state. Changing the weights moves some threads
to another variant: start a new experiment (a new name) instead.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentflow.errors import ConfigError, known

SUFFIX = ".ab.yaml"
NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"
MAPPING_FIELDS = ("profile", "aliases")


class VariantSpec(BaseModel):
    """One arm of an experiment: its share of the traffic and its model mapping."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weight: float = Field(1.0, gt=0)
    """Its share of the traffic, relative to the other variants' weights."""
    profile: str | None = None
    """The model profile this variant resolves every alias through (default: the workflow's)."""
    aliases: dict[str, Any] = Field(default_factory=dict)
    """Alias -> model entries, overriding those of the profile (``large: {model: openai/gpt-4.1}``)."""
    description: str = ""


class ExperimentSpec(BaseModel):
    """The A/B test file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    experiment: str = Field(pattern=NAME)
    workflow: str
    assign_by: Literal["thread", "user"] = "thread"
    variants: dict[str, VariantSpec] = Field(min_length=2)


@dataclass(frozen=True)
class Variant:
    name: str
    weight: float
    spec: VariantSpec
    services: Any
    profile: str


@dataclass(frozen=True)
class Experiment:
    """A loaded experiment, its variants' services built (one model router each)."""

    name: str
    assign_by: str
    variants: tuple[Variant, ...]
    source: str

    def describe(self) -> dict[str, Any]:
        total = sum(v.weight for v in self.variants)
        return {"name": self.name, "assign_by": self.assign_by, "source": self.source,
                "variants": {v.name: {"share": round(v.weight / total, 4), "profile": v.profile,
                                      "aliases": v.spec.aliases} for v in self.variants}}

    def assign(self, *, thread_id: str | None, user_id: str | None) -> Variant:
        """The variant of a request: sticky per thread (or user), random without either."""
        key = thread_id if self.assign_by == "thread" else user_id
        key = key or (user_id if self.assign_by == "thread" else thread_id)
        if key:
            digest = hashlib.sha256(f"{self.name}\0{key}".encode()).digest()
            point = int.from_bytes(digest[:8], "big") / 2**64
        else:
            point = random.random()
        total = sum(v.weight for v in self.variants)
        edge = 0.0
        for variant in self.variants:
            edge += variant.weight / total
            if point < edge:
                return variant
        return self.variants[-1]


@dataclass(frozen=True)
class ExperimentFile:
    """A parsed, checked experiment file, before its variants' services are built."""

    spec: ExperimentSpec
    source: str

    async def build(self, served: Any, settings: Any) -> Experiment:
        variants = tuple(Variant(name, v.weight, v, *_variant_services(served, settings, name, v, self.source))
                         for name, v in self.spec.variants.items())
        return Experiment(self.spec.experiment, self.spec.assign_by, variants, self.source)


def load_experiment(path: str | Path) -> ExperimentFile:
    """Read and check an experiment file; a :class:`ConfigError` says what is wrong and where."""
    from agentflow.spec.yamlio import load_file

    located = load_file(path)
    data = located.data
    if isinstance(data, dict):
        for name, variant in (data.get("variants") or {}).items():
            extra = [k for k in (variant or {}) if k not in VariantSpec.model_fields] \
                if isinstance(variant, dict) else []
            if extra:
                raise ConfigError(
                    f"{path}: variant {name!r} changes {known(extra)}: a variant may change only the model "
                    f"mapping ({', '.join(MAPPING_FIELDS)}), so that the LLM is the one difference "
                    f"between variants; valid fields: {known(VariantSpec.model_fields)}")
    try:
        spec = ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "the top"
        raise ConfigError(f"{path} ({where}): {err['msg']}; an experiment file has experiment, "
                          "workflow, assign_by (thread or user) and at least two variants") from None
    return ExperimentFile(spec, str(path))


def find_experiments(settings: Any, served: Mapping[str, Any]) -> dict[str, ExperimentFile]:
    """The experiments of the served workflows: ``--ab`` files and ``<workflow>.ab.yaml`` beside each
    workflow file; workflow name -> experiment. One experiment per workflow."""
    paths = [Path(p) for p in settings.experiments]
    for file in settings.files:
        beside = Path(file).with_name(Path(file).name.rsplit(".", 1)[0] + SUFFIX)
        if beside.is_file() and beside.resolve() not in {p.resolve() for p in paths}:
            paths.append(beside)
    found: dict[str, ExperimentFile] = {}
    for path in paths:
        if not path.is_file():
            raise ConfigError(f"--ab {path}: no such file")
        experiment = load_experiment(path)
        target = experiment.spec.workflow
        if target not in served:
            raise ConfigError(f"{path}: workflow {target!r} is not served; served: {known(served)}")
        if target in found:
            raise ConfigError(f"workflow {target!r} has two experiments ({found[target].source} and {path}); "
                              "run one at a time")
        found[target] = experiment
    return found


def _variant_services(served: Any, settings: Any, name: str, variant: VariantSpec,
                      source: str) -> tuple[Any, str]:
    """The control's services with this variant's model router, and the variant's profile name."""
    from agentflow.models import build_router
    from agentflow.models.profiles import (
        ProfileConfig,
        load_models_config,
        resolve_profile,
    )

    root = Path(settings.root)
    config = load_models_config(root / "agentflow.yaml")
    base, _ = resolve_profile(cli=variant.profile or settings.profile,
                              workflow=served.spec.models.profile, config=config)
    profile = base
    if variant.aliases:
        known_aliases = list(config.aliases_of(base))
        unknown = [a for a in variant.aliases if a not in known_aliases]
        if unknown:
            raise ConfigError(f"{source}: variant {name!r} overrides alias(es) {known(unknown)}, which profile "
                              f"{base!r} does not have; aliases: {known(known_aliases)}")
        profile = f"ab-{name}"
        try:
            extra = ProfileConfig.model_validate({"extends": base, "aliases": variant.aliases})
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"{source}: variant {name!r} ({where}): {err['msg']}") from None
        config = config.model_copy(update={"profiles": {**config.profiles, profile: extra}})
    try:
        router = build_router(config, profile=profile, root=root)
    except ConfigError as exc:
        raise ConfigError(f"{source}: variant {name!r}: {exc}") from None
    return replace(served.services, models=router), base if not variant.aliases else f"{base}+{name}"
