"""A character-level recogniser for JSON that matches a JSON Schema, built for constrained decoding.

:func:`compile_schema` turns a schema into a tree of nodes; a parser state is a tuple of alternative stacks
of frames (alternatives come from ``anyOf`` and from numbers that may or may not go on). :meth:`Grammar.advance`
feeds one character; :meth:`Grammar.min_remaining` is the fewest characters that still complete the value,
which lets the decoder close the JSON before ``max_tokens`` runs out. Objects emit their declared
properties in schema order (optional ones may be skipped); whitespace runs between tokens are capped.

Supported: ``type`` (one or a list), ``properties``/``required``/``additionalProperties``, ``items``,
``minItems``/``maxItems``, ``enum``, ``const``, ``anyOf``/``oneOf``, ``allOf`` with one entry, local ``$ref``,
``minLength``/``maxLength``, integer ``minimum``/``maximum`` (a bounded range of at most 1000 values, or
``minimum: 0``). Annotations (``title``, ``description``, ``format``, ...) are ignored; other keywords are
refused by name.
"""

from __future__ import annotations

import json
from typing import Any

WHITESPACE = " \n\t"
MAX_WS = 8
MAX_DEPTH = 64
"""Deepest schema nesting compiled (a bound on recursion for schemas sent in requests)."""
MAX_DIGITS = 15
_ANNOTATIONS = {
    "title", "description", "default", "examples", "$schema", "$id", "$comment", "format", "deprecated",
    "readOnly", "writeOnly", "strict", "name", "$defs", "definitions", "additionalProperties",
}
_SUPPORTED = {
    "type", "properties", "required", "items", "minItems", "maxItems", "enum", "const", "anyOf", "oneOf",
    "allOf", "$ref", "minLength", "maxLength", "minimum", "maximum",
}


class SchemaError(ValueError):
    """The schema uses something constrained decoding cannot enforce; the message names the path."""


class Node:
    """A compiled schema node (compared by identity)."""

    kind = "any"


class AnyNode(Node):
    kind = "any"


class ObjectNode(Node):
    kind = "object"

    def __init__(self) -> None:
        self.props: list[tuple[str, Node, bool]] = []
        self.free: Node | None = None  # value node for arbitrary keys (free-form objects)


class ArrayNode(Node):
    kind = "array"

    def __init__(self, item: Node, min_items: int, max_items: int | None) -> None:
        self.item, self.min_items, self.max_items = item, min_items, max_items


class StringNode(Node):
    kind = "string"

    def __init__(self, min_len: int = 0, max_len: int | None = None) -> None:
        self.min_len, self.max_len = min_len, max_len


class NumberNode(Node):
    kind = "number"

    def __init__(self, integer: bool, nonneg: bool = False) -> None:
        self.integer, self.nonneg = integer, nonneg


class LiteralNode(Node):
    kind = "literal"

    def __init__(self, texts: tuple[str, ...]) -> None:
        self.texts = texts


class UnionNode(Node):
    kind = "union"

    def __init__(self, options: list[Node]) -> None:
        self.options = options


ANY = AnyNode()
_FREE_OBJECT = ObjectNode()
_FREE_OBJECT.free = ANY


def compile_schema(schema: dict[str, Any] | None, *, path: str = "schema") -> Node:
    """Compile a JSON Schema (``None`` or ``{}``: any JSON object, as ``json_object`` mode asks); errors
    name the offending place starting from ``path``."""
    if not schema:
        return _FREE_OBJECT
    return _Compiler(schema).node(schema, path)


