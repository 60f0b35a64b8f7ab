"""What /ready says, from the ingest's view of its dependencies and progress."""

from __future__ import annotations

from aiokafka.errors import KafkaConnectionError

from stream.readiness import Readiness


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestReadiness:
    def test_ready_when_assigned_with_everything_answering(self) -> None:
        """No reasons: ready."""
        readiness = Readiness(120, Clock())
        readiness.assigned = True
        assert [] == readiness.reasons(redis_answers=True, records_waiting=0)

    def test_each_dependency_is_named(self) -> None:
        """Kafka, Redis and the assignment each give their own reason."""
        readiness = Readiness(120, Clock())
        readiness.kafka_ok = False
        expected = ["Kafka unreachable", "Redis unreachable", "no partitions assigned yet"]
        assert expected == readiness.reasons(redis_answers=False, records_waiting=0)

    def test_a_stall_counts_only_while_records_wait(self) -> None:
        """Idle is not stalled; no progress for longer than the threshold with a backlog is."""
        clock = Clock()
        readiness = Readiness(120, clock)
        readiness.assigned = True
        clock.now += 121
        assert [] == readiness.reasons(redis_answers=True, records_waiting=0)
        assert ["no batch applied for 121 s while records wait"] == readiness.reasons(True, 5)
        readiness.progressed()
        assert [] == readiness.reasons(True, 5)

    async def test_the_kafka_probe_turns_false_and_back(self) -> None:
        """A failing metadata call marks Kafka unreachable until one succeeds."""
        readiness = Readiness(120, Clock())

        async def failing() -> None:
            raise KafkaConnectionError("down")

        async def answering() -> None:
            return None

        assert (False, False) == (await readiness.probe_kafka(failing), readiness.kafka_ok)
        assert True is await readiness.probe_kafka(answering)
