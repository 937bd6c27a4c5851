"""The live X stream in the health panel (SOURCE=x only): posts read and spend this month against
X_MONTHLY_POST_CAP, whether the cap has stopped the stream, and the gaps filled from recent search.
Everything comes from the worker's /counters/ key `x` (agents/sources/x_stream.py report)."""
from __future__ import annotations

from dash import html


def x_stream_panel(worker: dict) -> list:
    x = worker.get("x") if worker.get("reachable") else None
    if not x:
        return []
    stream, cap, read = x["stream"], x["monthly_post_cap"], x["posts_read_month"]
    against_cap = f" of {cap:,} ({read / cap:.0%})" if cap else " (no X_MONTHLY_POST_CAP)"
    capped = bool(stream["capped"])
    items = [
        ("x-posts-read", f"posts read in {x['month']}", f"{read:,}{against_cap}"),
        ("x-spend", "spend this month", f"${x['spend_month']:,.2f} at ${x['cost_per_post_read']:g} a post"),
        ("x-stream-state", "stream", "stopped at the monthly cap" if capped else "reading"),
        ("x-gaps", "gaps filled", f"{stream['gaps']:,}: {stream['gap_recovered']:,} posts recovered, "
                                 f"{stream['gap_seconds_lost']:,.0f} s beyond search's 7 days"),
    ]
    if x["usage"]:
        usage_cap = x["usage"]["project_cap"]
        items.append(("x-usage", "X's count (usage endpoint)",
                      f"{x['usage']['project_usage']:,}" + (f" of {usage_cap:,}" if usage_cap else "")))
    return [html.H3("X stream"), html.Div(id="x-stream", className="stats", children=[
        html.Div([html.Span(label, className="label"),
                  html.Span(value, id=element_id, className="value problem" if capped and element_id == "x-stream-state"
                            else "value")])
        for element_id, label, value in items
    ])]
