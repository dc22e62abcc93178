"""A tiny parser and per-period evaluator for CloudWatch metric-math alarm expressions (no `eval`).

Supported (the subset mlfn's templates and common alarms use, from "Using metric math" > "Metric math syntax and
functions"): numbers, query ids (lowercase first letter, then letters, digits, underscores), `+ - * /` with
parentheses and unary minus, comparisons `> < >= <= == !=` (1 or 0), `AND`/`OR`/`NOT`, `FILL(x, value)` and
`IF(condition, trueValue[, falseValue])`.

Evaluation is per period on one value per id (None: no datapoint in that period), as "Using metric math" says:
- arithmetic (`+ - * /`) and comparison/logical operators treat a time series' missing value as 0 when another
  time-series operand has a value in that period ("Missing values in a time series are treated as 0"; "only one of
  the time series has a value ... treats the missing value in the other time series as 0"); when no time-series
  operand has one, there is no datapoint (a scalar alone makes none);
- a division by zero drops the datapoint ("If the value of a data point causes a function to attempt to divide by
  zero, the data point is dropped");
- `FILL(x, v)` gives v where x is missing; `IF(c, a, b)` gives a where c is non-zero, b where it is zero (missing
  when b is omitted), and nothing where c is missing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

Value = float | None
_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)|([A-Za-z_][A-Za-z0-9_]*)|(>=|<=|==|!=|[-+*/(),<>]))")
_BINARY: dict[str, Callable[[float, float], float | None]] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "/": lambda a, b: None if b == 0 else a / b,
    ">": lambda a, b: float(a > b), "<": lambda a, b: float(a < b), ">=": lambda a, b: float(a >= b),
    "<=": lambda a, b: float(a <= b), "==": lambda a, b: float(a == b), "!=": lambda a, b: float(a != b),
    "AND": lambda a, b: float(bool(a) and bool(b)), "OR": lambda a, b: float(bool(a) or bool(b)),
}
_LEVELS = (("OR",), ("AND",), (">", "<", ">=", "<=", "==", "!="), ("+", "-"), ("*", "/"))
_FUNCTIONS = {"FILL": (2, 2), "IF": (2, 3)}


class MetricMathError(ValueError):
    """An expression outside the supported subset, or malformed."""


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Ref:
    id: str


@dataclass(frozen=True)
class Op:
    op: str
    args: tuple[Node, ...]


Node = Num | Ref | Op


def _tokens(text: str) -> list[str]:
    tokens, pos, text = [], 0, text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise MetricMathError(f"metric math: unexpected {text[pos:].strip()[:20]!r} in {text!r}")
        tokens.append(match.group(match.lastindex or 0))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text, self.tokens, self.pos = text, _tokens(text), 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token.upper() != expected):
            raise MetricMathError(f"metric math: expected {expected or 'more'} at token {self.pos + 1} of "
                                  f"{self.text!r}, got {token!r}")
        self.pos += 1
        return token

    def parse(self) -> Node:
        node = self.binary(0)
        if self.peek() is not None:
            raise MetricMathError(f"metric math: unexpected {self.peek()!r} in {self.text!r}")
        return node

    def binary(self, level: int) -> Node:
        if level == len(_LEVELS):
            return self.unary()
        node = self.binary(level + 1)
        while (self.peek() or "").upper() in _LEVELS[level]:
            op = self.take().upper()
            node = Op(op, (node, self.binary(level + 1)))
        return node

    def unary(self) -> Node:
        token = (self.peek() or "").upper()
        if token in ("-", "+", "NOT"):
            self.take()
            operand = self.unary()
            return Op({"-": "NEG", "+": "POS", "NOT": "NOT"}[token], (operand,))
        return self.atom()

    def atom(self) -> Node:
        token = self.take()
        if token == "(":
            node = self.binary(0)
            self.take(")")
            return node
        if token[0].isdigit() or token[0] == ".":
            return Num(float(token))
        if self.peek() == "(":
            name = token.upper()
            if name not in _FUNCTIONS:
                raise MetricMathError(f"metric math: function {token} is not supported by the emulator "
                                      f"(supported: {', '.join(_FUNCTIONS)}) in {self.text!r}")
            self.take("(")
            args = [self.binary(0)]
            while self.peek() == ",":
                self.take(",")
                args.append(self.binary(0))
            self.take(")")
            low, high = _FUNCTIONS[name]
            if not low <= len(args) <= high:
                raise MetricMathError(f"metric math: {name} takes {low} to {high} arguments, got {len(args)}")
            return Op(name, tuple(args))
        if not token[0].islower():
            raise MetricMathError(f"metric math: {token!r} is not a query id (ids start with a lowercase letter) "
                                  f"in {self.text!r}")
        return Ref(token)


def parse(text: str) -> Node:
    """The expression's syntax tree; MetricMathError names what is wrong."""
    return _Parser(text).parse()


def references(node: Node) -> set[str]:
    if isinstance(node, Ref):
        return {node.id}
    if isinstance(node, Op):
        return set().union(*(references(a) for a in node.args))
    return set()


def evaluate(node: Node, values: Mapping[str, Value]) -> Value:
    """The expression's value in one period, from each id's value in that period (None: missing)."""
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Ref):
        return values[node.id]
    if node.op == "FILL":
        value = evaluate(node.args[0], values)
        return evaluate(node.args[1], values) if value is None else value
    if node.op == "IF":
        condition = evaluate(node.args[0], values)
        if condition is None:
            return None
        branch = node.args[1] if condition else (node.args[2] if len(node.args) == 3 else None)
        return None if branch is None else evaluate(branch, values)
    args = [evaluate(a, values) for a in node.args]
    if len(args) == 2 and any(a is None for a in args):
        series = [a for a, n in zip(args, node.args, strict=True) if references(n)]
        if all(a is None for a in series):
            return None
        args = [0.0 if a is None else a for a in args]
    if any(a is None for a in args):
        return None
    if node.op == "NEG":
        return -args[0]  # type: ignore[operator]
    if node.op == "POS":
        return args[0]
    if node.op == "NOT":
        return float(not args[0])
    return _BINARY[node.op](args[0], args[1])  # type: ignore[arg-type]
