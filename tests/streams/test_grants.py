"""The ACLs each role gets: exactly what it needs, from the settings' topic prefix (no broker)."""

from __future__ import annotations

import pytest

from pipeline.errors import SettingsError
from pipeline.settings import Settings
from streams.grants import Acl, grant_for

SETTINGS = Settings(topic_prefix="district7")


def test_a_community_reads_its_own_triage_topic_and_its_groups_only() -> None:
    grant = grant_for(SETTINGS, "community", "330106001")
    assert grant.principal == "User:community-330106001"
    assert grant.acls == (Acl("group", "community-330106001-", "prefixed", "READ"),
                          Acl("topic", "district7.triage.330106001", "literal", "READ"))


def test_a_checkpoint_writes_scans_only() -> None:
    grant = grant_for(SETTINGS, "checkpoint", "cp-01")
    assert (grant.user, grant.acls) == ("checkpoint-cp-01", (Acl("topic", "district7.checkpoint-scans", "literal", "WRITE"),))


def test_a_worker_is_confined_to_its_prefix_its_internal_topics_and_its_group() -> None:
    grant = grant_for(SETTINGS, "worker", "w1")
    assert {(a.resource, a.name, a.pattern) for a in grant.acls} == {
        ("topic", "district7.", "prefixed"), ("topic", "district7-worker-", "prefixed"), ("group", "district7-worker", "literal")}
    assert {a.operation for a in grant.acls if a.resource == "topic"} == {"READ", "WRITE", "CREATE", "DESCRIBE"}
    assert not any(a.operation == "ALL" or a.resource == "cluster" for a in grant.acls)


def test_an_admin_may_grant() -> None:
    acls = grant_for(SETTINGS, "admin", "ops").acls
    assert Acl("cluster", "kafka-cluster", "literal", "ALTER") in acls


@pytest.mark.parametrize(("role", "name", "message"), [
    ("community", "c1 ; rm", "community name was 'c1 ; rm'"),
    ("community", "", "community name was ''"),
    ("auditor", "x", "role was 'auditor' but is expected to be one of worker, community, checkpoint, admin"),
])
def test_bad_grants_are_refused(role: str, name: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        grant_for(SETTINGS, role, name)  # type: ignore[arg-type]
