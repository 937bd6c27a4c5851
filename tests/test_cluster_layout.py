"""`make cluster`'s layout: the ports it promises, no two processes on one port (the silver job's
metrics once shared 6068 with the second Faust worker), and a Procfile line for every process."""
from __future__ import annotations

import pytest

from engines.local_cluster import NODES, PIPELINE, ClusterLayout, procfile
from config.settings import Settings


def test_the_contract_ports_and_no_port_twice(tmp_path):
    layout = ClusterLayout(data_dir=str(tmp_path))
    ports = dict((what, port) for port, what in layout.ports())
    assert [ports[f"Kafka broker {i}"] for i in (1, 2, 3)] == [9092, 9093, 9094]
    assert (ports["NameNode RPC"], ports["NameNode HTTP"], ports["Spark master"], ports["Spark master UI"]) == (
        9000, 9870, 7077, 8080)
    assert ports["dashboard"] == 8050
    numbers = [port for port, _ in layout.ports()]
    assert len(numbers) == len(set(numbers))
    # The jobs' metrics ports are where the jobs look for them.
    settings = Settings(_env_file=None, **{k.lower(): v for k, v in layout.settings_env().items()
                                           if k.lower() in Settings.model_fields})
    assert [settings.spark_metrics_port_of(job) for job in ("bronze", "silver", "gold")] == [
        ports["bronze job's metrics"], ports["silver job's metrics"], ports["gold job's metrics"]]


def test_a_layout_that_gives_one_port_twice_is_refused(tmp_path):
    with pytest.raises(ValueError, match="port 6068 is given to both the Faust worker 2 and the silver job's metrics"):
        ClusterLayout(data_dir=str(tmp_path), faust_web_ports=(6066, 6068))


def test_a_free_port_layout_saved_loads_back(tmp_path):
    layout = ClusterLayout.on_free_ports(tmp_path / "data", topic_partitions=6, extra_settings={"SOURCE": "none"})
    layout.save()
    assert ClusterLayout.load(tmp_path / "data") == layout


def test_the_procfile_runs_every_node_and_pipeline_process(tmp_path):
    lines = procfile(ClusterLayout(data_dir=str(tmp_path))).splitlines()
    assert [line.split(":")[0] for line in lines] == [*NODES, *PIPELINE]
    worker_2 = next(line for line in lines if line.startswith("worker-2:"))
    assert "FAUST_WEB_PORT=6070" in worker_2 and "SOURCE=none" in worker_2


def test_free_ports_are_distinct_unused_and_below_the_ephemeral_range():
    import socket

    from engines.local_cluster import EPHEMERAL_RANGE, free_ports

    low = int(EPHEMERAL_RANGE.read_text().split()[0])
    with socket.socket() as taken:  # a port somebody listens on is never handed out
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = free_ports(15)
        assert len(set(ports)) == 15 and taken.getsockname()[1] not in ports
    assert all(20000 <= port < low for port in ports)
