"""The served workflows: loaded, checked and given their services once per worker.

A served workflow is a YAML workflow (the file ``agentflow run`` takes) plus what serving needs:

- a Pydantic model of its inputs, strict (``"5"`` is no integer, ``1`` no string) and closed (an unknown
  field is refused), whose JSON Schema ``GET /workflows`` publishes and whose errors become a 422 that
  names the field and what is valid;
- its conversation fields: the input a chat message goes to (the first required text input), the input
  that holds the conversation so far (``history``, when declared) and the output that answers
  (``answer``, else the first text output);
- its services (model router, retrievers, prompts), built once, at start-up: a request never builds a
  client, opens a store or reads a model;
- its A/B test, when it has one (:mod:`agentflow.api.variants`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AllowInfNan,
    BaseModel,
    ConfigDict,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    create_model,
)

from agentflow.errors import ConfigError, known

_STRICT: dict[str, Any] = {
    "string": StrictStr, "integer": StrictInt,
    "number": Annotated[StrictFloat, AllowInfNan(False)],
    "boolean": StrictBool, "list": list[Any], "object": dict[str, Any], "any": Any,
}
_VALID: dict[str, str] = {
    "string": "a string", "integer": "a whole number", "number": "a finite number",
    "boolean": "true or false", "list": "a list", "object": "an object", "any": "any JSON value",
}
HISTORY = "history"
ANSWER = "answer"


@dataclass(frozen=True)
class InputProblem:
    """One reason a request's inputs do not fit the workflow."""

    field: str
    message: str
    valid: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message, "valid": self.valid}


class InputsInvalid(Exception):
    """The inputs of a request do not fit the workflow's declared inputs (a 422)."""

    def __init__(self, workflow: str, problems: Sequence[InputProblem]) -> None:
        self.workflow, self.problems = workflow, list(problems)
        first = self.problems[0]
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(f"workflow {workflow!r}, input {first.field!r}: {first.message}; "
                         f"valid: {first.valid}{more}")


@dataclass
class ServedWorkflow:
    """One workflow as the server runs it (see the module docs)."""

    name: str
    workflow: Any
    """The loaded :class:`agentflow.spec.load.Workflow`."""
    inputs_model: type[BaseModel]
    services: Any
    """The :class:`agentflow.nodes.context.Services` every run of the control variant gets."""
    question: str | None
    history: str | None
    answer: str | None
    experiment: Any = None
    """The workflow's :class:`agentflow.api.variants.Experiment`, or None."""

    @property
    def flow(self) -> Any:
        return self.workflow.flow

    @property
    def spec(self) -> Any:
        return self.workflow.spec

    def describe(self) -> dict[str, Any]:
        """What ``GET /workflows`` says of it."""
        spec = self.spec
        return {
            "name": self.name,
            "description": spec.description.strip(),
            "inputs": {k: {"type": f.type, "description": f.description,
                           "required": _required(f), "default": f.default}
                       for k, f in spec.inputs.items()},
            "outputs": list(spec.outputs),
            "input_schema": self.inputs_model.model_json_schema(),
            "chat": {"question": self.question, "history": self.history, "answer": self.answer},
            "experiment": self.experiment.describe() if self.experiment else None,
        }

    def validate_inputs(self, raw: Any) -> dict[str, Any]:
        """The inputs a run gets, checked; raises :class:`InputsInvalid` naming each bad field."""
        if not isinstance(raw, Mapping):
            raise InputsInvalid(self.name, [InputProblem(
                "inputs", f"expected an object of input fields, got {_json_type(raw)}",
                f"an object with {self._fields_text()}")])
        try:
            model = self.inputs_model.model_validate(dict(raw))
        except ValidationError as exc:
            raise InputsInvalid(self.name, self._problems(exc)) from None
        return model.model_dump(exclude_unset=True)

    def _problems(self, exc: ValidationError) -> list[InputProblem]:
        out = []
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else "inputs"
            spec = self.spec.inputs.get(name)
            if err["type"] == "extra_forbidden":
                out.append(InputProblem(name, f"unknown input {name!r}", self._fields_text()))
            elif err["type"] == "missing":
                out.append(InputProblem(name, "missing required input", _valid(name, spec)))
            else:
                got = err.get("input")
                out.append(InputProblem(name, f"{err['msg']}, got {_json_type(got)} {_short(got)}",
                                        _valid(name, spec)))
        return out

    def _fields_text(self) -> str:
        parts = [f"{k} ({_VALID[f.type]}{', required' if _required(f) else ''})"
                 for k, f in self.spec.inputs.items()]
        return "inputs: " + (", ".join(parts) if parts else "none")


