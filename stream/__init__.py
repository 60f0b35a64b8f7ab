"""ESN Pulse: a real-time engagement engine for enterprise social networks."""

__version__ = "0.1.0"
