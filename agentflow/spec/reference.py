"""The YAML reference: the workflow JSON Schema rendered as Markdown.

``docs/reference/yaml.md`` is this module's output for the built-in node types::

    python -m agentflow.spec.reference -o docs/reference/yaml.md
    python -m agentflow.spec.reference --allow-module my_nodes     # with your node types

It reads only the JSON Schema (what ``agentflow schema`` prints), so every field, type, default,
constraint and description comes from the Pydantic models and their attribute docstrings.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

Schema = Mapping[str, Any]

REGENERATE = "python -m agentflow.spec.reference -o docs/reference/yaml.md"
STEP_DEFS = {"RouteStep": ("route", "RouteBody"), "LoopStep": ("loop", "LoopBody"),
             "ParallelStep": ("parallel", "ParallelBody"), "MapStep": ("map", "MapBody")}
_CONSTRAINTS = (("minimum", ">= {}"), ("exclusiveMinimum", "> {}"), ("maximum", "<= {}"),
                ("exclusiveMaximum", "< {}"), ("minLength", "at least {} characters"),
                ("maxLength", "at most {} characters"), ("minItems", "at least {} items"),
                ("maxItems", "at most {} items"), ("pattern", "matches `{}`"))
_NOT_EMPTY = {("minLength", 1), ("minItems", 1)}


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def _text(description: str | None) -> str:
    """A docstring as Markdown: reST roles and double backticks become code spans."""
    text = description or ""
    text = re.sub(r":(?:meth|func|class|attr|data|mod):`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`").strip()


def _cell(text: str) -> str:
    """Text for one table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _value(value: Any) -> str:
    """A default or enum value as YAML would write it, in a code span."""
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z_][\w./:-]*", value) and value not in (
            "null", "true", "false", "yes", "no", "on", "off"):
        return f"`{value}`"
    return f"`{json.dumps(value, ensure_ascii=False)}`"