def _required(spec: Any) -> bool:
    return bool(spec.required if spec.required is not None else spec.default is None)


def _valid(name: str, spec: Any) -> str:
    if spec is None:
        return f"{name!r} is no input of this workflow"
    text = f"{name} is {_VALID[spec.type]}"
    return f"{text}: {spec.description}" if spec.description else text


def _json_type(value: Any) -> str:
    return {str: "a string", bool: "a boolean", int: "a whole number", float: "a number",
            list: "a list", dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def inputs_model(spec: Any) -> type[BaseModel]:
    """A strict, closed Pydantic model of a workflow's declared inputs."""
    fields: dict[str, Any] = {}
    for name, f in spec.inputs.items():
        annotation = _STRICT[f.type]
        if _required(f):
            fields[name] = (annotation, ...)
        else:
            fields[name] = (annotation | None, f.default)
    title = "".join(p.capitalize() for p in spec.name.replace("-", "_").split("_")) + "Inputs"
    return create_model(title, __config__=ConfigDict(extra="forbid", title=title), **fields)


def chat_fields(spec: Any) -> tuple[str | None, str | None, str | None]:
    """``(question, history, answer)``: where a chat message goes, where the conversation so far goes,
    and which output answers it (see the module docs); None where the workflow has none."""
    question = next((k for k, f in spec.inputs.items()
                     if f.type in ("string", "any") and k != HISTORY and _required(f)), None)
    history = HISTORY if HISTORY in spec.inputs and spec.inputs[HISTORY].type in ("list", "any") else None
    declared = {**spec.state, **spec.inputs}
    outputs = list(spec.outputs) or list(declared)
    answer = ANSWER if ANSWER in outputs or not spec.outputs else None
    if answer is None:
        answer = next((k for k in outputs if k in declared and declared[k].type == "string"), None)
    return question, history, answer


async def load_served(settings: Any) -> dict[str, ServedWorkflow]:
    """Load every workflow of ``settings`` with its services and A/B test; name -> workflow.

    Raises :class:`agentflow.errors.SpecError` for a workflow that does not build, and
    :class:`ConfigError` for two workflows of one name or an experiment that is not valid.
    """
    from agentflow.api.variants import find_experiments
    from agentflow.nodes.python import allow_modules
    from agentflow.spec.load import import_allowed, load_workflow

    allow_modules(settings.allow_modules)
    import_allowed(settings.allow_modules)
    root = Path(settings.root)
    served: dict[str, ServedWorkflow] = {}
    sources: dict[str, str] = {}
    for file in settings.files:
        workflow = load_workflow(file, overrides=list(settings.overrides), profile=settings.profile,
                                 check_stores=True)
        name = workflow.spec.name
        if name in served:
            raise ConfigError(f"two served workflows are named {name!r} ({sources[name]} and {file}); "
                              "names are the routes and the chat models, so each must be unique")
        sources[name] = file
        services = await workflow.aservices(profile=settings.profile, root=root, progress=False)
        question, history, answer = chat_fields(workflow.spec)
        served[name] = ServedWorkflow(name=name, workflow=workflow, inputs_model=inputs_model(workflow.spec),
                                      services=services, question=question, history=history, answer=answer)
    for name, experiment in find_experiments(settings, served).items():
        served[name].experiment = await experiment.build(served[name], settings)
    return served


def check_single_process_stores(served: Mapping[str, ServedWorkflow], workers: int) -> None:
    """Several workers cannot share the embedded store: each collection is one process's (its WAL is
    locked). Raises :class:`ConfigError` naming the collections to move to a Qdrant server."""
    if workers <= 1:
        return
    embedded = [f"{name}: {c.name}" for name, s in served.items()
                for c in [*s.workflow.collections(), *s.workflow.ingested_collections()] if not c.store]
    if embedded:
        raise ConfigError(
            f"--workers {workers}: collection(s) {known(embedded)} live in the embedded store, which one "
            "process at a time can open; serve them from a Qdrant server (--set "
            "collections.NAME.store=http://HOST:6333, see docs/how-to/scale-out-postgresql.md) or "
            "use --workers 1")