class _Compiler:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.refs: dict[str, Node] = {}
        self.depth = 0

    def node(self, s: Any, path: str) -> Node:
        if self.depth >= MAX_DEPTH:
            parts = path.split(".")
            where = path if len(parts) <= 6 else ".".join([*parts[:3], "...", *parts[-2:]])
            raise SchemaError(f"{where}: the schema is nested more than {MAX_DEPTH} levels deep, the limit for "
                              "constrained decoding; flatten it or use $defs/$ref")
        self.depth += 1
        try:
            return self._node(s, path)
        finally:
            self.depth -= 1

    def _node(self, s: Any, path: str) -> Node:
        if s is True or s == {}:
            return ANY
        if not isinstance(s, dict):
            raise SchemaError(f"{path}: expected a schema object, got {s!r}")
        for key in s:
            if key not in _SUPPORTED and key not in _ANNOTATIONS:
                raise SchemaError(
                    f"{path}: keyword {key!r} is not supported by constrained decoding; supported: "
                    f"{', '.join(sorted(_SUPPORTED))}"
                )
        if "$ref" in s:
            return self.ref(s["$ref"], path)
        if "const" in s:
            return LiteralNode((json.dumps(s["const"]),))
        if "enum" in s:
            return LiteralNode(tuple(json.dumps(v) for v in s["enum"]))
        for key in ("anyOf", "oneOf"):
            if key in s:
                return UnionNode([self.node(o, f"{path}.{key}[{i}]") for i, o in enumerate(s[key])])
        if "allOf" in s:
            if len(s["allOf"]) != 1:
                raise SchemaError(f"{path}.allOf: only a single entry is supported")
            return self.node(s["allOf"][0], f"{path}.allOf[0]")
        kind = s.get("type")
        if isinstance(kind, list):
            return UnionNode([self.typed(dict(s, type=k), k, path) for k in kind])
        if kind is None:
            if "properties" in s:
                kind = "object"
            elif "items" in s:
                kind = "array"
            else:
                return ANY
        return self.typed(s, kind, path)

    def ref(self, ref: str, path: str) -> Node:
        if ref in self.refs:
            return self.refs[ref]
        parts = ref.split("/")
        if parts[0] != "#" or len(parts) != 3 or parts[1] not in ("$defs", "definitions"):
            raise SchemaError(f"{path}.$ref: only local '#/$defs/NAME' references are supported, got {ref!r}")
        target = self.root.get(parts[1], {}).get(parts[2])
        if target is None:
            raise SchemaError(f"{path}.$ref: {ref!r} not found")
        union = UnionNode([])  # placeholder so recursive schemas terminate
        self.refs[ref] = union
        union.options = [self.node(target, ref)]
        return union

    def typed(self, s: dict[str, Any], kind: str, path: str) -> Node:
        if kind == "object":
            return self.obj(s, path)
        if kind == "array":
            items = self.node(s.get("items", True), f"{path}.items")
            return ArrayNode(items, int(s.get("minItems", 0)), s.get("maxItems"))
        if kind == "string":
            return StringNode(int(s.get("minLength", 0)), s.get("maxLength"))
        if kind == "integer":
            return self.integer(s, path)
        if kind == "number":
            if "minimum" in s or "maximum" in s:
                raise SchemaError(f"{path}: minimum/maximum are supported on integers only")
            return NumberNode(integer=False)
        if kind == "boolean":
            return LiteralNode(("true", "false"))
        if kind == "null":
            return LiteralNode(("null",))
        raise SchemaError(
            f"{path}.type: unknown type {kind!r}; valid: object, array, string, integer, number, boolean, null"
        )

    def integer(self, s: dict[str, Any], path: str) -> Node:
        low, high = s.get("minimum"), s.get("maximum")
        if low is not None and high is not None and 0 <= int(high) - int(low) <= 1000:
            return LiteralNode(tuple(str(v) for v in range(int(low), int(high) + 1)))
        if high is None and low in (None, 0):
            return NumberNode(integer=True, nonneg=low == 0)
        raise SchemaError(f"{path}: integer bounds must span at most 1000 values, or be 'minimum: 0' alone")

    def obj(self, s: dict[str, Any], path: str) -> Node:
        props = s.get("properties")
        extra = s.get("additionalProperties", True)
        if not props and extra is not False:
            node = ObjectNode()
            node.free = ANY if extra is True else self.node(extra, f"{path}.additionalProperties")
            return node
        node = ObjectNode()
        required = set(s.get("required", []))
        unknown = required - set(props or {})
        if unknown:
            raise SchemaError(f"{path}.required: {sorted(unknown)} not among the properties")
        for key, sub in (props or {}).items():
            node.props.append((key, self.node(sub, f"{path}.properties.{key}"), key in required))
        return node


