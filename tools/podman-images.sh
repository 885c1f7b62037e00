#!/usr/bin/env bash
# Put Downlink's images (tag TAG) into the Podman engine that DOCKER_HOST names.
# For each image, the cheapest way that gives the same image:
#   1. Podman has it already: nothing to do;
#   2. Podman has the same image (same id) under another tag (an earlier commit with the same
#      image content): `podman tag`, no copy;
#   3. a Docker engine on this host has it (DOWNLINK_DOCKER_SOURCE, default its usual socket):
#      `docker save | podman load`. The layers are copied, not rebuilt: on a 2-core host this takes
#      seconds per image, a rebuild minutes (and a rebuild needs the base image and the host-side
#      caches in Podman too). The image id is kept, so step 2 finds it next time;
#   4. otherwise: built with Podman (tools/build-images.sh through the same DOCKER_HOST: the docker
#      client's build API, which Podman serves with Buildah).
# Usage: tools/podman-images.sh TAG [IMAGE...]   (default: the images of the LocalExecutor stack)
case ${1:-} in -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p;}' "$0"; exit 0 ;; esac  # the header above is the usage
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TAG=${1:?usage: podman-images.sh TAG [IMAGE...]}; shift
IMAGES=${*:-airflow astro postgres mail archive-server docker-proxy}
SOURCE=${DOWNLINK_DOCKER_SOURCE:-unix:///var/run/docker.sock}
: "${DOCKER_HOST:?DOCKER_HOST must name the Podman socket (tools/bootstrap.sh podman-host)}"
[ "$SOURCE" != "$DOCKER_HOST" ] || { echo "podman-images: the source engine is DOCKER_HOST itself" >&2; exit 2; }

say() { echo "podman-images: $*" >&2; }
target_id() { docker image inspect --format '{{.Id}}' "$1" 2>/dev/null; }
source_id() { docker -H "$SOURCE" image inspect --format '{{.Id}}' "$1" 2>/dev/null; }

to_build=()
for name in $IMAGES; do
  ref="downlink/$name:$TAG"
  target_id "$ref" >/dev/null && continue
  if id=$(source_id "$ref"); then
    # Podman serves an image by its id like Docker does; the same id means the same config and layers.
    if docker image inspect "$id" >/dev/null 2>&1; then
      docker tag "$id" "$ref"
      say "$ref: tagged (same image as one already in Podman)"
      continue
    fi
    start=$SECONDS
    docker -H "$SOURCE" save "$ref" | docker load -q >/dev/null
    target_id "$ref" >/dev/null || { say "$ref: docker save | load gave no image"; exit 1; }
    # Podman names a loaded downlink/x as localhost/downlink/x; the name Docker gives it too, so
    # that clients comparing RepoTags see the same name on both engines.
    docker tag "$ref" "$ref"
    say "$ref: copied from Docker in $((SECONDS - start)) s"
  else
    to_build+=("$name")
  fi
done
if [ ${#to_build[@]} -gt 0 ]; then
  say "building with Podman: ${to_build[*]} (no Docker engine has them)"
  "$ROOT/tools/build-images.sh" "$TAG" "${to_build[@]}"
fi
