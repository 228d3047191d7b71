#!/usr/bin/env bash
# Installs docker.io + busybox-static when missing and starts dockerd when none
# answers. Idempotent: safe to call from CI and from a developer shell.
set -euo pipefail

if ! command -v dockerd >/dev/null 2>&1 || ! command -v busybox >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io busybox-static >/dev/null
fi

if ! timeout 5 docker info >/dev/null 2>&1; then
  if ! pgrep -x dockerd >/dev/null 2>&1; then
    rm -f /var/run/docker.pid   # stale pid file from a killed daemon blocks start
    nohup dockerd >/tmp/dockerd.log 2>&1 &
  fi
  for _ in $(seq 1 60); do
    timeout 5 docker info >/dev/null 2>&1 && break
    sleep 1
  done
fi
timeout 10 docker info >/dev/null || { echo "dockerd did not come up; see /tmp/dockerd.log" >&2; exit 1; }
echo "dockerd ready: $(docker version --format '{{.Server.Version}}')"
