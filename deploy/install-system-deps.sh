#!/usr/bin/env bash
# Install what ESN Pulse needs from Debian when it is missing: Redis (state), Prometheus and promtool
# (rules, tests, make run), Chromium (the report's rendering test), and Java 17 and Maven for the
# local Kafka broker.
set -euo pipefail

missing=()
command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v prometheus >/dev/null || [ -x /usr/bin/prometheus ] || missing+=(prometheus)
command -v chromium >/dev/null || [ -x /usr/bin/chromium ] || missing+=(chromium)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "Missing: ${missing[*]}. Install them, e.g.: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "Installing ${missing[*]} from Debian..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
