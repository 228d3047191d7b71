#!/usr/bin/env bash
# A private sshd on 127.0.0.1 for the ssh:// tests (__test__/endpoint-ssh.test.mjs).
# Idempotent: installs openssh-server when sshd is missing, makes (once) a
# throwaway host key, a client key pair, authorized_keys, known_hosts and an
# ssh client config in $LIGHT_RUNNER_SSHD_DIR, and starts sshd when none of
# ours answers. sshd keeps its defaults for MaxStartups (10) and MaxSessions
# (10): the tests show the package lives with them.
#
# The remote user is root (the docker CLI is installed with docker.io and
# root reaches /var/run/docker.sock). ssh finds ~ from the passwd entry, not
# $HOME, so nothing here touches ~/.ssh: clients use the config this script
# writes, through LIGHT_RUNNER_SSH_ARGS="-F $DIR/ssh_config".
#
#   bash scripts/start-sshd.sh          start (or check) it; prints the URL
#   bash scripts/start-sshd.sh stop     stop it (keys and config are kept)
set -euo pipefail

DIR=${LIGHT_RUNNER_SSHD_DIR:-/tmp/light-runner-sshd}
PORT=${LIGHT_RUNNER_SSHD_PORT:-22022}

running_pid() {
  local pid
  pid=$(cat "$DIR/sshd.pid" 2>/dev/null) || return 1
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

if [ "${1:-}" = stop ]; then
  if pid=$(running_pid); then
    # The listener and the connections it forked (by their parent's pid).
    # Frozen first: a connection it accepts between the list and the kill
    # would otherwise survive (and keep the daemon reachable).
    kill -STOP "$pid" 2>/dev/null || true
    kill $(pgrep -P "$pid") "$pid" 2>/dev/null || true
    kill -CONT "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$DIR/sshd.pid"
  echo "sshd stopped"
  exit 0
fi

if [ ! -x /usr/sbin/sshd ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null
fi
command -v ssh >/dev/null || { echo "no ssh client" >&2; exit 1; }
command -v docker >/dev/null || { echo "no docker CLI for 'docker system dial-stdio'" >&2; exit 1; }

mkdir -p "$DIR" /run/sshd
chmod 700 "$DIR"
[ -f "$DIR/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C light-runner-test-host -f "$DIR/host_ed25519"
[ -f "$DIR/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C light-runner-test-client -f "$DIR/id_ed25519"
cp "$DIR/id_ed25519.pub" "$DIR/authorized_keys"
echo "[127.0.0.1]:$PORT $(cut -d' ' -f1,2 "$DIR/host_ed25519.pub")" >"$DIR/known_hosts"

cat >"$DIR/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $PORT
HostKey $DIR/host_ed25519
PidFile $DIR/sshd.pid
AuthorizedKeysFile $DIR/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
EOF

cat >"$DIR/ssh_config" <<EOF
Host 127.0.0.1
  IdentityFile $DIR/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $DIR/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  LogLevel ERROR
EOF

probe() {
  timeout 10 ssh -F "$DIR/ssh_config" -o BatchMode=yes -p "$PORT" root@127.0.0.1 docker version --format '{{.Server.Version}}' 2>/dev/null
}

if ! running_pid >/dev/null || ! probe >/dev/null; then
  if pid=$(running_pid); then kill "$pid"; sleep 0.5; fi
  /usr/sbin/sshd -t -f "$DIR/sshd_config"
  /usr/sbin/sshd -f "$DIR/sshd_config" -E "$DIR/sshd.log"
  for _ in $(seq 1 50); do probe >/dev/null && break; sleep 0.2; done
fi
version=$(probe) || { echo "sshd did not come up; see $DIR/sshd.log" >&2; exit 1; }
echo "sshd ready: DOCKER_HOST=ssh://root@127.0.0.1:$PORT LIGHT_RUNNER_SSH_ARGS='-F $DIR/ssh_config' (remote daemon $version)"
