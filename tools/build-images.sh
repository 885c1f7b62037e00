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

# The astro build context is images/astro: its wheelhouse/ gets the host-side wheels of
# images/astro/requirements.txt (tools/bootstrap.sh astro-wheels), hard-linked where possible.
astro_wheelhouse() {
  local src="$ROOT/build/astro-wheelhouse" dest="$ROOT/images/astro/wheelhouse"
  find "$dest" -maxdepth 1 -type f -name '*.whl' -delete
  if sed -e 's/#.*//' images/astro/requirements.txt | grep -q '[^[:space:]]'; then
    compgen -G "$src/*.whl" >/dev/null \
      || { echo "build-images: images/astro/requirements.txt lists packages but $src has no wheels: run tools/bootstrap.sh astro-wheels" >&2; return 1; }
    cp -l "$src"/*.whl "$dest"/ 2>/dev/null || cp "$src"/*.whl "$dest"/
  fi
}

for image in "${@:-airflow astro postgres mail archive-server docker-proxy redis}"; do
  for name in $image; do
    case $name in
      airflow|mail|docker-proxy) build "$name" . ;;  # need the host-side caches in build/
      astro) astro_wheelhouse; build astro images/astro --build-arg DOWNLINK_VERSION="$TAG" ;;
      postgres|archive-server|redis) build "$name" "images/$name" ;;
      *) echo "build-images: unknown image '$name'" >&2; exit 2 ;;
    esac
  done
done
