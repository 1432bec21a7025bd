"""Prometheus metrics of one worker, in a registry of its own so several apps can share a process."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class Metrics:
    """Counters and histograms the dashboard, `/metrics` and the demo read."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.events_in = Counter("epiflow_events_in", "Input records read, per input topic", ["topic"], registry=r)
        self.forwarded = Counter("epiflow_person_events_forwarded", "Person events forwarded, per input topic", ["topic"], registry=r)
        self.forwarded_inputs = Counter("epiflow_inputs_forwarded", "Input records forwarded (1..n person events each)", ["topic"], registry=r)
        self.dead_letters = Counter("epiflow_dead_letters", "Inputs dead-lettered, per reason", ["topic", "reason"], registry=r)
        self.verdicts = Counter("epiflow_verdicts", "Triage messages sent, per action", ["action"], registry=r)
        self.latency = Histogram(
            "epiflow_ingest_to_triage_seconds", "Input record timestamp to triage message sent", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.sweep_seconds = Histogram("epiflow_sweep_seconds", "Retroactive sweep duration", registry=r)
        self.sweep_flagged = Counter("epiflow_sweep_people", "People found by retroactive sweeps", registry=r)
        self.sweep_places = Gauge("epiflow_sweep_places", "Places held for sweeps on this worker", registry=r)
        self.rules_version = Gauge("epiflow_rules_version_info", "Active rules version (label)", ["version"], registry=r)
        self.control_refused = Counter("epiflow_control_refused", "Control documents refused, per kind and reason", ["kind", "reason"], registry=r)
        self.regions_active = Gauge("epiflow_risk_regions", "Risk regions known to this worker", registry=r)
        self.cases_opened = Counter("epiflow_cases_opened", "Cases opened, per action", ["action"], registry=r)
        self.cases_overdue = Counter("epiflow_cases_overdue", "Cases escalated for not being accepted in time", registry=r)
        self.case_events = Counter("epiflow_case_events", "Case events applied, per kind", ["kind"], registry=r)
        self.contact_search_seconds = Histogram("epiflow_contact_search_seconds", "One trace request searched against the places held here", registry=r)
        self.contacts_found = Counter("epiflow_contacts_found", "Contacts found by this worker, per degree", ["degree"], registry=r)
        self.loop_messages = Counter("epiflow_loop_messages", "Messages after triage (test_overdue, released, stage, request), per kind", ["kind"], registry=r)
        self.consumer_lag = Gauge("epiflow_consumer_lag", "Records behind the log end, per topic", ["topic"], registry=r)

    def exposition(self) -> bytes:
        """Text exposition format for `/metrics`."""
        return generate_latest(self.registry)

    def set_rules_version(self, version: str) -> None:
        self.rules_version.clear()
        self.rules_version.labels(version=version).set(1)
