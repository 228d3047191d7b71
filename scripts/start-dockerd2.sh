#!/usr/bin/env bash
# A second, private Docker daemon for the endpoint tests
# (__test__/endpoint-context.test.mjs): a run must land on the daemon a
# Docker context names, not on the main one.
#
# It has its own everything and touches nothing of the main daemon: its own
# --data-root, --exec-root (so its own supervised containerd), --pidfile,
# socket, cgroup parent and containerd namespaces; an empty --config-file (so
# /etc/docker/daemon.json is not read); no iptables rules, no IP forwarding
# or masquerading (the tests run with network 'none'). Its default bridge is
# an interface of its own (lrd2br0, on a /24 no route uses), made here:
# `--bridge=none` would make it delete the host's docker0, which the main
# daemon uses.
# The busybox test image is copied in from the main daemon (docker save |
# docker load; scripts/build-test-images.sh builds it there).
#
#   bash scripts/start-dockerd2.sh          start it when it does not answer (idempotent)
#   bash scripts/start-dockerd2.sh stop     stop it (its data is kept for the next start)
#   bash scripts/start-dockerd2.sh purge    stop it, delete its data and its bridge
set -euo pipefail

DIR=${LIGHT_RUNNER_DOCKERD2_DIR:-/tmp/light-runner-dockerd2}
SOCK="$DIR/docker2.sock"
PIDFILE="$DIR/docker2.pid"
IMAGE=light-runner-busybox:latest
BRIDGE=lrd2br0
d2() { docker -H "unix://$SOCK" "$@"; }

running_pid() {
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

stop() {
  if pid=$(running_pid); then
    kill "$pid"
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
  fi
  rm -f "$PIDFILE"
}

case "${1:-start}" in
  stop) stop; echo "dockerd2 stopped"; exit 0 ;;
  purge)
    stop
    ip link del "$BRIDGE" 2>/dev/null || true
    # Mounts of a daemon that was killed may remain under its roots.
    { grep -o " $DIR/[^ ]*" /proc/mounts || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    rm -rf "$DIR"
    echo "dockerd2 purged"
    exit 0 ;;
  start) ;;
  *) echo "usage: $0 [start|stop|purge]" >&2; exit 2 ;;
esac

command -v dockerd >/dev/null || { echo "no dockerd (scripts/start-docker.sh installs docker.io)" >&2; exit 1; }

if ! timeout 5 docker -H "unix://$SOCK" info >/dev/null 2>&1; then
  stop
  mkdir -p "$DIR/data" "$DIR/exec"
  chmod 700 "$DIR"
  echo '{}' >"$DIR/daemon.json"
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    routes=$(ip -4 route)
    for _ in $(seq 1 200); do
      net="10.$((200 + RANDOM % 50)).$((RANDOM % 256))"
      case "$routes" in *"$net."*) continue ;; esac
      break
    done
    ip link add name "$BRIDGE" type bridge
    ip addr add "$net.1/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
  fi
  # Its own session: it outlives the shell that started it.
  setsid nohup dockerd \
    --config-file "$DIR/daemon.json" \
    --data-root "$DIR/data" \
    --exec-root "$DIR/exec" \
    --pidfile "$PIDFILE" \
    -H "unix://$SOCK" \
    --containerd-namespace light-runner-d2 \
    --containerd-plugins-namespace light-runner-d2-plugins \
    --cgroup-parent light-runner-d2 \
    --bridge="$BRIDGE" --iptables=false --ip-forward=false --ip-masq=false \
    >"$DIR/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 60); do
    timeout 5 docker -H "unix://$SOCK" info >/dev/null 2>&1 && break
    sleep 1
  done
fi
timeout 10 docker -H "unix://$SOCK" info >/dev/null || { echo "dockerd2 did not come up; see $DIR/dockerd.log" >&2; exit 1; }

if ! d2 image inspect "$IMAGE" >/dev/null 2>&1; then
  docker image inspect "$IMAGE" >/dev/null 2>&1 || { echo "$IMAGE missing on the main daemon: run scripts/build-test-images.sh" >&2; exit 1; }
  docker save "$IMAGE" | d2 load >/dev/null
fi
echo "dockerd2 ready: DOCKER_HOST=unix://$SOCK ($(d2 version --format '{{.Server.Version}}'), pid $(cat "$PIDFILE"))"
