"""Custom PromQL sees one namespace: a real parser finds every selector and adds `namespace="<own>"` to it.

A Deployment's analysis metrics and drift check may carry the user's own PromQL. On a shared Prometheus
that query would otherwise read every team's series. The query is parsed by `promql-parser` (the Rust
PromQL parser), every vector selector — inside range selectors, subqueries, function calls, aggregations
and both sides of binary operators, every `or` group of a selector — gets the namespace matcher, and
the query is printed again from the tree. The result is parsed once more and each selector checked, so
a printing mistake fails closed. A selector that names another namespace is refused, not rewritten.
The chart can also turn custom queries off (`prometheus.customQueries: off`).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Literal

import promql_parser as promql

NAMESPACE_LABEL = "namespace"
CustomQueries = Literal["scoped", "off"]
QUERIES_OFF = "custom PromQL is off on this cluster (chart value prometheus.customQueries); use a builtin metric"


class QueryRefusedError(ValueError):
    """A custom query that cannot be scoped to the object's namespace; the message says why."""


def scoped_query(query: str, namespace: str, policy: CustomQueries = "scoped") -> str:
    """`query` with every selector restricted to `namespace`, or QueryRefusedError."""
    if policy == "off":
        raise QueryRefusedError(QUERIES_OFF)
    try:
        tree = _parse(query)
        printed = _render(tree, namespace)
        _check_scoped(_parse(printed), namespace)
    except RecursionError as error:  # nesting deeper than Python's stack: refused, never a failed reconcile
        raise QueryRefusedError("the query is nested too deeply") from error
    return printed


def _parse(query: str) -> promql.Expr:
    try:
        return promql.parse(query)
    except ValueError as error:
        raise QueryRefusedError(f"not valid PromQL: {error}") from error


def _scoped(matchers: list[promql.Matcher], namespace: str) -> list[promql.Matcher]:
    own = [m for m in matchers if m.name == NAMESPACE_LABEL]
    for matcher in own:
        if matcher.op != promql.MatchOp.Equal or matcher.value != namespace:
            raise QueryRefusedError(
                f"a selector matches {matcher}: custom queries see only "
                f"namespace {namespace} (leave the namespace matcher out, or use {{{{namespace}}}})"
            )
    kept = [m for m in matchers if m.name != NAMESPACE_LABEL]
    return [*kept, promql.Matcher(promql.MatchOp.Equal, NAMESPACE_LABEL, namespace)]


def _selector(node: promql.VectorSelector, namespace: str, range_: timedelta | None = None) -> str:
    """A selector printed from the tree, its label values quoted here (the parser's printer does not escape)."""
    if node.matchers.or_matchers:
        raise QueryRefusedError("selectors with `or` between matchers are not supported in custom queries")
    matchers = [
        m for m in _scoped(list(node.matchers.matchers), namespace)
        if not (node.name and m.name == "__name__" and m.op == promql.MatchOp.Equal and m.value == node.name)
    ]  # fmt: skip
    text = (node.name or "") + "{" + ",".join(f"{m.name}{_op(m.op)}{_quoted(m.value)}" for m in matchers) + "}"
    if range_ is not None:
        text += f"[{promql.display_duration(range_)}]"
    return text + _at(node.at) + _offset(node.offset)


def _op(op: promql.MatchOp) -> str:
    if op == promql.MatchOp.Equal:
        return "="
    if op == promql.MatchOp.NotEqual:
        return "!="
    return "=~" if op == promql.MatchOp.Re else "!~"


def _quoted(value: str) -> str:
    # A JSON string is a valid PromQL double-quoted string (Go escapes), with every quote and backslash escaped.
    return json.dumps(value, ensure_ascii=False)


