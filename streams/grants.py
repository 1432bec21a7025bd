"""Kafka principals and ACLs per role: what `epiflow kafka grant` creates and `epiflow kafka grants` lists.

`grant_for` is pure: the principal and exactly the ACLs a role needs, from the settings' topic
prefix. `apply_grant` creates the principal's SCRAM credential (a new random password, returned
once) and its ACLs with kafka-python's admin client; `list_grants` reads them back.

| role | principal | ACLs |
|---|---|---|
| worker NAME | `worker-NAME` | READ, WRITE, CREATE, DESCRIBE on topics prefixed `<prefix>.` and `<app id>-`; READ on group `<app id>` |
| community CODE | `community-CODE` | READ on topic `<prefix>.triage.CODE`; READ on groups prefixed `community-CODE-` |
| checkpoint ID | `checkpoint-ID` | WRITE on topic `<prefix>.checkpoint-scans` |
| admin NAME | `admin-NAME` | ALTER, DESCRIBE on the cluster (principals, ACLs); ALL on topics prefixed `<prefix>.` and `<app id>-` and groups prefixed `<prefix>` |
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any, Literal, get_args

from pipeline.errors import SettingsError
from pipeline.settings import Settings
from streams.kafka_options import kafka_client_options
from streams.topics import triage_topic_name

__all__ = ["Acl", "Grant", "Role", "apply_grant", "grant_for", "list_grants"]

Role = Literal["worker", "community", "checkpoint", "admin"]
Resource = Literal["topic", "group", "cluster"]
Pattern = Literal["literal", "prefixed"]
Operation = Literal["READ", "WRITE", "CREATE", "DESCRIBE", "ALTER", "ALL"]

#: How principals' passwords are stored on the broker (SCRAM credentials).
SCRAM_MECHANISM = "SCRAM-SHA-512"
_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
_CLUSTER = "kafka-cluster"


@dataclass(frozen=True, order=True)
class Acl:
    """One ALLOW rule for the grant's principal on a resource (any host)."""

    resource: Resource
    name: str
    pattern: Pattern
    operation: Operation

    def __str__(self) -> str:
        return f"{self.operation:<8} {self.resource:<7} {self.name}{'*' if self.pattern == 'prefixed' else ''}"


@dataclass(frozen=True)
class Grant:
    """A principal (a SCRAM user) and the ACLs its role needs."""

    role: Role
    user: str
    acls: tuple[Acl, ...]

    @property
    def principal(self) -> str:
        return f"User:{self.user}"


def app_id(settings: Settings) -> str:
    """The workers' Faust app id: their consumer group and the prefix of their internal topics."""
    return f"{settings.topic_prefix}-worker"


def grant_for(settings: Settings, role: Role, name: str) -> Grant:
    """The principal and exactly the ACLs `role` needs; `name` is the worker name, community code, checkpoint id or admin name."""
    if role not in get_args(Role):
        raise SettingsError(f"role was {role!r} but is expected to be one of {', '.join(get_args(Role))}")
    if not _NAME.match(name or ""):
        raise SettingsError(f"{role} name was {name!r} but is expected to be ASCII letters, digits, '.', '_' or '-'")
    prefix, internal = f"{settings.topic_prefix}.", f"{app_id(settings)}-"
    if role == "worker":
        acls = [Acl("topic", p, "prefixed", op) for p in (prefix, internal) for op in ("READ", "WRITE", "CREATE", "DESCRIBE")]
        acls.append(Acl("group", app_id(settings), "literal", "READ"))
    elif role == "community":
        acls = [Acl("topic", triage_topic_name(settings.topic_prefix, name), "literal", "READ"),
                Acl("group", f"community-{name}-", "prefixed", "READ")]
    elif role == "checkpoint":
        acls = [Acl("topic", settings.topic("checkpoint-scans"), "literal", "WRITE")]
    else:
        acls = [Acl("cluster", _CLUSTER, "literal", "ALTER"), Acl("cluster", _CLUSTER, "literal", "DESCRIBE"),
                Acl("topic", prefix, "prefixed", "ALL"), Acl("topic", internal, "prefixed", "ALL"),
                Acl("group", settings.topic_prefix, "prefixed", "ALL")]
    return Grant(role=role, user=f"{role}-{name}", acls=tuple(sorted(acls)))


def _admin(settings: Settings) -> Any:
    from kafka import KafkaAdminClient

    return KafkaAdminClient(client_id="epiflow-grants", **kafka_client_options(settings, "kafka-python"))


def _to_kafka(grant: Grant, acl: Acl) -> Any:
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
    )

    pattern = ResourcePattern(ResourceType[acl.resource.upper()], acl.name, ACLResourcePatternType[acl.pattern.upper()])
    return ACL(grant.principal, "*", ACLOperation[acl.operation], ACLPermissionType.ALLOW, pattern)


def apply_grant(settings: Settings, grant: Grant) -> str:
    """Create (or reset) the principal's SCRAM credential and its ACLs; returns the new password.

    Run as a principal allowed to alter the cluster (the broker's super-user or an admin grant).
    Granting again keeps the ACLs and replaces the password (a rotation).
    """
    from kafka.admin import UserScramCredentialUpsertion

    password = secrets.token_urlsafe(24)
    admin = _admin(settings)
    try:
        failed = {user: error for user, error in admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion(grant.user, SCRAM_MECHANISM, password)]).items() if error}
        if failed:
            raise SettingsError(f"the broker refused the credential for {grant.user!r}: {failed[grant.user]}")
        result = admin.create_acls([_to_kafka(grant, acl) for acl in grant.acls])
        if result["failed"]:
            raise SettingsError(f"the broker refused ACLs for {grant.principal}: {result['failed']}")
    finally:
        admin.close()
    return password


def list_grants(settings: Settings) -> dict[str, list[Acl]]:
    """Every principal with a SCRAM credential or an ACL, and its ALLOW ACLs."""
    from kafka.admin import (
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePatternFilter,
        ResourceType,
    )
    from kafka.errors import NoError

    admin = _admin(settings)
    try:
        users = admin.describe_user_scram_credentials()
        acls, error = admin.describe_acls(ACLFilter(
            principal=None, host="*", operation=ACLOperation.ANY, permission_type=ACLPermissionType.ANY,
            resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY)))
    finally:
        admin.close()
    if error is not NoError and not isinstance(error, NoError):
        raise SettingsError(f"the broker refused to list ACLs: {error}")
    found: dict[str, list[Acl]] = {f"User:{user}": [] for user in users}
    for acl in acls:
        if acl.permission_type != ACLPermissionType.ALLOW:
            continue
        pattern = acl.resource_pattern
        found.setdefault(acl.principal, []).append(Acl(
            pattern.resource_type.name.lower(), pattern.resource_name, pattern.pattern_type.name.lower(), acl.operation.name))
    return {principal: sorted(entries) for principal, entries in sorted(found.items())}
