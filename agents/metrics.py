"""The worker's counters in the Prometheus text format, at /metrics on Faust's web port.

A collector reads the live `OutcomeCounters` at each scrape, so /metrics and /counters/ show the
same numbers and nothing is counted twice.
"""
from __future__ import annotations

from collections.abc import Iterator

from faust.web import Request, Response, View
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from agents.counters import OutcomeCounters
from agents.normalize import counters
from app.faust_app import app

PREFIX = "tweetlake_worker_tweets"


class OutcomeCollector(Collector):
    """read = accepted + filtered + duplicates + rejected, and the reasons behind filtered and rejected."""

    def __init__(self, outcomes: OutcomeCounters):
        self.outcomes = outcomes

    def collect(self) -> Iterator[Metric]:
        outcomes = self.outcomes
        yield CounterMetricFamily(f"{PREFIX}_read", "Raw messages the filter/normalize agent decided.",
                                  value=outcomes.read)
        yield CounterMetricFamily(f"{PREFIX}_accepted", "Tweets sent to the typed topic.", value=outcomes.accepted)
        yield CounterMetricFamily(f"{PREFIX}_duplicates", "Tweet ids seen again within the dedup window.",
                                  value=outcomes.duplicates)
        for outcome, by_reason, help_text in (
            ("filtered", outcomes.filtered_by_reason,
             "Tweets dropped by the topic or language filter, and deletions sent to the compliance topic"),
            ("rejected", outcomes.rejected_by_reason, "Messages sent to the dead-letter topic"),
        ):
            # The total is its own series: a sum over reasons is empty before the first one.
            yield CounterMetricFamily(f"{PREFIX}_{outcome}", f"{help_text}.", value=sum(by_reason.values()))
            reasons = CounterMetricFamily(f"{PREFIX}_{outcome}_by_reason", f"{help_text}, by reason.",
                                          labels=["reason"])
            for reason, count in sorted(by_reason.items()):
                reasons.add_metric([reason], count)
            yield reasons


def render(outcomes: OutcomeCounters) -> bytes:
    """The Prometheus text (version 0.0.4) of these counters."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OutcomeCollector(outcomes))
    return generate_latest(registry)


@app.page("/metrics")
class MetricsView(View):
    """What /counters/ shows, for Prometheus."""

    async def get(self, request: Request) -> Response:
        # In headers, not content_type=: aiohttp refuses a content type that names its charset.
        return self.bytes(render(counters), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})