def _render(node: promql.Expr, namespace: str) -> str:
    """PromQL text of `node` with every selector scoped; composite nodes are printed here, leaves here too."""
    if isinstance(node, promql.VectorSelector):
        return _selector(node, namespace)
    if isinstance(node, promql.MatrixSelector):
        return _selector(node.vector_selector, namespace, node.range)
    if isinstance(node, promql.NumberLiteral):
        return repr(float(node.val))
    if isinstance(node, promql.StringLiteral):
        return _quoted(node.val)
    if isinstance(node, promql.ParenExpr):
        return f"({_render(node.expr, namespace)})"
    if isinstance(node, promql.UnaryExpr):
        return f"-{_operand(node.expr, namespace)}"
    if isinstance(node, promql.Call):
        return f"{node.func.name}({', '.join(_render(arg, namespace) for arg in node.args)})"
    if isinstance(node, promql.AggregateExpr):
        return _aggregate(node, namespace)
    if isinstance(node, promql.BinaryExpr):
        return _binary(node, namespace)
    if isinstance(node, promql.SubqueryExpr) and node.range is not None:
        step = promql.display_duration(node.step) if node.step else ""
        text = f"{_operand(node.expr, namespace)}[{promql.display_duration(node.range)}:{step}]"
        return text + _at(node.at) + _offset(node.offset)
    raise QueryRefusedError(f"unsupported PromQL construct {type(node).__name__}")


def _operand(node: promql.Expr, namespace: str) -> str:
    """An operand: in parentheses when it is itself an operation (so precedence never changes), else bare."""
    text = _render(node, namespace)
    return f"({text})" if isinstance(node, (promql.BinaryExpr, promql.UnaryExpr)) else text


def _aggregate(node: promql.AggregateExpr, namespace: str) -> str:
    grouping = ""
    if node.modifier is not None:
        word = "by" if node.modifier.type == promql.AggModifierType.By else "without"
        grouping = f" {word} ({', '.join(node.modifier.labels)})"
    args = [_render(node.param, namespace)] if node.param is not None else []
    args.append(_render(node.expr, namespace))
    return f"{node.op}{grouping} ({', '.join(args)})"


def _binary(node: promql.BinaryExpr, namespace: str) -> str:
    words = []
    modifier = node.modifier
    if modifier is not None:
        fill = modifier.fill_values
        if fill is not None and (fill.lhs is not None or fill.rhs is not None):
            raise QueryRefusedError("fill modifiers of binary operators are not supported in custom queries")
        if modifier.return_bool:
            words.append("bool")
        if modifier.matching is not None:
            word = "on" if modifier.matching.type == promql.LabelModifierType.Include else "ignoring"
            words.append(f"{word}({', '.join(modifier.matching.labels)})")
        groups = modifier.group_labels or []
        if modifier.card == promql.VectorMatchCardinality.ManyToOne:
            words.append(f"group_left({', '.join(groups)})")
        elif modifier.card == promql.VectorMatchCardinality.OneToMany:
            words.append(f"group_right({', '.join(groups)})")
    middle = " ".join([str(node.op), *words])
    return f"{_operand(node.lhs, namespace)} {middle} {_operand(node.rhs, namespace)}"


def _at(at: promql.AtModifier | None) -> str:
    if at is None:
        return ""
    if at.type == promql.AtModifierType.Start:
        return " @ start()"
    if at.type == promql.AtModifierType.End:
        return " @ end()"
    moment: datetime | None = at.at
    return f" @ {moment.timestamp():.3f}" if moment is not None else ""


def _offset(offset: timedelta | None) -> str:
    if not offset:
        return ""
    if offset < timedelta(0):
        return f" offset -{promql.display_duration(-offset)}"
    return f" offset {promql.display_duration(offset)}"


def _check_scoped(tree: promql.Expr, namespace: str) -> None:
    """Every selector of the printed query carries the namespace matcher (or QueryRefusedError)."""
    unscoped: list[str] = []

    def visit(node: promql.Expr) -> None:
        selector = node.vector_selector if isinstance(node, promql.MatrixSelector) else node
        if isinstance(selector, promql.VectorSelector):
            matchers = selector.matchers
            if matchers.or_matchers or not any(
                m.name == NAMESPACE_LABEL and m.op == promql.MatchOp.Equal and m.value == namespace
                for m in matchers.matchers
            ):
                unscoped.append(str(selector))

    promql.walk(tree, visit)
    if unscoped:
        raise QueryRefusedError(f"could not scope {unscoped[0]} to namespace {namespace}")
