"""Which names a node's certificates may carry: its own, and pattern matches no other node holds."""

from __future__ import annotations

from sweeper import names
from sweeper.model import Node


def fleet() -> list[Node]:
    return [
        Node(name="web1", host="10.0.0.1", names=("web1.corp.test",), allow_names=("*.corp.test",)),
        Node(name="web2", host="10.0.0.2", names=("web2.corp.test", "shop.corp.test")),
        Node(name="db1", host="db1.corp.test"),
    ]


def test_a_pattern_gives_new_names_but_never_one_another_node_holds() -> None:
    web1 = names.policies(fleet())["web1"]
    assert web1.allows("WEB1.corp.test.") and web1.allows("10.0.0.1")
    assert web1.allows("api.corp.test")
    assert not web1.allows("web2.corp.test") and not web1.allows("shop.corp.test")
    assert not web1.allows("db1.corp.test") and not web1.allows("10.0.0.2")
    assert not web1.allows("*.corp.test") and not web1.allows("api.other.test")


def test_a_node_without_patterns_keeps_to_its_own_names() -> None:
    web2 = names.policies(fleet())["web2"]
    assert web2.split(["shop.corp.test", "web1.corp.test", "api.corp.test"]) == (
        ("shop.corp.test",),
        ("web1.corp.test", "api.corp.test"),
    )


def test_the_fleet_s_names_are_one_set_shared_by_every_policy() -> None:
    """Memory and time linear in the fleet: 5,000 nodes do not hold 5,000 copies of every name."""
    many = [
        Node(name=f"n{i}", host=f"10.1.{i // 250}.{i % 250}", names=(f"n{i}.corp.test",)) for i in range(5000)
    ]
    found = names.policies(many)
    assert len({id(policy.taken) for policy in found.values()}) == 1
    assert not found["n1"].allows("n2.corp.test") and found["n1"].allows("n1.corp.test")
