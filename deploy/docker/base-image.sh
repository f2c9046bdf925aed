#!/usr/bin/env bash
# Build the base image of both images without a registry: a minimal Debian bookworm root file
# system made by debootstrap (--variant=minbase: glibc, libstdc++, a shell, apt) and
# `docker import`ed as IMAGE (default beard-base:bookworm-minbase). Cached: nothing is done when
# the image already exists (`docker rmi` it to rebuild). Needs root and debootstrap.
#
#   deploy/docker/base-image.sh [IMAGE]
#   make images BASE_IMAGE=beard-base:bookworm-minbase
#
# DEBIAN_MIRROR overrides the mirror (default http://deb.debian.org/debian).
set -euo pipefail
image="${1:-beard-base:bookworm-minbase}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

command -v docker >/dev/null || { echo "base-image: docker is missing" >&2; exit 1; }
if docker image inspect "$image" >/dev/null 2>&1; then
    echo "base image $image exists (cached)"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "base-image: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || { echo "base-image: debootstrap needs root" >&2; exit 1; }

rootfs="$(mktemp -d /tmp/beard-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT
start=$SECONDS
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
    tail -n 30 "$rootfs.log" >&2
    echo "base-image: debootstrap failed (full log: $rootfs.log)" >&2
    exit 1
}
rm -f "$rootfs.log"
# Package lists and caches only matter to apt inside a running system; the image needs neither.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/*
tar --numeric-owner -C "$rootfs" -c . |
    docker import --change 'CMD ["/bin/bash"]' --message "debootstrap --variant=minbase bookworm $mirror" - "$image" >/dev/null
echo "base image $image built from debootstrap in $((SECONDS - start)) s ($(docker image inspect -f '{{.Size}}' "$image" | numfmt --to=iec))"
