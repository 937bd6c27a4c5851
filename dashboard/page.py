"""The page: its layout and the callbacks that fill it from the views at every refresh.

Elements the end-to-end test reads have stable ids: relevance-switch (its data-relevant says which
counts the chart and totals show, once they do), range, topics-chart, topic-totals (rows with
data-topic), trending-hashtags/-entities/-domains, topic-filter, tweets (items with data-topics),
health, worker-status, counter-<name>, zones (rows with data-zone), quarantine-rows, lag-worker,
lag-bronze-sink, processes (rows with data-process), x-stream (SOURCE=x: x-posts-read, x-spend,
x-stream-state, x-gaps).
"""
from __future__ import annotations

import functools

import plotly.graph_objects as go
from dash import Dash, Input, Output, dcc, html

from datalake.errors import LakeError
from datalake.display import human_size
from dashboard.health import COUNTER_NAMES
from dashboard.x_panel import x_stream_panel
from dashboard.views import ALL_TOPICS, RANGES, TOPIC_COUNTS, Views

RANGE_LABELS = {"hour": "Last hour", "day": "Last day", "week": "Last week", "all": "All"}
COUNTED = {"all": "All tweets", "relevant": "Relevant only"}  # the switch's values: which posts the counts count
TREND_COLUMNS = {"hashtags": ("hashtag",), "entities": ("entity", "label"), "domains": ("domain",)}


def layout(views: Views, refresh_seconds: float) -> html.Div:
    return html.Div(className="page", children=[
        html.Header([html.H1("tweetlake"), html.Span(id="updated-at", className="muted"), relevance_switch()]),
        dcc.Interval(id="refresh", interval=int(refresh_seconds * 1000), n_intervals=0),
        html.Section(id="topics-section", children=[
            html.H2("Tweets per topic"),
            dcc.RadioItems(id="range", options=[{"label": RANGE_LABELS[r], "value": r} for r in RANGES],
                           value="day", inline=True, className="choices"),
            html.P(id="range-note", className="muted"),
            dcc.Graph(id="topics-chart", config={"displayModeBar": False, "responsive": True},
                      style={"height": "320px"}),
            html.Table(id="topic-totals", className="numbers"),
        ]),
        html.Section(id="trending-section", children=[
            html.H2("Trending"),
            html.P(id="trending-note", className="muted"),
            html.Div(className="trends", children=[
                html.Div([html.H3(name.capitalize()), html.Table(id=f"trending-{name}", className="numbers")])
                for name in TREND_COLUMNS
            ]),
        ]),
        html.Section(id="tweets-section", children=[
            html.H2("Newest relevant tweets"),
            dcc.RadioItems(id="topic-filter", options=topic_options(views), value=ALL_TOPICS, inline=True,
                           className="choices"),
            html.Ol(id="tweets", className="tweets"),
        ]),
        html.Section(id="health-section", children=[html.H2("Pipeline health"), html.Div(id="health")]),
    ])


def relevance_switch() -> html.Div:
    """Every tweet or the relevant ones only, for the chart, the totals and the trends."""
    return html.Div(id="relevance-switch", className="switch", **{"data-relevant": "0"}, children=[
        html.Span("Counting", className="muted"),
        dcc.RadioItems(id="relevance", options=[{"label": label, "value": value} for value, label in COUNTED.items()],
                       value="all", inline=True, className="choices"),
    ])


def topic_options(views: Views) -> list[dict]:
    return [{"label": "All topics", "value": ALL_TOPICS}] + [
        {"label": views.topic_names.get(tag, tag), "value": tag} for tag in views.topic_tags()]


def lake_errors_shown(outputs: int):
    """A lake that cannot be read right now (WebHDFS down, a file replaced mid-read) is shown on
    the page instead of failing the callback; the next refresh tries again."""
    def decorate(callback):
        @functools.wraps(callback)
        def guarded(*args):
            try:
                return callback(*args)
            except (LakeError, OSError) as error:
                message = html.P(f"lake not readable: {error}", className="problem")
                return message if outputs == 1 else (message,) + (None,) * (outputs - 1)
        return guarded
    return decorate


