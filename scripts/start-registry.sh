#!/usr/bin/env bash
# A local registry on 127.0.0.1:5000 (Debian's docker-registry) holding the
# images the pull tests need; there is no other registry here. Idempotent.
#   127.0.0.1:5000/light-runner/busybox:pull-test   small image
#   127.0.0.1:5000/light-runner/big:pull-test       ~300 MB, so a pull takes a while
set -euo pipefail
REG=127.0.0.1:5000
ROOT=/tmp/light-runner-registry

if ! command -v docker-registry >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null
fi

if ! curl -fsS "http://$REG/v2/" >/dev/null 2>&1; then
  mkdir -p "$ROOT/data"
  cat >"$ROOT/config.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: $ROOT/data
  delete:
    enabled: true
http:
  addr: $REG
YAML
  # Debian may have started its own instance on :5000 with auth; ours binds 127.0.0.1.
  pkill -f '/etc/docker/registry/config.yml' 2>/dev/null || true
  nohup docker-registry serve "$ROOT/config.yml" >/tmp/light-runner-registry.log 2>&1 &
  for _ in $(seq 1 50); do
    curl -fsS "http://$REG/v2/" >/dev/null 2>&1 && break
    sleep 0.2
  done
fi
curl -fsS "http://$REG/v2/" >/dev/null || { echo "registry did not start; see /tmp/light-runner-registry.log" >&2; exit 1; }

push() { # local-image remote-name
  if ! curl -fsS "http://$REG/v2/$2/manifests/pull-test" -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' >/dev/null 2>&1; then
    docker tag "$1" "$REG/$2:pull-test"
    docker push "$REG/$2:pull-test" >/dev/null
  fi
  # Tests expect the image to be absent locally: they pull it.
  docker rmi "$REG/$2:pull-test" >/dev/null 2>&1 || true
}

push light-runner-busybox:latest light-runner/busybox

# The big image lives only in the registry, so every test pull downloads it.
if ! curl -fsS "http://$REG/v2/light-runner/big/manifests/pull-test" -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  mkdir -p "$tmp/bin" "$tmp/data"
  cp "$(command -v busybox)" "$tmp/bin/busybox"
  for a in sh sleep echo cat true; do ln -sf busybox "$tmp/bin/$a"; done
  head -c 300M /dev/urandom >"$tmp/data/blob"
  tar -C "$tmp" -c . | docker import -c 'ENV PATH=/bin' - "$REG/light-runner/big:pull-test" >/dev/null
  rm -rf "$tmp"
  docker push "$REG/light-runner/big:pull-test" >/dev/null
fi
docker rmi "$REG/light-runner/big:pull-test" >/dev/null 2>&1 || true
echo "registry ready on $REG"
