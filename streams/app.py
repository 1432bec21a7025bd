"""Build the Faust app from settings — and nothing else: broker, store and web bound in one place."""

from __future__ import annotations

from typing import Any

import faust

from pipeline.settings import Settings
from streams import kafka
from streams.kafka_options import kafka_client_options

__all__ = ["App", "build_app"]


#: How often a worker's consumer re-reads topic metadata (ms); a new or late topic joins the assignment then.
CONSUMER_METADATA_MAX_AGE_MS = 5_000


class App(faust.App):
    """faust.App on `streams.kafka.Transport` for `kafka://`: commits that hold across rebalances, a producer that
    keeps its metadata; its data directory is created with its parents."""

    def _new_transport(self) -> Any:
        urls = self.conf.broker_consumer
        if urls[0].scheme in ("kafka", "aiokafka"):
            return kafka.Transport(urls, self)
        return super()._new_transport()

    def _create_directories(self) -> None:
        """Data, app and table directories with their parents: Faust makes only the last level, and a fresh
        checkout has no `.cache/` until something creates it."""
        for path in (self.conf.datadir, self.conf.appdir, self.conf.tabledir):
            path.mkdir(parents=True, exist_ok=True)


def build_app(settings: Settings, *, app_id: str | None = None, web_enabled: bool = True, **overrides: Any) -> faust.App:
    """One Faust app for `settings`; `app_id` defaults to `<topic prefix>-worker` (the consumer group).

    Local table data (RocksDB) lives in `<data_dir>/<app_id>`: a store holds one deployment's changelog
    positions, so two deployments sharing a data dir must not share its databases.
    """
    app_id = app_id or f"{settings.topic_prefix}-worker"
    datadir = settings.path(settings.data_dir) / app_id
    datadir.mkdir(parents=True, exist_ok=True)  # Faust creates the last level only
    options: dict[str, Any] = dict(
        store=settings.store,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        topic_allow_declare=True,
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        # a topic declared just after the group's first assignment is picked up at the next metadata
        # refresh, which then rebalances: every 5 s, not Faust's default of 5 minutes
        consumer_metadata_max_age_ms=CONSUMER_METADATA_MAX_AGE_MS,
        stream_wait_empty=False,
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        producer_linger_ms=5,
        producer_max_batch_size=256 * 1024,
        stream_buffer_maxsize=8192,
        web_enabled=web_enabled,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        datadir=str(datadir),
        logging_config=None,
        loghandlers=[],
        **kafka_client_options(settings, "faust"),
    )
    options.update(overrides)
    return App(app_id, **options)
