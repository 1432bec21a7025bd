"""Failure drills on the real Kafka broker: `python -m tools.drills [--only NAME] [--quick]` (`make drills`).

Each drill runs `epiflow worker` subprocesses on a deployment of its own (a unique topic prefix, so
its own consumer group), streams a seeded simulation through them, does something hostile mid-stream,
and then checks the triage topics against `pipeline.evaluate` on the same input: after dropping
repeats by `message_id`, every person's last message must carry the offline action and community.
It prints one JSON line per drill (what it checked and its figures) and exits non-zero if any fails.

Drills: kill-worker, broker-restart (on a private broker, never the shared one), poison,
rules-publish, region-relist, slow-consumer.
"""

from tools.drills.deployment import (
    READY_TIMEOUT_S,
    STREAM_FILES,
    Deployment,
    DrillFailed,
    Pusher,
    input_records,
    new_deployment,
)
from tools.drills.drills import DRILLS, DrillContext, finish, run_drill
from tools.drills.observe import Message, list_topics, read_topic, triage_records
from tools.drills.oracle import compare, offline, status_accounting, topic_accounting, wait_drained

__all__ = [
    "DRILLS",
    "READY_TIMEOUT_S",
    "STREAM_FILES",
    "Deployment",
    "DrillContext",
    "DrillFailed",
    "Message",
    "Pusher",
    "compare",
    "finish",
    "input_records",
    "list_topics",
    "new_deployment",
    "offline",
    "read_topic",
    "run_drill",
    "status_accounting",
    "topic_accounting",
    "triage_records",
    "wait_drained",
]
