#!/usr/bin/env bash
# Stage the Docker build contexts of both images from what `make build` produced (no registry,
# no compiler in the image): OUT/coordinator holds the coordinator binary; OUT/agent holds the
# agent binary and the libtorch it links — the venv's torch/lib and, for CUDA builds, the NVIDIA
# libraries next to it (nvidia/), in the site-packages layout libtorch's own rpaths expect.
#
#   deploy/docker/stage.sh [OUT]        (default target/docker; `make images` runs this)
#
# Files are hard-linked where possible (same file system), else copied.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$(realpath -m "${1:-$root/target/docker}")"
bin="${BEARD_BIN_DIR:-$root/target/release}"
venv="${VENV:-$root/.venv}"

for binary in coordinator agent; do
    [[ -x "$bin/$binary" ]] || { echo "stage: $bin/$binary is missing: run \`make build\` first" >&2; exit 1; }
done
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
[[ -d "$site/torch/lib" ]] || { echo "stage: no libtorch in $site/torch/lib (is $venv the build venv?)" >&2; exit 1; }

link_or_copy() { cp -al "$1" "$2" 2>/dev/null || cp -a "$1" "$2"; }

rm -rf "$out/coordinator" "$out/agent"
# Empty directories the images create, owned by their unprivileged user (no RUN, so the base
# image needs no shell).
mkdir -p "$out/coordinator/empty" "$out/agent/empty" "$out/agent/site-packages/torch"
link_or_copy "$bin/coordinator" "$out/coordinator/coordinator"
link_or_copy "$bin/agent" "$out/agent/agent"
link_or_copy "$site/torch/lib" "$out/agent/site-packages/torch/lib"
if [[ -d "$site/nvidia" ]]; then
    link_or_copy "$site/nvidia" "$out/agent/site-packages/nvidia"
fi
echo "staged $out/coordinator ($(du -sh "$out/coordinator" | cut -f1)) and $out/agent ($(du -sh "$out/agent" | cut -f1))"
