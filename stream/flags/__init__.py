"""The flag lifecycle: who becomes inactive or never active, published exactly once.

``machine`` is the pure state machine, ``definitions`` brings stored states to new thresholds,
``release`` commits a partition's transitions with ``state_codec`` and ``records``, ``publisher``
sends the outbox to Kafka, and ``cycle`` schedules all of it for the worker.
"""
