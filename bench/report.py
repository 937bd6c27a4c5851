"""The results as a Markdown report: machine, load, one row per stage with the ratios to the seed
pattern and to the raw broker, latency, memory, CPU and the goals."""
from __future__ import annotations


def _num(value, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def _ratio(ours, reference) -> str:
    if not ours or not reference:
        return "n/a"
    ratio = ours / reference
    return f"{ratio:.1f}x" if ratio >= 1 else f"{ratio:.2g}x"


def render(results: dict) -> str:
    machine = results.get("machine", {})
    code = results.get("code", {})
    load = results.get("load", {})
    stages = results.get("stages", {})
    seed = results.get("seed_pattern_tweets_per_s")
    raw = results.get("raw_broker_msgs_per_s")
    pool = results.get("tweets", {})
    lines = [
        f"Run of {results.get('timestamp', '?')} ({'quick' if results.get('quick') else 'full'}, "
        f"{_num(load.get('wall_s'), 0)} s): {machine.get('nproc')} cores ({machine.get('cpu_model')}), "
        f"{machine.get('ram_gb')} GB RAM, Python {machine.get('python')}, {machine.get('java')}; "
        f"code at {code.get('commit')}"
        + (f" with uncommitted changes in {len(code['uncommitted_changes'])} file(s)." if code.get("uncommitted_changes") else "."),
        "",
        f"Machine load during the run: {load.get('machine_busy_cores_avg')} cores busy on average, of which "
        f"{load.get('other_processes_cores_avg')} by processes other than this run "
        f"(load average {load.get('loadavg_start')} at start); "
        + ("otherwise idle." if (load.get("other_processes_cores_avg") or 0) < 0.15 and not load.get("foreign_processes_at_start")
           else f"NOT idle: {len(load.get('foreign_processes_at_start', []))} pipeline-like processes of others at start."),
        "",
        f"Tweets: {pool.get('kind')} SyntheticTweets (seed {pool.get('seed')}, shares {pool.get('shares')}), "
        f"{_num(pool.get('mean_bytes'))} bytes on average; the agent accepts {pool.get('accepted_share')} of them.",
        "",
        "| stage | measured | rate | ours / seed pattern | ours / raw broker |",
        "|---|---|---:|---:|---:|",
        f"| 1 raw broker (ceiling) | confluent-kafka produce -> consume, msgs/s | {_num(raw)} | {_ratio(raw, seed)} | 1.0x |",
        f"| 2 seed pattern (baseline) | kafka-python `send().get()` per tweet, tweets/s | {_num(seed)} | 1.0x | {_ratio(seed, raw)} |",
    ]
    rows = (
        ("3 ingestion", "publish_raw through the Faust app, tweets/s", results.get("ingest_tweets_per_s")),
        ("3b synthetic source", "SyntheticSource at unlimited rate (generation included), tweets/s",
         stages.get("ingest", {}).get("ingest_synthetic_source_tweets_per_s")),
        ("4 filter/normalize", "one worker, raw -> typed, tweets/s", results.get("normalize_tweets_per_s")),
        ("5 Spark sink, warm", "typed -> bronze, warm micro-batch, rows/s", results.get("sink_rows_per_s")),
        ("5b Spark sink, whole run", "spark-submit --available-now incl. JVM start-up, rows/s",
         stages.get("sink", {}).get("sink_rows_per_s_incl_startup")),
        ("6 end to end", "raw in -> readable in bronze, sustained tweets/s", results.get("e2e_tweets_per_s")),
        ("6b end to end, burst", "a burst of tweets / (last row readable - first publish), tweets/s",
         stages.get("e2e", {}).get("e2e_burst_drain_tweets_per_s")),
    )
    for stage, what, value in rows:
        lines.append(f"| {stage} | {what} | {_num(value)} | {_ratio(value, seed)} | {_ratio(value, raw)} |")

    e2e = stages.get("e2e", {})
    sink = stages.get("sink", {})
    normalize = stages.get("normalize", {})
    cpu = results.get("cpu_s_per_1000", {})
    lines += [
        "",
        f"End-to-end latency, publish -> readable in bronze, at {_num(e2e.get('offered_tweets_per_s'))} tweets/s offered "
        f"(trigger {e2e.get('trigger_seconds')} s, {_num(e2e.get('latency_rows'))} rows): "
        f"p50 {results.get('e2e_latency_p50_s')} s, p95 {results.get('e2e_latency_p95_s')} s, "
        f"p99 {results.get('e2e_latency_p99_s')} s, max {e2e.get('e2e_latency_max_s')} s.",
        "",
        f"Start-up: worker's first batch {normalize.get('worker_first_batch_after_s')} s after launch; "
        f"spark-submit to its first micro-batch {sink.get('sink_startup_s')} s, first batch "
        f"{sink.get('sink_first_batch_s')} s (Python workers start); streaming pipeline cold start to first "
        f"bronze rows {e2e.get('cold_start_to_first_rows_s')} s.",
        "",
        "Spark sink micro-batches (rows, seconds): "
        + ", ".join(f"{batch['rows']:,} in {batch['seconds']} s" for batch in sink.get("batches", []))
        + (f"; a warm batch costs ~{sink['sink_batch_fixed_s']} s whatever its size, plus "
           f"{_num(sink['sink_marginal_rows_per_s'])} rows/s beyond that." if "sink_batch_fixed_s" in sink else "."),
        "",
        f"Peak RSS: Faust worker {results.get('worker_rss_mb')} MB (after "
        f"{_num((results.get('worker_rss_after_tweets') or {}).get('e2e'))} tweets in the end-to-end stage, "
        f"{_num((results.get('worker_rss_after_tweets') or {}).get('normalize'))} in the normalize stage; it grows "
        f"~{results.get('worker_rss_growth_kb_per_tweet')} KB per tweet read); Spark driver (JVM + Python driver) "
        f"{results.get('spark_driver_rss_mb')} MB, whole spark-submit tree with Python workers "
        f"{results.get('spark_tree_rss_mb')} MB (RSS summed, shared pages counted per process).",
        "",
        "CPU seconds per 1,000 tweets: " + "; ".join(f"{name} {value}" for name, value in _flat(cpu)),
        "",
    ]
    soak = results.get("soak")
    if soak:
        lines += [
            f"Soak: {soak['minutes']:g} minutes at {_num(soak['tweets_per_s'])} tweets/s: Faust worker peak "
            f"{soak['worker_rss_peak_mb']} MB, {soak['worker_rss_second_half_slope_mb_per_min']} MB/min over the "
            f"second half; Spark driver peak {soak['spark_driver_rss_peak_mb']} MB, "
            f"{soak['spark_driver_rss_second_half_slope_mb_per_min']} MB/min.",
            "",
        ]
    cluster = stages.get("cluster")
    if cluster and "error" not in cluster:
        versus = cluster.get("vs_single") or {}
        lines += [
            f"On `make cluster`'s deployment ({cluster['kafka_brokers']} brokers, replication 3, "
            f"{cluster['datanodes']} DataNodes, Spark standalone, {cluster['faust_workers']} Faust workers over "
            f"{cluster['topic_partitions']} partitions; nodes up in {cluster['nodes_up_s']} s): "
            f"{_num(cluster['e2e_tweets_per_s'])} tweets/s sustained ({versus.get('tweets_per_s')}x the single "
            f"deployment's); latency at {_num(cluster['offered_tweets_per_s'])} tweets/s offered p50 "
            f"{cluster['e2e_latency_p50_s']} s, p99 {cluster['e2e_latency_p99_s']} s ({versus.get('latency_p99')}x); "
            f"CPU per 1,000 burst tweets {versus.get('cpu_per_1000_burst')}x; peak RSS summed over its processes "
            f"{_num(cluster['peak_rss_mb_sum'])} MB.",
            "",
        ]
    dashboard = stages.get("dashboard")
    if dashboard and "error" not in dashboard:
        lines += [
            f"Gold and dashboard over {_num(dashboard['silver_rows'])} silver rows ({dashboard['silver_files']} files, "
            f"{dashboard['silver_hours']} hours): the gold job's rebuild {dashboard.get('gold_rebuild_batch_s')} s "
            f"(its micro-batch; {dashboard.get('gold_rebuild_s')} s with the JVM's start-up), one hour recomputed "
            f"{dashboard.get('gold_one_hour_batch_s')} s in a fresh JVM; page load {dashboard['page_load_cold_s']} s "
            f"cold, {dashboard['page_load_warm_reload_s']} s on a reload, {dashboard['page_load_new_browser_warm_server_s']} s "
            f"in a new browser on the warm server; endpoint medians (ms): "
            + ", ".join(f"{name} {times['p50']}" for name, times in dashboard["endpoint_ms"].items())
            + f"; the dashboard's peak RSS {dashboard['dashboard_peak_rss_mb']} MB.",
            "",
        ]
    forget = stages.get("forget")
    if forget and "error" not in forget:
        runs = {name: forget[f"forget_{name}"] for name in ("spread", "newest_hour")}
        lines += [
            f"Forget 1,000 tweet ids from a lake of {_num(forget['bronze_rows'])} tweets ({forget['bronze_files']} bronze "
            "files, silver and gold built by the refine job in "
            f"{forget['build_silver_gold_s']} s): ids spread over the week {runs['spread']['wall_s']} s "
            f"({runs['spread']['files_rewritten']} files rewritten over every table), ids of the newest hour "
            f"{runs['newest_hour']['wall_s']} s ({runs['newest_hour']['files_rewritten']} files), each with the refine "
            f"job that rewrites silver and recomputes gold; `lake verify` {forget['verify_s']} s "
            f"({'OK' if forget['verify_ok'] else 'FAILED'}).",
            "",
        ]
    lines += [
        "| goal | target | measured | met |",
        "|---|---|---|---|",
    ]
    for goal in results.get("goals", []):
        lines.append(f"| {goal['goal']} | {goal['target']} | {goal['measured']} | {'yes' if goal['met'] else 'no'} |")
    errors = {name: stage["error"] for name, stage in stages.items() if "error" in stage}
    if errors:
        lines += ["", "Stages that failed: " + "; ".join(f"{name}: {error[:200]}" for name, error in errors.items())]
    return "\n".join(lines) + "\n"


def _flat(values: dict, prefix: str = "") -> list[tuple[str, object]]:
    flat = []
    for name, value in values.items():
        if isinstance(value, dict):
            flat += _flat(value, f"{prefix}{name}.")
        else:
            flat.append((f"{prefix}{name}", value))
    return flat