def register_callbacks(app: Dash, views: Views) -> None:
    @app.callback(Output("topics-chart", "figure"), Output("topic-totals", "children"), Output("range-note", "children"),
                  Output("relevance-switch", "data-relevant"),
                  Input("refresh", "n_intervals"), Input("range", "value"), Input("relevance", "value"))
    def show_topics(_n, range_name, counted):
        relevant = counted == "relevant"
        try:
            topics = views.topics(range_name, relevant=relevant)
        except (LakeError, OSError) as error:
            return go.Figure(), None, f"lake not readable: {error}", str(int(relevant))
        return topics_figure(topics), topic_totals(topics), range_note(topics), str(int(relevant))

    @app.callback(*(Output(f"trending-{name}", "children") for name in TREND_COLUMNS),
                  Output("trending-note", "children"), Input("refresh", "n_intervals"), Input("relevance", "value"))
    @lake_errors_shown(outputs=len(TREND_COLUMNS) + 1)
    def show_trending(_n, counted):
        trends = views.trending(relevant=counted == "relevant")
        note = (f"{'Relevant tweets' if trends['relevant'] else 'Tweets'} in the newest hour of gold "
                f"({trends['last_hour']}) against the hourly mean of the {trends['window_hours']} hours before it; "
                "new: none in those hours." if trends["last_hour"] else "No gold data yet.")
        return (*(trend_table(trends[name], TREND_COLUMNS[name]) for name in TREND_COLUMNS), note)

    @app.callback(Output("topic-filter", "options"), Input("refresh", "n_intervals"))
    @lake_errors_shown(outputs=1)
    def show_topic_options(_n):
        return topic_options(views)

    @app.callback(Output("tweets", "children"), Input("refresh", "n_intervals"), Input("topic-filter", "value"))
    @lake_errors_shown(outputs=1)
    def show_tweets(_n, topic):
        tweets = views.tweets(topic)["tweets"]
        if not tweets:
            return [html.Li("No relevant tweet in silver yet.", className="muted")]
        return [tweet_item(tweet, views.topic_names) for tweet in tweets]

    @app.callback(Output("health", "children"), Output("updated-at", "children"), Input("refresh", "n_intervals"))
    @lake_errors_shown(outputs=2)
    def show_health(_n):
        state = views.health()
        return health_panel(state), f"updated {state['checked_at']}"


def topics_figure(topics: dict) -> go.Figure:
    figure = go.Figure([
        go.Scatter(x=topics["hour_starts"], y=topic["tweets_per_hour"], name=topic["name"], mode="lines+markers")
        for topic in topics["topics"]
    ])
    figure.update_layout(margin={"l": 40, "r": 10, "t": 10, "b": 30}, legend={"orientation": "h", "y": -0.15},
                         yaxis_title=f"{'relevant tweets' if topics['relevant'] else 'tweets'} per hour",
                         template="plotly_white", uirevision=topics["range"])
    return figure


def range_note(topics: dict) -> str:
    if topics["newest_hour"] is None:
        return "No gold data yet."
    counted = ("relevant tweets only, which gold does not break down into originals, retweets, quotes and replies"
               if topics["relevant"] else "every tweet")
    return f"Hours {topics['first_hour']} to {topics['newest_hour']} (the newest hour in gold), UTC; {counted}."


def topic_totals(topics: dict) -> list:
    head = html.Tr([html.Th("Topic")] + [html.Th(count.capitalize()) for count in TOPIC_COUNTS])
    rows = [html.Tr([html.Td(topic["name"], className="topic")]
                    + [html.Td("–" if topic[count] is None else f"{topic[count]:,}", className=count)
                       for count in TOPIC_COUNTS],
                    **{"data-topic": topic["topic"]})
            for topic in topics["topics"]]
    return [html.Thead(head), html.Tbody(rows)]


