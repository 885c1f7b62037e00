#!/usr/bin/env bash
# Make this machine able to build and run Downlink. Idempotent and quiet when all is there.
#   1. a Docker engine that answers (installs docker.io and starts dockerd when root on Debian)
#   2. Compose v2 as `docker compose` (Debian 13's static docker-compose .deb when missing)
#   3. the base image debian:bookworm-slim (pulled; made with debootstrap when no registry answers)
#   4. the Python wheelhouse for the Airflow image (host-side `pip download`; containers here
#      cannot reach PyPI over TLS, and it makes image builds offline and reproducible)
#      and the astro image's (images/astro/requirements.txt, the team's scripts' pip packages)
#   5. the maildev npm package for the mail image (same reason)
#   6. browser (not part of `all`; the browser e2e test's): Debian's chromium and chromium-driver
#   7. go (not part of `all`; docker-proxy's tests build their fake engine with it): golang-go
#   8. podman (not part of `all`): Debian's podman, and its Docker-compatible API on a socket of
#      its own (make test-podman; docs/install.md)
# The engine is Podman instead of Docker when DOWNLINK_ENGINE=podman, or when DOCKER_HOST is set
# (any Docker-compatible API the user chose), or when podman is installed and dockerd is not: then
# nothing here installs or starts Docker, and nothing asks for root unless something is missing.
# Usage: tools/bootstrap.sh [engine|compose|base|wheels|astro-wheels|maildev|browser|go|podman|all]   (default: all)
case ${1:-} in -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p;}' "$0"; exit 0 ;; esac  # the header above is the usage
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD="$ROOT/build"
BASE_IMAGE=${DOWNLINK_BASE_IMAGE:-debian:bookworm-slim}
COMPOSE_DEB_VERSION=2.26.1-4
MAILDEV_VERSION=2.2.1
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/downlink-dockerd.log}

say() { echo "bootstrap: $*" >&2; }
die() { echo "bootstrap: ERROR: $*" >&2; exit 1; }
is_root_debian() { [ "$(id -u)" = 0 ] && [ -f /etc/debian_version ]; }

# What is missing, in one message, with the commands that get it on RHEL/Fedora and Debian/Ubuntu.
# Used when this user cannot (or should not) install it: not root, or not Debian.
missing() {  # missing "what" "dnf packages" "apt packages" [note]
  {
    echo "bootstrap: ERROR: missing: $1"
    echo "  RHEL/Fedora:   sudo dnf install -y $2"
    echo "  Debian/Ubuntu: sudo apt-get install -y $3"
    [ -z "${4:-}" ] || echo "  $4"
    echo "  then run this again (docs/install.md)."
  } >&2
  exit 1
}

# --- Podman: its Docker-compatible API on a socket of its own ---------------------------------
PODMAN_CONF="$ROOT/tools/podman/containers.conf"
if [ "$(id -u)" = 0 ]; then
  PODMAN_SOCKET=${DOWNLINK_PODMAN_SOCKET:-/run/downlink-podman/podman.sock}
else
  PODMAN_SOCKET=${DOWNLINK_PODMAN_SOCKET:-${XDG_RUNTIME_DIR:-/run/user/$(id -u)}/downlink-podman/podman.sock}
fi
PODMAN_LOG=${DOWNLINK_PODMAN_LOG:-$BUILD/logs/podman-service.log}

# Podman is the engine when asked for, or when it is here and Docker's engine is not.
want_podman() {
  case ${DOWNLINK_ENGINE:-} in
    podman) return 0 ;;
    docker) return 1 ;;
  esac
  [ -z "${DOCKER_HOST:-}" ] || return 1  # a user-set API: used as it is (ensure_engine)
  command -v podman >/dev/null 2>&1 && ! command -v dockerd >/dev/null 2>&1
}

# What make and the tests export as DOCKER_HOST for the Podman engine (tools/bootstrap.sh podman-host).
podman_host() { echo "unix://$PODMAN_SOCKET"; }

podman_helper() {  # podman_helper NAME: one of Podman's helper binaries is installed
  local d; for d in /usr/local/libexec/podman /usr/local/lib/podman /usr/libexec/podman /usr/lib/podman; do
    [ -x "$d/$1" ] && return 0; done; return 1
}