# Frames are tuples with a tag first: ("v", node) value start; ("l", texts, pos) literal;
# ("s", node, length, esc) string; ("n", node, phase) number; ("o", node, phase, idx, cur, ws) object;
# ("a", node, phase, count, ws) array. Object/array phases: 0 open, 1 key done, 2 after colon,
# 3 value done, 4 after comma.
Frame = tuple[Any, ...]
Stack = tuple[Frame, ...]
State = tuple[Stack, ...]


class Grammar:
    """Parser states and transitions for one compiled schema; memoised, shared by all its sequences."""

    def __init__(self, root: Node) -> None:
        self.root = root
        self._min: dict[int, int] = {}
        self._advance: dict[tuple[State, str], State] = {}

    def initial(self) -> State:
        """The state before any character."""
        return ((("v", self.root),),)

    def advance(self, state: State, ch: str) -> State:
        """The state after ``ch``; an empty tuple when ``ch`` is not allowed."""
        key = (state, ch)
        hit = self._advance.get(key)
        if hit is None:
            out: dict[Stack, None] = {}
            for stack in state:
                for new in self._stack(stack, ch):
                    out[new] = None
            hit = tuple(out)
            if len(self._advance) > 200_000:
                self._advance.clear()
            self._advance[key] = hit
        return hit

    def complete(self, state: State) -> bool:
        """The root value has closed: nothing may follow."""
        return any(len(stack) == 0 for stack in state)

    def accepting(self, state: State) -> bool:
        """What was read is a whole value (a number may still go on)."""
        return any(all(self._can_end(f) for f in stack) for stack in state)

    def _stack(self, stack: Stack, ch: str) -> list[Stack]:
        if not stack:
            return []
        top, rest = stack[-1], stack[:-1]
        results = [rest + frames for frames in self._frame(top, ch)]
        if self._can_end(top):
            results.extend(self._stack(rest, ch))
        return results

    @staticmethod
    def _can_end(frame: Frame) -> bool:
        tag = frame[0]
        if tag == "l":
            return any(len(t) == frame[2] for t in frame[1])
        if tag == "n":
            return frame[2] in ("zero", "int", "frac", "exp")
        return False

    def _frame(self, f: Frame, ch: str) -> list[Stack]:
        tag = f[0]
        if tag == "v":
            return self._start(f[1], ch)
        if tag == "l":
            texts = tuple(t for t in f[1] if len(t) > f[2] and t[f[2]] == ch)
            return [(("l", texts, f[2] + 1),)] if texts else []
        if tag == "s":
            return self._string(f, ch)
        if tag == "n":
            return self._number(f, ch)
        if tag == "o":
            return self._object(f, ch)
        return self._array(f, ch)

    def _start(self, node: Node, ch: str) -> list[Stack]:
        if isinstance(node, UnionNode):
            return [s for o in node.options for s in self._start(o, ch)]
        if isinstance(node, AnyNode):
            kinds = (_FREE_OBJECT, _ANY_ARRAY, _ANY_STRING, _ANY_NUMBER, _ANY_LITERAL)
            return [s for o in kinds for s in self._start(o, ch)]
        if isinstance(node, ObjectNode):
            return [(("o", node, 0, 0, -1, 0),)] if ch == "{" else []
        if isinstance(node, ArrayNode):
            return [(("a", node, 0, 0, 0),)] if ch == "[" else []
        if isinstance(node, StringNode):
            return [(("s", node, 0, 0),)] if ch == '"' else []
        if isinstance(node, NumberNode):
            if ch == "-" and not node.nonneg:
                return [(("n", node, "sign"),)]
            if ch == "0":
                return [(("n", node, "zero"),)]
            return [(("n", node, "int", 1),)] if ch in "123456789" else []
        assert isinstance(node, LiteralNode)
        return self._frame(("l", node.texts, 0), ch)

    @staticmethod
    def _string(f: Frame, ch: str) -> list[Stack]:
        node, n, esc = f[1], f[2], f[3]
        limit = node.max_len if isinstance(node, StringNode) and node.max_len is not None else 1 << 30
        minimum = node.min_len if isinstance(node, StringNode) else 0
        if esc == 1:
            if ch in '"\\/bfnrt':
                return [(("s", node, n + 1, 0),)]
            return [(("s", node, n, 5),)] if ch == "u" else []
        if esc >= 2:
            if ch not in "0123456789abcdefABCDEF":
                return []
            return [(("s", node, n + 1, 0),)] if esc == 2 else [(("s", node, n, esc - 1),)]
        if ch == '"':
            return [()] if n >= minimum else []
        if ch < " " or n >= limit:
            return []
        return [(("s", node, n, 1),)] if ch == "\\" else [(("s", node, n + 1, 0),)]

    @staticmethod
    def _number(f: Frame, ch: str) -> list[Stack]:
        node, phase = f[1], f[2]
        count = f[3] if len(f) > 3 else 0
        digit = ch in "0123456789"
        if phase == "sign":
            if ch == "0":
                return [(("n", node, "zero"),)]
            return [(("n", node, "int", 1),)] if digit else []
        if phase in ("zero", "int", "frac") and not node.integer:
            if ch == "." and phase != "frac":
                return [(("n", node, "frac0"),)]
            if ch in "eE":
                return [(("n", node, "exp0"),)]
        if phase == "int" and digit and count < MAX_DIGITS:
            return [(("n", node, "int", count + 1),)]
        if phase in ("frac0", "frac") and digit and count < MAX_DIGITS:
            return [(("n", node, "frac", count + 1),)]
        if phase == "exp0" and ch in "+-":
            return [(("n", node, "exps"),)]
        if phase in ("exp0", "exps", "exp") and digit and count < 3:
            return [(("n", node, "exp", count + 1),)]
        return []

    def _object(self, f: Frame, ch: str) -> list[Stack]:
        _, node, phase, idx, cur, ws = f
        if ch in WHITESPACE:
            return [(("o", node, phase, idx, cur, ws + 1),)] if ws < MAX_WS else []
        props = node.props
        if phase in (0, 4) and ch == '"':
            if node.free is not None:
                return [(("o", node, 1, idx, -1, 0), ("s", None, 0, 0))]
            out: list[Stack] = []
            for j in range(idx, len(props)):
                out.append((("o", node, 1, j + 1, j, 0), ("l", (json.dumps(props[j][0])[1:],), 0)))
                if props[j][2]:
                    break
            return out
        if phase == 1:
            return [(("o", node, 2, idx, cur, 0),)] if ch == ":" else []
        if phase == 2:
            value = node.free if cur < 0 else props[cur][1]
            return [(("o", node, 3, idx, cur, 0),) + s for s in self._start(value, ch)]
        closable = node.free is not None or not any(req for _, _, req in props[idx:])
        if ch == "}" and phase in (0, 3) and closable:
            return [()]
        more = node.free is not None or idx < len(props)
        if ch == "," and phase == 3 and more:
            return [(("o", node, 4, idx, -1, 0),)]
        return []

    def _array(self, f: Frame, ch: str) -> list[Stack]:
        _, node, phase, count, ws = f
        if ch in WHITESPACE:
            return [(("a", node, phase, count, ws + 1),)] if ws < MAX_WS else []
        if phase == 3:
            if ch == "," and (node.max_items is None or count < node.max_items):
                return [(("a", node, 4, count, 0),)]
            return [()] if ch == "]" and count >= node.min_items else []
        if phase == 0 and ch == "]" and node.min_items == 0:
            return [()]
        if node.max_items is not None and count >= node.max_items:
            return []
        return [(("a", node, 3, count + 1, 0),) + s for s in self._start(node.item, ch)]

    def min_len(self, node: Node) -> int:
        """Fewest characters of a complete value of ``node``."""
        key = id(node)
        if key in self._min:
            return self._min[key]
        self._min[key] = 1 << 20  # cycle guard: a required self-reference cannot close
        if isinstance(node, UnionNode):
            value = min((self.min_len(o) for o in node.options), default=1 << 20)
        elif isinstance(node, ObjectNode):
            value = 2 + self._props_cost(node, 0, leading_comma=False)
        elif isinstance(node, ArrayNode):
            value = 2 + node.min_items * self.min_len(node.item) + max(0, node.min_items - 1)
        elif isinstance(node, StringNode):
            value = 2 + node.min_len
        elif isinstance(node, LiteralNode):
            value = min(len(t) for t in node.texts)
        else:
            value = 1
        self._min[key] = value
        return value

    def _props_cost(self, node: ObjectNode, idx: int, *, leading_comma: bool) -> int:
        if node.free is not None:
            return 0
        required = [(k, v) for k, v, req in node.props[idx:] if req]
        cost = sum(len(json.dumps(k)) + 1 + self.min_len(v) for k, v in required)
        commas = len(required) if leading_comma else max(0, len(required) - 1)
        return cost + commas

    def min_remaining(self, state: State) -> int:
        """Fewest characters that complete the root value from ``state`` (0 when already accepting)."""
        return min((sum(self._frame_cost(f) for f in stack) for stack in state), default=1 << 20)

    def _frame_cost(self, f: Frame) -> int:
        tag = f[0]
        if tag == "v":
            return self.min_len(f[1])
        if tag == "l":
            return min(len(t) - f[2] for t in f[1])
        if tag == "s":
            node, n, esc = f[1], f[2], f[3]
            minimum = node.min_len if isinstance(node, StringNode) else 0
            pending = 0 if esc == 0 else (1 if esc == 1 else esc - 1)
            return pending + max(0, minimum - n - (1 if esc else 0)) + 1
        if tag == "n":
            return 0 if self._can_end(f) else 1
        if tag == "o":
            node, phase, idx, cur = f[1], f[2], f[3], f[4]
            if node.free is not None:
                return {0: 1, 1: 3, 2: 2, 3: 1, 4: 5}[phase]
            after = self._props_cost(node, idx, leading_comma=True) + 1
            if phase == 1:
                return 1 + self.min_len(node.props[cur][1]) + after
            if phase == 2:
                return self.min_len(node.props[cur][1]) + after
            if phase == 4:
                needed = self._props_cost(node, idx, leading_comma=False)
                if needed == 0:
                    needed = min(len(json.dumps(k)) + 1 + self.min_len(v) for k, v, _ in node.props[idx:])
                return needed + 1
            return self._props_cost(node, idx, leading_comma=phase == 3) + 1
        node, phase, count = f[1], f[2], f[3]
        item = self.min_len(node.item)
        missing = max(0, node.min_items - count)
        if phase == 0:
            return missing * item + max(0, missing - 1) + 1
        if phase == 4:
            return item + max(0, missing - 1) * (1 + item) + 1
        return missing * (1 + item) + 1


_ANY_ARRAY = ArrayNode(ANY, 0, None)
_ANY_STRING = StringNode()
_ANY_NUMBER = NumberNode(integer=False)
_ANY_LITERAL = LiteralNode(("true", "false", "null"))
