#!/usr/bin/env bash
# Build Downlink's images, tagged with the git commit (TAG). Reuses Docker's layer cache; output
# goes to build/logs/ and is shown only when a build fails.
# Usage: tools/build-images.sh TAG [IMAGE...]   (default: airflow astro postgres mail archive-server docker-proxy redis)
case ${1:-} in -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p;}' "$0"; exit 0 ;; esac  # the header above is the usage
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TAG=${1:?usage: build-images.sh TAG [IMAGE...]}; shift
BASE_IMAGE=${DOWNLINK_BASE_IMAGE:-debian:bookworm-slim}
mkdir -p "$ROOT/build/logs"
cd "$ROOT"

build() {  # build NAME CONTEXT [extra docker build args]
  local name=$1 context=$2; shift 2
  local log="build/logs/image-$name.log" start=$SECONDS
  if ! docker build --build-arg BASE_IMAGE="$BASE_IMAGE" -t "downlink/$name:$TAG" \
        -f "images/$name/Dockerfile" "$@" "$context" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "build-images: downlink/$name:$TAG failed (full log: $log)" >&2
    return 1
  fi
  echo "built downlink/$name:$TAG in $((SECONDS - start)) s"
}

for image in "${@:-airflow astro postgres mail archive-server docker-proxy redis}"; do
  for name in $image; do
    case $name in
      airflow|mail|docker-proxy) build "$name" . ;;  # need the host-side caches in build/
      astro) build astro images/astro --build-arg DOWNLINK_VERSION="$TAG" ;;
      postgres|archive-server|redis) build "$name" "images/$name" ;;
      *) echo "build-images: unknown image '$name'" >&2; exit 2 ;;
    esac
  done
done