# Without systemd, Podman runs no healthcheck (its timers are systemd's): tools/podman-healthchecks.sh
# does it, next to the service, as long as it runs.
ensure_podman_healthchecks() {
  case $(systemctl is-system-running 2>/dev/null) in running|degraded|starting) return 0 ;; esac
  local pidfile; pidfile="$(dirname "$PODMAN_SOCKET")/healthchecks.pid"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then return 0; fi
  say "no systemd: running the containers' healthchecks with tools/podman-healthchecks.sh"
  CONTAINERS_CONF=$PODMAN_CONF setsid "$ROOT/tools/podman-healthchecks.sh" >>"$PODMAN_LOG" 2>&1 </dev/null &
  echo $! >"$pidfile"
}

# With Docker's engine on the same host, the FORWARD policy is DROP and bridged frames pass through
# iptables (br_netfilter): netavark accepts its networks' routed traffic, but not the frames
# between two containers of one *internal* network (the stack's docker-api network), so the
# scheduler cannot reach the docker-proxy (connect timeout). Accept frames bridged within a Podman
# bridge (L2, one network), as a bridge without br_netfilter would; traffic routed between
# networks still meets netavark's isolation rules. Only rootful and only where the policy is DROP.
PODMAN_FORWARD_RULE=(-i "podman+" -m physdev --physdev-is-bridged -m comment --comment "downlink: frames within a Podman network (tools/bootstrap.sh)" -j ACCEPT)
ensure_podman_forwarding() {
  [ "$(id -u)" = 0 ] && command -v iptables >/dev/null 2>&1 || return 0
  iptables -S FORWARD 2>/dev/null | grep -q '^-P FORWARD DROP' || return 0
  iptables -C FORWARD "${PODMAN_FORWARD_RULE[@]}" 2>/dev/null && return 0
  say "Docker's FORWARD policy is DROP: accepting frames within each Podman network"
  iptables -I FORWARD 1 "${PODMAN_FORWARD_RULE[@]}" || die "could not add the iptables rule for Podman's bridges"
}

ensure_podman() {
  # netavark and aardvark-dns: name resolution between a stack's services (containers.conf);
  # catatonit: the init of containers created with init: true (Docker's docker-init).
  if ! command -v podman >/dev/null 2>&1 || ! podman_helper netavark || ! podman_helper aardvark-dns \
      || ! podman_helper catatonit; then
    is_root_debian || missing "podman (the container engine)" "podman" "podman netavark aardvark-dns catatonit uidmap slirp4netns" \
      "rootless also needs /etc/subuid and /etc/subgid ranges for this user (usermod --add-subuids/--add-subgids)"
    apt_install podman netavark aardvark-dns catatonit uidmap slirp4netns fuse-overlayfs
  fi
  command -v docker >/dev/null 2>&1 || missing "the docker client (talks to Podman's Docker-compatible API; no Docker engine is needed)" \
    "docker-ce-cli docker-compose-plugin   # Docker's RHEL repository: client only" "docker.io  # or docker-ce-cli docker-compose-plugin"
  ensure_podman_forwarding
  if DOCKER_HOST=$(podman_host) docker version >/dev/null 2>&1; then ensure_podman_healthchecks; return 0; fi
  mkdir -p "$(dirname "$PODMAN_SOCKET")" "$(dirname "$PODMAN_LOG")"
  rm -f "$PODMAN_SOCKET"
  say "starting Podman's Docker-compatible API on $PODMAN_SOCKET (log: $PODMAN_LOG)"
  # CONTAINERS_CONF: tools/podman/containers.conf (rlimits this kind of host allows; see there).
  CONTAINERS_CONF=$PODMAN_CONF setsid podman system service --time=0 "unix://$PODMAN_SOCKET" \
    >>"$PODMAN_LOG" 2>&1 </dev/null &
  for _ in $(seq 1 60); do
    if DOCKER_HOST=$(podman_host) docker version >/dev/null 2>&1; then
      # Podman makes it 0600; the docker-proxy (uid 10001) reaches it through the socket's group
      # (make-env.sh: DOCKER_GID), as with Docker's socket. rw for the group, as Podman's systemd unit does.
      chmod 0660 "$PODMAN_SOCKET"
      ensure_podman_healthchecks
      return 0
    fi
    sleep 1
  done
  die "Podman's API did not answer on $PODMAN_SOCKET within 60 s; see $PODMAN_LOG"
}

apt_install() {
  say "installing $* with apt"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes NEEDRESTART_SUSPEND=1 \
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 || die "apt-get install $* failed"
}

