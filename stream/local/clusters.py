"""``python -m stream.local.clusters up|down|status``: the local Redis Cluster and three-broker
Kafka, for trying ESN Pulse against clusters (docs/operations/cluster.md).

Both keep their data under ESN_STATE_DIR (``redis-cluster/``, ``kafka-cluster/``; the Kafka jars
are the single stack's, ``kafka/``). ``up`` prints the two settings that point ESN Pulse at them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from stream.cli_errors import ExitCode, fail, one_line
from stream.local.kafka_cluster import LocalKafkaCluster
from stream.local.processes import StackError
from stream.local.redis_cluster import LocalRedisCluster
from stream.settings import get_settings


class _Clusters:
    def __init__(self, state_dir: Path, redis_port: int, kafka_port: int) -> None:
        self.redis = LocalRedisCluster(state_dir / "redis-cluster", redis_port)
        self.kafka = LocalKafkaCluster(
            state_dir / "kafka-cluster",
            kafka_port,
            get_settings().kafka_version,
            jars_home=state_dir / "kafka",
        )

    def settings_lines(self) -> list[str]:
        return [f"ESN_REDIS_URL={self.redis.url}", f"ESN_KAFKA_BOOTSTRAP={self.kafka.bootstrap}"]


@click.group()
@click.option(
    "--redis-port", default=7000, show_default=True, help="First of the 6 Redis node ports."
)
@click.option(
    "--kafka-port",
    default=9192,
    show_default=True,
    help="First broker port: brokers at +0, +2, +4, each controller one above.",
)
@click.pass_context
def main(context: click.Context, redis_port: int, kafka_port: int) -> None:
    """The local Redis Cluster (3 masters, 3 replicas) and three-broker Kafka."""
    state_dir = get_settings().state_dir.resolve()
    context.obj = _Clusters(state_dir, redis_port, kafka_port)


@main.command()
@click.pass_obj
def up(clusters: _Clusters) -> None:
    """Start both (their data kept from an earlier up) and wait until they are whole."""
    try:
        redis_seconds = clusters.redis.up(timeout=120)
        kafka_seconds = clusters.kafka.up(timeout=300)
    except StackError as exc:
        _fail(f"the clusters did not come up: {exc}; fix that and run it again")
    click.echo(f"redis cluster up in {redis_seconds:.1f} s, kafka cluster in {kafka_seconds:.1f} s")
    for line in clusters.settings_lines():
        click.echo(f"export {line}")


@main.command()
@click.pass_obj
def down(clusters: _Clusters) -> None:
    """Stop both (their data stays for the next up)."""
    redis = clusters.redis.down()
    kafka = clusters.kafka.down()
    click.echo(f"stopped: redis nodes {redis or 'none'}, kafka nodes {kafka or 'none'}")


@main.command()
@click.pass_obj
def status(clusters: _Clusters) -> None:
    """Each node and whether it runs; exit 2 when one does not."""
    whole = True
    for port in clusters.redis.ports:
        pid = clusters.redis.pid(port)
        whole = whole and pid is not None
        click.echo(f"redis 127.0.0.1:{port:<6} {'up' if pid else 'DOWN':5} pid {pid or '-'}")
    for node_id in clusters.kafka.node_ids:
        pid = clusters.kafka.pid(node_id)
        whole = whole and pid is not None
        port = clusters.kafka.broker_port(node_id)
        click.echo(f"kafka 127.0.0.1:{port:<6} {'up' if pid else 'DOWN':5} pid {pid or '-'}")
    if not whole:
        sys.exit(ExitCode.UNREACHABLE)


def _fail(message: str) -> NoReturn:
    click.echo(one_line(f"clusters: {message}"), err=True)
    sys.exit(ExitCode.UNREACHABLE)


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # a bad setting, a tool missing: one line, never a traceback
        fail(exc)
