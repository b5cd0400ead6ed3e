"""The lineage links and the -o json document, from a namespace of fixture objects."""

from __future__ import annotations

import json

from mlops_operator.ctl.lineage import Node, build_lineage, lineage_document, select

from .objects import MODEL, NS, deployment, model_version, namespace_objects


def shape(nodes: list[Node]) -> list[tuple]:
    """(kind, name, role, children) without the facts."""
    return [(n.kind, n.name, n.role, shape(n.children)) for n in nodes]


def test_every_object_is_placed_under_what_it_came_from() -> None:
    assert shape(build_lineage(namespace_objects())) == [
        (
            "Dataset",
            "iris",
            None,
            [
                ("TrainingRun", "iris-train", None, [("ModelVersion", f"{MODEL}-8", None, [])]),
                (
                    "TrainingRun",
                    "iris-retrain-1",
                    None,
                    [("ModelVersion", f"{MODEL}-9", None, [("Deployment", "iris", "stable", [])])],
                ),
                (
                    "TrainingRun",
                    "iris-retrain-2",
                    None,
                    [("ModelVersion", f"{MODEL}-10", None, [("Deployment", "iris", "canary", [])])],
                ),
            ],
        ),
        # a run whose Dataset is gone hangs under a missing Dataset; parentless objects are roots
        ("Dataset", "gone", None, [("TrainingRun", "lost-run", None, [])]),
        ("ModelVersion", f"{MODEL}-3", None, []),
        ("Deployment", "empty", None, []),
    ]


def test_missing_dataset_is_marked_and_facts_have_the_kinds_keys() -> None:
    roots = build_lineage(namespace_objects())
    gone = roots[1]
    assert gone.missing and gone.phase is None
    assert set(gone.facts) == set(roots[0].facts) == {"version", "rows", "violations"}
    assert roots[0].facts["rows"] == 150 and roots[0].facts["version"].startswith("sha256:")


def test_model_version_without_source_links_through_its_label() -> None:
    objects = namespace_objects()
    mv = objects["ModelVersion"][0]
    del mv["spec"]["source"]  # only the controller's lineage label is left
    tree = build_lineage(objects)
    assert [c.name for c in tree[0].children[0].children] == [f"{MODEL}-8"]


def test_deployment_is_linked_by_model_and_version_not_by_name() -> None:
    other = deployment({"stableVersion": 9}, name="other-model")
    other["spec"]["model"]["registeredModel"] = "another-model"  # same version number, other model
    objects = {"ModelVersion": [model_version(9, None, "Promoted", "2026-12-04T10:00:00Z")], "Deployment": [other]}
    assert shape(build_lineage(objects)) == [
        ("ModelVersion", f"{MODEL}-9", None, []),
        ("Deployment", "other-model", None, []),
    ]


def test_select_keeps_ancestors_and_descendants_of_the_name() -> None:
    roots = build_lineage(namespace_objects())
    assert shape(select(roots, "iris-retrain-1")) == [
        (
            "Dataset",
            "iris",
            None,
            [
                (
                    "TrainingRun",
                    "iris-retrain-1",
                    None,
                    [("ModelVersion", f"{MODEL}-9", None, [("Deployment", "iris", "stable", [])])],
                )
            ],
        )
    ]
    # "iris" names both the Dataset (everything below it) and the Deployment
    assert [n.name for n in select(roots, "iris")] == ["iris"]
    assert select(roots, "nothing") == []


def test_json_document_is_versioned_and_carries_the_facts() -> None:
    document = lineage_document(NS, build_lineage(namespace_objects()))
    assert (document["apiVersion"], document["kind"], document["schemaVersion"], document["namespace"]) == (
        "mlops.dev/v1alpha1",
        "Lineage",
        1,
        NS,
    )
    dataset = document["items"][0]
    run = dataset["children"][1]
    assert run["facts"]["triggeredBy"] == "drift" and run["facts"]["metrics"] == {"accuracy": 0.967, "f1_macro": 0.96}
    mv = run["children"][0]
    assert mv["facts"]["version"] == 9 and mv["facts"]["gates"][0]["passed"] is True
    dep = mv["children"][0]
    assert dep["role"] == "stable"
    assert {k: dep["facts"][k] for k in ("stableVersion", "canaryVersion", "canaryWeight", "step", "steps")} == {
        "stableVersion": 9,
        "canaryVersion": 10,
        "canaryWeight": 50,
        "step": 1,
        "steps": 3,
    }
    assert dep["facts"]["drift"]["feature"] == "sepal_length"
    # every node has the same top-level keys; the document is plain JSON
    assert all(set(n) == {"kind", "name", "phase", "role", "missing", "facts", "children"} for n in document["items"])
    assert json.loads(json.dumps(document)) == document


def test_default_canary_steps_come_from_the_api_model() -> None:
    dep = deployment({"stableVersion": 1})
    del dep["spec"]["strategy"]
    (node,) = build_lineage({"Deployment": [dep]})
    assert node.facts["steps"] == 3  # api/deployment.py's default 10 %, 50 %, 100 %