# The Debian mirror this machine is configured with (never hard-coded in the repository).
debian_mirror() {
  local m
  m=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
  [ -n "$m" ] || m=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | grep -v security | awk '{for(i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; exit}}' | head -n1 || true)
  [ -n "$m" ] || die "no Debian mirror found in /etc/apt/sources.list*"
  echo "$m"
}

ensure_engine() {
  if want_podman; then
    ensure_podman
    export DOCKER_HOST; DOCKER_HOST=$(podman_host)
    return 0
  fi
  docker info >/dev/null 2>&1 && return 0
  # A DOCKER_HOST the user set is their engine: we never install or start another one.
  # The Podman socket this script manages: (re)started like dockerd is.
  if [ "${DOCKER_HOST:-}" = "$(podman_host)" ]; then ensure_podman; return 0; fi
  [ -z "${DOCKER_HOST:-}" ] || die "DOCKER_HOST=$DOCKER_HOST does not answer ('docker info' failed): start that engine (for Podman: 'systemctl --user start podman.socket' or 'podman system service'), or unset DOCKER_HOST."
  if ! command -v dockerd >/dev/null 2>&1; then
    is_root_debian || missing "a container engine (Podman or Docker) and the docker client" \
      "podman docker-ce-cli docker-compose-plugin   # then: DOWNLINK_ENGINE=podman make up" "docker.io docker-compose-v2   # or podman, then DOWNLINK_ENGINE=podman"
    apt_install docker.io
  fi
  if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    say "starting docker with systemd"
    systemctl start docker || true
  elif [ "$(id -u)" = 0 ]; then
    say "starting dockerd in the background (log: $DOCKERD_LOG)"
    setsid dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
  else
    die "the Docker engine is installed but not answering, and we are not root: start it (e.g. 'sudo systemctl start docker') or add yourself to the 'docker' group."
  fi
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && return 0; sleep 1; done
  die "dockerd did not answer within 60 s; see $DOCKERD_LOG"
}

ensure_compose() {
  docker compose version >/dev/null 2>&1 && return 0
  is_root_debian || missing "'docker compose' (Compose v2)" "docker-compose-plugin   # Docker's RHEL repository" "docker-compose-v2   # Ubuntu; Debian 12: docker-compose-plugin from Docker's repository"
  say "installing Compose v2 (Debian 13 docker-compose $COMPOSE_DEB_VERSION, a static binary)"
  # A throw-away apt state that knows only trixie: the machine's own apt configuration is untouched.
  local tmp; tmp=$(mktemp -d)
  mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(debian_mirror) trixie main" >"$tmp/trixie.list"
  local opts=(-o "Dir::Etc::SourceList=$tmp/trixie.list" -o "Dir::Etc::SourceParts=$tmp/none"
              -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
  apt-get "${opts[@]}" update -qq
  (cd "$tmp" && apt-get "${opts[@]}" download -qq "docker-compose=$COMPOSE_DEB_VERSION")
  dpkg -i "$tmp"/docker-compose_*.deb >/dev/null
  rm -rf "$tmp"
  docker compose version >/dev/null 2>&1 || die "Compose was installed but 'docker compose' still fails"
}

ensure_base_image() {
  docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 && return 0
  if timeout 60 docker pull -q "$BASE_IMAGE" >/dev/null 2>&1; then return 0; fi
  is_root_debian || die "cannot pull $BASE_IMAGE and cannot build it here (needs root on Debian). Load it with 'docker load' and run this again."
  command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
  say "no registry answers: building $BASE_IMAGE locally with debootstrap (about 30 s)"
  local dir; dir=$(mktemp -d)
  debootstrap --variant=minbase bookworm "$dir" "$(debian_mirror)" >"$dir.log" 2>&1 \
    || { tail -n 20 "$dir.log" >&2; die "debootstrap failed"; }
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  # The tarball's "." is the image's "/": mktemp's 0700 would lock every non-root user out where the
  # engine keeps it (rootless Podman's vfs storage: "stat /usr/bin/id: permission denied"; Docker's
  # overlay2 happens to show 0755).
  chmod 0755 "$dir"
  tar -C "$dir" -c . | docker import - "$BASE_IMAGE" >/dev/null
  rm -rf "$dir" "$dir.log"
}

ensure_wheels() {
  local dest="$BUILD/wheelhouse" stamp sum
  sum=$(sha256sum "$ROOT/requirements.txt" | cut -d' ' -f1)
  stamp="$dest/.requirements.sha256"
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ] && return 0
  say "filling the wheelhouse from requirements.txt"
  mkdir -p "$dest"
  pip_download "$dest" "$ROOT/requirements.txt" "$BUILD/pip-download.log"
  echo "$sum" >"$stamp"
}

