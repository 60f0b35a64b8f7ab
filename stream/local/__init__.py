"""The local stack's shipped files: the Kafka pom and Log4j config, the local Prometheus's config
and rules, read from the installed package (never from a checkout)."""
