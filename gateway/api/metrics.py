"""Prometheus metrics of one gateway, in their own registry (so several apps in one process never collide).

Completions are counted by endpoint, model (the name the client used: base, adapter, later
``@kb``) and outcome, with latency and time-to-first-token histograms and prompt/completion
token counters; requests refused for overload are counted by reason. Names follow Prometheus
conventions (``lorag_*``, ``_total``, ``_seconds``). This module knows nothing about HTTP.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "lorag_requests", "Completion requests by endpoint, model and outcome.", ["endpoint", "model", "outcome"],
            registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "lorag_request_duration_seconds", "Time from request to last token.", ["endpoint", "model"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.first_token = Histogram(
            "lorag_time_to_first_token_seconds", "Time from request to first generated text.", ["endpoint", "model"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.prompt_tokens = Counter("lorag_prompt_tokens", "Prompt tokens read, by model.", ["model"], registry=r)
        self.completion_tokens = Counter(
            "lorag_completion_tokens", "Completion tokens generated, by model.", ["model"], registry=r
        )
        self.in_flight = Gauge("lorag_requests_in_flight", "Completion requests being served now.", registry=r)
        self.rejected = Counter(
            "lorag_requests_rejected", "Requests refused before serving, by reason.", ["reason"], registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
