"""Custom PromQL scoped by a real parser: every selector gets the object's namespace, anywhere in the tree;
a selector naming another namespace, an unparsable query, or a cluster with custom queries off is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import promql_parser
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlops_operator.api.deployment import DeploymentSpec, DeploymentStatus
from mlops_operator.planning.deployment import reads_due
from mlops_operator.planning.observed import Tracks
from mlops_operator.planning.plan import Meta
from mlops_operator.planning.querypolicy import QUERIES_OFF, QueryRefusedError, scoped_query

from .builders import track

NS = 'namespace="team-a"'


@pytest.mark.parametrize(
    ("query", "scoped"),
    [
        ("up", f"up{{{NS}}}"),
        ('sum(rate(m{a="1"}[5m] offset 1m))', f'sum (rate(m{{a="1",{NS}}}[5m] offset 1m))'),
        ("max_over_time(up[10m:1m])", f"max_over_time(up{{{NS}}}[10m:1m])"),
        ("rate(x[5m:] offset -1m)", f"rate(x{{{NS}}}[5m:] offset -1m)"),
        ('rate(x{a="1"}[5m] offset 1m @ end())', f'rate(x{{a="1",{NS}}}[5m] @ end() offset 1m)'),
        # Label values and strings are quoted from the tree: backslashes, quotes and regex escapes survive.
        (r'up{a="x\\by"}', r'up{a="x\\by",namespace="team-a"}'),
        (r'up{instance=~".*\\.example\\.com"}', r'up{instance=~".*\\.example\\.com",namespace="team-a"}'),
        (
            r'label_replace(up, "a", "$1", "b", "(\\d+)")',
            r'label_replace(up{namespace="team-a"}, "a", "$1", "b", "(\\d+)")',
        ),
        ("x[5m:1m] @ start()", f"x{{{NS}}}[5m:1m] @ start()"),
        ("up @ 100", f"up{{{NS}}} @ 100.000"),
        ("-(rate(up[5m] @ end()))", f"-(rate(up{{{NS}}}[5m] @ end()))"),
        ("topk(3, up)", f"topk (3.0, up{{{NS}}})"),
        ('count_values("v", up)', f'count_values ("v", up{{{NS}}})'),
        ('label_replace(up, "a", "$1", "b", "(.*)")', f'label_replace(up{{{NS}}}, "a", "$1", "b", "(.*)")'),
        ("a / on(x) group_left(y) b", f"a{{{NS}}} / on(x) group_left(y) b{{{NS}}}"),
        ("a > bool 0.5", f"a{{{NS}}} > bool 0.5"),
        (
            "sum without (pod) (x) / ignoring(pod) group_right count(y)",
            f"sum without (pod) (x{{{NS}}}) / ignoring(pod) group_right() count (y{{{NS}}})",
        ),
        ("sum by (a) (x) unless on (b) y", f"sum by (a) (x{{{NS}}}) unless on(b) y{{{NS}}}"),
        ('{__name__="up"}', f'{{__name__="up",{NS}}}'),
        ('up{namespace="team-a"}', f"up{{{NS}}}"),  # the object's own namespace, kept once
        ("vector(1)", "vector(1.0)"),
        ("time() - 5", "time() - 5.0"),
        ("-x ^ 2", f"-(x{{{NS}}} ^ 2.0)"),  # precedence kept: the power binds first
        ("a + b * c", f"a{{{NS}}} + (b{{{NS}}} * c{{{NS}}})"),
    ],
)
def test_every_selector_is_scoped_and_the_result_parses_to_the_same_tree(query: str, scoped: str) -> None:
    printed = scoped_query(query, "team-a")
    assert printed == scoped
    assert scoped_query(printed, "team-a") == printed  # scoping is idempotent: nothing is added twice


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ('up{namespace="team-b"}', 'a selector matches namespace="team-b": custom queries see only namespace team-a'),
        ('sum(rate(x{namespace=~".+"}[5m]))', 'a selector matches namespace=~".+"'),
        ('up{namespace!="team-a"}', 'a selector matches namespace!="team-a"'),
        ('count({__name__=~"x.*" or b="2"})', "selectors with `or` between matchers are not supported"),
        ("sum(", "not valid PromQL: unclosed left parenthesis"),
    ],
)
def test_a_query_that_cannot_be_scoped_is_refused_with_the_reason(query: str, reason: str) -> None:
    with pytest.raises(QueryRefusedError) as refused:
        scoped_query(query, "team-a")
    assert reason in str(refused.value)


def test_a_string_holding_quotes_and_code_stays_one_string() -> None:
    query = 'count_values("x\\", vector(1)) or vector(2) or count_values(\\"y", up)'
    tree = promql_parser.parse(scoped_query(query, "team-a"))
    assert isinstance(tree, promql_parser.AggregateExpr) and str(tree.op) == "count_values"
    assert isinstance(tree.param, promql_parser.StringLiteral)
    assert tree.param.val == 'x", vector(1)) or vector(2) or count_values("y'


def test_a_query_nested_beyond_the_stack_is_refused_not_raised() -> None:
    for query in ("(" * 1500 + "up" + ")" * 1500, "-" * 2000 + "up", "+".join(["up"] * 1300)):
        with pytest.raises(QueryRefusedError, match="nested too deeply"):
            scoped_query(query, "team-a")


def test_the_chart_can_turn_custom_queries_off() -> None:
    with pytest.raises(QueryRefusedError) as refused:
        scoped_query("up", "team-a", "off")
    assert str(refused.value) == QUERIES_OFF


# A small PromQL grammar: selectors with matchers, ranges, functions, aggregations, binary operators.
names = st.sampled_from(["up", "mlops_requests_total", "x_bucket", "node_cpu"])
labels = st.sampled_from(["job", "pod", "deployment", "le"])
values = st.text(alphabet="abc-._0", min_size=0, max_size=4)
ops = st.sampled_from(["=", "!=", "=~", "!~"])
matchers = st.lists(st.tuples(labels, ops, values), max_size=3).map(
    lambda ms: ",".join(f'{name}{op}"{value}"' for name, op, value in ms)
)
selectors = st.builds(lambda n, m: f"{n}{{{m}}}" if m else n, names, matchers)
ranged = st.builds(lambda s, r: f"rate({s}[{r}])", selectors, st.sampled_from(["1m", "5m", "30s"]))


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(lambda e, by: f"sum by ({by}) ({e})", children, labels),
        st.builds(lambda a, op, b: f"({a}) {op} ({b})", children, st.sampled_from(["+", "/", "and", ">"]), children),
        st.builds(lambda e: f"max_over_time(({e})[10m:1m])", children),
        st.builds(lambda e: f"abs({e})", children),
    )


queries = st.recursive(st.one_of(selectors, ranged), _extend, max_leaves=6)


@settings(max_examples=200, deadline=None)
@given(queries)
def test_generated_queries_come_back_with_every_selector_scoped(query: str) -> None:
    printed = scoped_query(query, "team-a")
    seen: list[str] = []

    def visit(node: promql_parser.Expr) -> None:
        selector = node.vector_selector if isinstance(node, promql_parser.MatrixSelector) else node
        if isinstance(selector, promql_parser.VectorSelector):
            seen.append(str(selector))
            assert any(m.name == "namespace" and m.value == "team-a" for m in selector.matchers.matchers)

    promql_parser.walk(promql_parser.parse(printed), visit)
    assert seen and len(seen) >= query.count("{") - query.count("{}")  # no selector was lost on the way
    assert scoped_query(printed, "team-a") == printed


def test_a_refused_analysis_query_is_never_sent_and_says_why() -> None:
    body = {
        "metadata": {"namespace": "team-a", "name": "iris", "uid": "u", "generation": 1},
        "spec": {
            "model": {"registeredModel": "iris", "alias": "production"},
            "strategy": {
                "canary": {
                    "steps": [{"weight": 20}],
                    "analysis": {
                        "metrics": [
                            {"name": "theirs", "query": 'sum(up{namespace="team-b"})', "max": 1},
                            {"name": "ours", "query": "sum(up)", "max": 1},
                        ]
                    },
                }
            },
        },
    }
    spec = DeploymentSpec.model_validate(body["spec"])
    status = DeploymentStatus.model_validate({"stableVersion": 1, "canaryVersion": 2, "canaryWeight": 20, "step": 0})
    now = datetime(2026, 12, 2, tzinfo=UTC)
    reads = reads_due(Meta.of(body), spec, status, Tracks(canary=track(1)), "http://prom:9090", None, False, now)
    assert reads.analysis is not None
    theirs, ours = reads.analysis
    assert theirs.promql == "" and theirs.refused is not None and theirs.refused.startswith("invalid query: ")
    assert ours.refused is None and ours.promql == 'sum (up{namespace="team-a"})'
    off = reads_due(
        Meta.of(body), spec, status, Tracks(canary=track(1)), "http://p:9090", None, False, now, False, "off"
    )
    assert off.analysis is not None and all(q.refused == f"invalid query: {QUERIES_OFF}" for q in off.analysis)