class Renderer:
    """Renders one JSON Schema; ``links`` maps a ``$defs`` name to the anchor that documents it."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.defs: Mapping[str, Schema] = schema.get("$defs", {})
        self.nodes: dict[str, str] = dict(sorted(
            schema["properties"]["nodes"]["additionalProperties"]["discriminator"]["mapping"].items()))
        self.links: dict[str, str] = {"StepSpec": "#steps"}
        for kind, (_, body) in STEP_DEFS.items():
            self.links[kind] = self.links[body] = f"#{_slug(STEP_DEFS[kind][0])}"
        for name, ref in self.nodes.items():
            self.links[_ref_name(ref)] = f"#{_slug(name)}"
        self.types = self._types_in_order()
        for name in self.types:
            self.links[name] = f"#{_slug(name)}"

    # types ------------------------------------------------------------------------------------
    def type_of(self, prop: Schema) -> str:
        """A property's type in words, with links to the types it refers to."""
        if "$ref" in prop:
            name = _ref_name(prop["$ref"])
            label = "a step" if name == "StepSpec" else f"`{name}`"
            return f"[{label}]({self.links[name]})" if name in self.links else label
        if "const" in prop:
            return _value(prop["const"])
        if "enum" in prop:
            return "one of " + ", ".join(_value(v) for v in prop["enum"])
        options = prop.get("anyOf") or prop.get("oneOf")
        if options:
            parts = [self.type_of(o) for o in options if o.get("type") != "null"]
            nullable = any(o.get("type") == "null" for o in options)
            return " or ".join(parts + (["`null`"] if nullable else []))
        kind = prop.get("type")
        if isinstance(kind, list):
            return " or ".join(self.type_of({**prop, "type": k}) for k in kind)
        if kind == "array":
            items = prop.get("items")
            return f"list of {self._inner(items)}" if items else "list"
        if kind == "object":
            values = prop.get("additionalProperties")
            if isinstance(values, Mapping) and "discriminator" in values:
                return "mapping of names to [nodes](#node-types)"
            if isinstance(values, Mapping) and values:
                return f"mapping of names to {self._inner(values)}"
            return "mapping"
        return f"`{kind}`" if kind else "any value"

    def _inner(self, prop: Schema) -> str:
        """The type of a list's items or a mapping's values: a union in parentheses."""
        text = self.type_of(prop)
        return f"({text})" if " or " in text else text

    def constraints(self, prop: Schema) -> list[str]:
        found = ["not empty" if (key, prop[key]) in _NOT_EMPTY else fmt.format(prop[key])
                 for key, fmt in _CONSTRAINTS if key in prop]
        for option in prop.get("anyOf", ()):
            found += self.constraints(option)
        return found

    # tables -----------------------------------------------------------------------------------
    def fields(self, model: Schema, *, skip: Iterable[str] = ()) -> list[str]:
        """The table of a model's fields: name, type, default (or required), description."""
        required = set(model.get("required", ()))
        rows = ["| field | type | default | description |", "|---|---|---|---|"]
        for name, prop in model.get("properties", {}).items():
            if name in skip:
                continue
            kind = self.type_of(prop)
            limits = self.constraints(prop)
            if limits:
                kind += f" ({', '.join(limits)})"
            if name in required:
                default = "**required**"
            elif "default" in prop:
                default = _value(prop["default"])
            elif prop.get("type") in ("array", "object"):
                default = "empty"
            else:
                default = "its fields' defaults" if "$ref" in prop else "optional"
            rows.append(f"| `{name}` | {_cell(kind)} | {_cell(default)} | "
                        f"{_cell(_text(prop.get('description')))} |")
        return rows if len(rows) > 2 else ["No fields."]

    def _types_in_order(self) -> list[str]:
        """The other ``$defs`` (FieldSpec, Sampling, ...), in the order the page first uses them."""
        skip = {"StepSpec", *STEP_DEFS, *(b for _, b in STEP_DEFS.values()),
                *(_ref_name(r) for r in self.nodes.values())}
        order: list[str] = []

        def visit(fragment: Any) -> None:
            for ref in _refs(fragment):
                name = _ref_name(ref)
                if name not in skip and name not in order:
                    order.append(name)
                    visit(self.defs[name])  # a type's own types follow it

        visit({k: v for k, v in self.schema.items() if k != "$defs"})
        for body in (b for _, b in STEP_DEFS.values()):
            visit(self.defs.get(body, {}))
        for ref in self.nodes.values():
            visit(self.defs[_ref_name(ref)])
        return order

    # sections ---------------------------------------------------------------------------------
    def render(self) -> str:
        out = [
            "# YAML workflow reference",
            "",
            f"<!-- Generated from the workflow JSON Schema by `{REGENERATE}`; do not edit. -->",
            "",
            "This page lists every field of a YAML workflow, every step of its `flow:` and every "
            "registered node type with its configuration fields.",
            "It is generated from the same JSON Schema that `agentflow schema` prints and that "
            "editors use to validate workflow files (the committed copy is `graphs/schema.json`).",
            "A field marked **required** has no default; an unknown field anywhere is an error.",
            "Concepts and examples are in [Workflows in YAML](../concepts/workflows-in-yaml.md).",
            "",
            "## Top-level fields",
            "",
            "A workflow file is a mapping with these keys.",
            "",
        ]
        top = dict(self.schema["properties"])
        top["flow"] = top.pop("flow")  # the steps read best last, after the nodes they name
        out += self.fields({**self.schema, "properties": top})
        out += ["", *self._steps(), "", *self._nodes(), "", *self._types()]
        return "\n".join(out).rstrip() + "\n"

    def _steps(self) -> list[str]:
        out = [
            "## Steps",
            "",
            "The `flow:` of a workflow is one step, and a step is one of these:",
            "",
            "- a node name (a string): the node of that name under `nodes:` runs;",
            "- a list of steps: they run in sequence;",
        ]
        keys = [key for kind, (key, _) in STEP_DEFS.items() if kind in self.defs]
        out += [f"- a mapping with the one key [`{key}`](#{_slug(key)})"
                + (";" if i < len(keys) - 1 else ".") for i, key in enumerate(keys)]
        for kind, (key, body) in STEP_DEFS.items():
            if body not in self.defs:
                continue
            out += ["", f"### `{key}`", ""]
            described = _text(self.defs[body].get("description"))
            if described:
                out += [described, ""]
            if key == "parallel":
                out += ["`parallel:` takes a list of steps (the branches), or a mapping with these "
                        "fields.", ""]
            out += self.fields(self.defs[body])
        return out

    def _nodes(self) -> list[str]:
        out = [
            "## Node types",
            "",
            "A node under `nodes:` names its type with `type:`; the other keys are that type's "
            "fields.",
            "These are the node types registered when the page was generated: "
            + ", ".join(f"[`{n}`](#{_slug(n)})" for n in self.nodes) + ".",
        ]
        for name, ref in self.nodes.items():
            model = self.defs[_ref_name(ref)]
            out += ["", f"### `{name}`", "", _text(model.get("description")), "",
                    f"`type: {name}`", ""]
            kinds = model.get("x-kinds")
            own = {f for kind in (kinds or {}).get("kinds", {}).values() for f in kind["properties"]}
            out += self.fields(model, skip=("type", *own))
            if kinds:
                out += ["", *self._kinds(name, kinds)]
        return out

    def _kinds(self, node: str, kinds: Schema) -> list[str]:
        """The registered kinds of a node type with kinds (``check``): per kind, what it does,
        its default threshold, what it reads and the fields only it has."""
        key = kinds["field"]
        out = [(f"The kinds registered when the page was generated (`{key}:`), each with its own "
                "fields beside those above:")]
        for kind, spec in kinds["kinds"].items():
            reads = ", ".join(f"`{r}`" for r in spec.get("reads", ())) or "nothing"
            out += ["", f"#### `{key}: {kind}`", "", _text(spec.get("description")), "",
                    f"Default threshold: {_text(spec.get('default_threshold'))}. Reads: {reads}.",
                    ""]
            out += self.fields({"properties": spec["properties"],
                                "required": spec.get("required", [])})
        return out

    def _types(self) -> list[str]:
        out = ["## Types used by the fields above"]
        for name in self.types:
            model = self.defs[name]
            out += ["", f"### `{name}`", ""]
            described = _text(model.get("description"))
            if described:
                out += [described, ""]
            if "properties" in model:
                out += self.fields(model)
            else:
                out.append(f"A value of type {self.type_of(model)}.")
        return out


def _refs(node: Any) -> Iterable[str]:
    """Every ``$ref`` inside a schema fragment, in document order."""
    if isinstance(node, Mapping):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def render_markdown(schema: Schema) -> str:
    """The Markdown reference of a workflow JSON Schema (the output of ``agentflow schema``)."""
    return Renderer(schema).render()


def reference_markdown(allow_modules: Sequence[str] = ()) -> str:
    """The reference for the built-in node types, plus those registered by ``allow_modules``."""
    from agentflow.nodes import load_builtins
    from agentflow.spec.load import import_allowed
    from agentflow.spec.model import json_schema

    load_builtins()
    import_allowed(allow_modules)
    return render_markdown(json_schema())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agentflow.spec.reference",
                                     description="Print the YAML workflow reference as Markdown.")
    parser.add_argument("-o", "--out", help="write to this file instead of stdout")
    parser.add_argument("--allow-module", action="append", default=[], metavar="MODULE",
                        help="include node types registered by MODULE")
    args = parser.parse_args(argv)
    text = reference_markdown(args.allow_module)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