# pip_download DEST REQUIREMENTS LOG: the wheels of REQUIREMENTS (pinned, no resolving) into DEST.
# The images run Debian 12's CPython 3.11 on x86_64, whatever the host's Python is.
pip_download() {
  local plats=() v
  for v in 17 24 27 28 31 34 35 36; do plats+=(--platform "manylinux_2_${v}_x86_64"); done
  python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --implementation cp --python-version 3.11 --abi cp311 "${plats[@]}" \
    -d "$1" -r "$2" >"$3" 2>&1 \
    || { grep -v 'is ignored' "$3" | tail -n 20 >&2; die "pip download of ${2#"$ROOT"/} failed (full log: $3)"; }
}

# The astro image's wheelhouse (images/astro/requirements.txt: the team's scripts' pip packages),
# downloaded here for the same reasons; tools/build-images.sh puts it into the astro build context.
ensure_astro_wheels() {
  local req="$ROOT/images/astro/requirements.txt" dest="$BUILD/astro-wheelhouse" stamp sum
  sum=$(sha256sum "$req" | cut -d' ' -f1)
  stamp="$dest/.requirements.sha256"
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ] && return 0
  rm -rf "$dest"; mkdir -p "$dest"
  if sed -e 's/#.*//' "$req" | grep -q '[^[:space:]]'; then
    say "filling the astro wheelhouse from images/astro/requirements.txt"
    pip_download "$dest" "$req" "$BUILD/pip-download-astro.log"
  fi
  echo "$sum" >"$stamp"
}

ensure_maildev() {
  local dest="$BUILD/maildev"
  [ -f "$dest/node_modules/maildev/package.json" ] && grep -q "\"version\": \"$MAILDEV_VERSION\"" "$dest/node_modules/maildev/package.json" && return 0
  command -v npm >/dev/null 2>&1 || { is_root_debian && apt_install npm || die "npm is needed to fetch maildev"; }
  say "fetching maildev $MAILDEV_VERSION for the mail image"
  rm -rf "$dest"; mkdir -p "$dest"
  (cd "$dest" && npm install --silent --no-audit --no-fund --omit=dev "maildev@$MAILDEV_VERSION" >/dev/null 2>&1) \
    || die "npm install maildev@$MAILDEV_VERSION failed"
}

# Debian's chromium and its chromedriver, for tests/e2e/test_ui_browser.py (a browser of a test
# tool's own download cannot be fetched here, and apt's stays in step with its driver).
ensure_browser() {
  command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 && return 0
  is_root_debian || die "the browser test needs chromium and chromedriver (Debian: apt-get install chromium chromium-driver)"
  apt_install chromium chromium-driver
  command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || die "chromium or chromedriver still missing after apt-get install"
}

# Debian's Go (1.19 on bookworm): docker-proxy's unit tests decode create bodies with Go's own
# encoding/json and serve HTTP with net/http, as the engine does (tests/unit/docker_proxy/fake_engine).
ensure_go() {
  command -v go >/dev/null 2>&1 && return 0
  is_root_debian || die "docker-proxy's tests need Go (Debian: apt-get install golang-go)"
  apt_install golang-go
  command -v go >/dev/null 2>&1 || die "go still missing after apt-get install golang-go"
}

case "${1:-all}" in
  engine) ensure_engine ;;
  compose) ensure_engine; ensure_compose ;;
  base) ensure_engine; ensure_base_image ;;
  wheels) ensure_wheels; ensure_astro_wheels ;;
  astro-wheels) ensure_astro_wheels ;;
  maildev) ensure_maildev ;;
  browser) ensure_browser ;;
  go) ensure_go ;;
  podman) DOWNLINK_ENGINE=podman ensure_engine ;;
  podman-host) podman_host ;;
  engine-kind) if want_podman; then echo podman; else echo docker; fi ;;  # for the Makefile
  all) ensure_engine; ensure_compose; ensure_base_image; ensure_wheels; ensure_astro_wheels; ensure_maildev ;;
  *) die "unknown target '$1' (engine|compose|base|wheels|astro-wheels|maildev|browser|go|podman|podman-host|engine-kind|all)" ;;
esac
