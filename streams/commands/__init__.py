"""CLI sub-commands, one module per command group; `streams.cli` registers each with `register(root)`."""

from streams.commands import (
    cmd_access,
    cmd_demo,
    cmd_evaluate,
    cmd_geo,
    cmd_groups,
    cmd_id,
    cmd_kafka,
    cmd_publish,
    cmd_queue,
    cmd_report,
    cmd_rules,
    cmd_simulate,
    cmd_trace,
    cmd_worker,
)

COMMAND_MODULES = [cmd_id, cmd_geo, cmd_rules, cmd_evaluate, cmd_simulate, cmd_worker, cmd_demo, cmd_publish, cmd_access, cmd_queue, cmd_report, cmd_kafka,
                   cmd_groups, cmd_trace]

__all__ = ["COMMAND_MODULES"]
