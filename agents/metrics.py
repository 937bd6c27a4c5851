"""The worker's counters on Faust's web port: /counters/ (JSON) and /metrics (Prometheus text).

Collectors read the live `OutcomeCounters` and, with SOURCE=x, the X source's counters and spend
at each scrape, so /metrics and /counters/ show the same numbers and nothing is counted twice.
"""
from __future__ import annotations

from collections.abc import Iterator

from faust.web import Request, Response, View
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from agents import ingest
from agents.counters import OutcomeCounters
from agents.normalize_agent import counters
from agents.sources.x_stream import XSource
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


# The X stream's counters (agents/sources/x_stream.py StreamCounters): name, help.
X_STREAM_COUNTERS = {
    "tweets": "Stream messages published to the raw topic.",
    "keep_alives": "Keep-alive signals from X.",
    "errors": "Error messages from X, refused connections and crashes.",
    "disconnects": "Connections lost or closed by X.",
    "reconnects": "Connections after the first.",
    "rate_limited": "HTTP 429 answers to a connection.",
    "gaps": "Gaps in the stream filled from recent search (after a reconnect or a restart).",
    "gap_seconds": "Seconds of those gaps.",
    "gap_recovered": "Posts recent search returned for the gaps, published like stream messages.",
    "gap_seconds_lost": "Seconds of gaps beyond recent search's 7 days: their posts are lost.",
    "gaps_incomplete": "Gap fills cut short: X refused a page, the cap, or seconds beyond 7 days.",
    "usage_errors": "Failed reads of X's usage endpoint.",
    "cap_stops": "Times X_MONTHLY_POST_CAP stopped the stream.",
}


class XSourceCollector(Collector):
    """The X stream's counters, posts read this month per way in and rule tag, spend and cap."""

    def __init__(self, source: XSource):
        self.source = source

    def collect(self) -> Iterator[Metric]:
        report = self.source.report()
        for name, help_text in X_STREAM_COUNTERS.items():
            yield CounterMetricFamily(f"tweetlake_x_{name}", help_text, value=report["stream"][name])
        reads = GaugeMetricFamily("tweetlake_x_posts_read_month", "Posts read from X this month (UTC) by this "
                                  "worker, by way in (stream, gap_fill) and rule tag.", labels=["way", "tag"])
        for way, by_tag in report["posts_read"].items():
            for tag, count in sorted(by_tag.items()):
                if tag != "(total)":
                    reads.add_metric([way, tag], count)
        yield reads
        yield GaugeMetricFamily("tweetlake_x_posts_read_month_total", "Posts read this month: this worker's count "
                                "or X's usage endpoint's, whichever is higher.", value=report["posts_read_month"])
        yield GaugeMetricFamily("tweetlake_x_spend_month_dollars", "Estimated cost of this month's reads "
                                "(X_COST_PER_POST_READ each).", value=report["spend_month"])
        if report["monthly_post_cap"] is not None:
            yield GaugeMetricFamily("tweetlake_x_monthly_post_cap", "X_MONTHLY_POST_CAP.", value=report["monthly_post_cap"])
        yield GaugeMetricFamily("tweetlake_x_capped", "1 while the monthly cap keeps the stream stopped.",
                                value=report["stream"]["capped"])
        yield CounterMetricFamily("tweetlake_x_posts_over_cap", "Posts X sent after the cap was reached, before the "
                                  "stream closed: paid for, not published.", value=report["posts_over_cap"])
        if report["usage"]:
            yield GaugeMetricFamily("tweetlake_x_usage_project_posts", "The project's reads this month, per X's usage "
                                    "endpoint.", value=report["usage"]["project_usage"])
            if report["usage"]["project_cap"] is not None:
                yield GaugeMetricFamily("tweetlake_x_usage_project_cap", "The project's monthly cap, per X's usage "
                                        "endpoint.", value=report["usage"]["project_cap"])


def render(outcomes: OutcomeCounters, x_source: XSource | None = None) -> bytes:
    """The Prometheus text (version 0.0.4) of these counters."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OutcomeCollector(outcomes))
    if x_source is not None:
        registry.register(XSourceCollector(x_source))
    return generate_latest(registry)


@app.page("/counters/")
class CountersView(View):
    """read = accepted + filtered + duplicates + rejected, as seen by this worker since start; with
    SOURCE=x also `x`: the stream's counters and this month's reads, spend and cap."""

    async def get(self, request: Request) -> Response:
        answer = counters.as_dict()
        if isinstance(ingest.running_source, XSource):
            answer["x"] = ingest.running_source.report()
        return self.json(answer)


@app.page("/metrics")
class MetricsView(View):
    """What /counters/ shows, for Prometheus."""

    async def get(self, request: Request) -> Response:
        # In headers, not content_type=: aiohttp refuses a content type that names its charset.
        x_source = ingest.running_source if isinstance(ingest.running_source, XSource) else None
        return self.bytes(render(counters, x_source), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})