def trend_table(trends: list[dict], columns: tuple[str, ...]) -> list:
    if not trends:
        return [html.Tbody(html.Tr(html.Td("Nothing in the newest hour.", className="muted")))]
    head = html.Tr([html.Th(c.capitalize(), className=c) for c in columns]
                   + [html.Th("Last hour", className="tweets"), html.Th("Mean/h before", className="prior"),
                      html.Th("Growth", className="growth")])
    rows = [html.Tr([html.Td(trend[c], className=c) for c in columns]
                    + [html.Td(f"{trend['tweets']:,}", className="tweets"),
                       html.Td(f"{trend['prior_hourly_mean']:.2f}", className="prior"),
                       html.Td("new" if trend["new"] else f"{trend['growth']:.2f}x", className="growth")])
            for trend in trends]
    return [html.Thead(head), html.Tbody(rows)]


def tweet_item(tweet: dict, topic_names: dict[str, str]) -> html.Li:
    author = tweet["author_username"] or tweet["author_id"] or "unknown"
    return html.Li(className="tweet", **{"data-topics": " ".join(tweet["topics"]), "data-tweet-id": tweet["tweet_id"]},
                   children=[
        html.P(tweet["text"], className="text"),
        html.Div(className="meta", children=[
            html.Span(f"@{author}", className="author"), " · ",
            html.Time(tweet["created_at"], dateTime=tweet["created_at"], className="time"), " · ",
            html.Span(", ".join(topic_names.get(t, t) for t in tweet["topics"]), className="topics"), " · ",
            html.A("open on X", href=tweet["url"], target="_blank", rel="noopener noreferrer"),
        ]),
    ])


def health_panel(state: dict) -> list:
    worker = state["worker"]
    if worker["reachable"]:
        status = html.P(f"worker at {worker['url']}", id="worker-status", className="ok")
    else:
        status = html.P(worker["error"], id="worker-status", className="problem")
    counters = html.Div(className="stats", children=[
        html.Div([html.Span(name, className="label"),
                  html.Span(f"{worker[name]:,}" if worker["reachable"] else "–", id=f"counter-{name}",
                            className="value")])
        for name in COUNTER_NAMES
    ])
    zones = html.Table(id="zones", className="numbers", children=[
        html.Thead(html.Tr([html.Th(h) for h in ("Zone", "Rows", "Files", "Size", "Newest partition", "Newest row time")])),
        html.Tbody([
            html.Tr([html.Td(z["zone"]), html.Td(f"{z['rows']:,}", className="rows"), html.Td(f"{z['files']:,}"),
                     html.Td(human_size(z["bytes"])), html.Td(z["newest_partition"] or "–"),
                     html.Td(f"{z['newest_time']} ({z['newest_time_column']})" if z["newest_time"] else "–")],
                    **{"data-zone": z["zone"]})
            for z in state["zones"]
        ]),
    ])
    quarantine = html.P(["Quarantine: ", html.Span(f"{state['quarantine']['rows']:,}", id="quarantine-rows"),
                         f" rows in {state['quarantine']['files']:,} files"])
    lag = state["consumer_lag"]
    lags = html.Div(className="stats", children=[
        lag_item("lag-worker", "worker lag (raw topic)", lag["worker"]),
        lag_item("lag-bronze-sink", "bronze sink lag (typed topic)", lag["bronze_sink"]),
    ])
    return [status, counters, *x_stream_panel(worker), zones, quarantine, html.H3("Consumer lag"), lags,
            html.H3("Processes"), process_table(state["supervised"])]


def process_table(supervised: dict) -> html.Div | html.Table:
    """State and restarts of each supervised process: a restart loop shows as a growing count."""
    if not supervised["available"]:
        return html.P(supervised["error"], id="processes", className="problem")
    return html.Table(id="processes", className="numbers", children=[
        html.Thead(html.Tr([html.Th(h) for h in ("Process", "State", "Restarts", "Since")])),
        html.Tbody([
            html.Tr([html.Td(p["process"]),
                     html.Td(p["state"].lower(), className="ok" if p["state"] == "RUNNING" else "problem"),
                     html.Td(f"{p['restarts']:,}", className="restarts"), html.Td(p["since"] or "–")],
                    **{"data-process": p["process"]})
            for p in supervised["processes"]
        ]),
    ])


def lag_item(element_id: str, label: str, lag: dict) -> html.Div:
    value = f"{lag['lag']:,} messages" if lag["available"] else lag["error"]
    return html.Div([html.Span(label, className="label"),
                     html.Span(value, id=element_id, className="value" if lag["available"] else "value problem")])
