#!/usr/bin/env bash
# Gather into one directory what scripts/gpu/check.sh needs on a GPU node that has Python with
# torch but neither Rust nor torchattacks, small enough to travel with the checkout:
#
#   DIR/agent.gz, DIR/coordinator.gz   this checkout's release binaries, stripped and gzipped
#   DIR/torchattacks-3.5.1-*.whl       from the project venv's pip (its cache, else PyPI)
#   DIR/data/                          CIFAR-10's test batch, model_pool/ and distilled/
#
#   scripts/gpu/bundle.sh [--data DIR] [OUT_DIR]      (default OUT_DIR: .dev/gpu, ignored by git)
#
# then, on the node, from the checkout:
#
#   scripts/gpu/check.sh --device cuda:0 --bundle .dev/gpu --data .dev/gpu/data --out table.md
#
# --data is where the shared data lives (default: $BEARD_DATA_DIR, else ../shared/data). The
# binaries are built first when missing or older than the sources (make build).
set -euo pipefail
cd "$(dirname "$0")/../.."
data=${BEARD_DATA_DIR:-../shared/data} out=.dev/gpu
while (($#)); do
    case $1 in
        --data) data=$2; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        -*) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
        *) out=$1; shift ;;
    esac
done
for needed in cifar-10-batches-bin/test_batch.bin model_pool distilled; do
    [ -e "$data/$needed" ] || { echo "no $data/$needed: give --data (see --help)" >&2; exit 2; }
done
make --no-print-directory build
# The shared data is read-only: an earlier bundle's copy is made writable to be replaced.
[ -d "$out/data" ] && chmod -R u+w "$out/data" && rm -rf "$out/data"
mkdir -p "$out/data/cifar-10-batches-bin"
for name in agent coordinator; do
    strip -o "$out/$name" "target/release/$name"
    gzip -9 -f "$out/$name"
done
rm -f "$out"/torchattacks-*.whl
.venv/bin/python -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --dest "$out" "torchattacks==$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("torchattacks"))')"
cp "$data"/cifar-10-batches-bin/{test_batch.bin,batches.meta.txt} "$out/data/cifar-10-batches-bin/"
cp -r "$data/model_pool" "$data/distilled" "$out/data/"
chmod -R u+w "$out/data"
du -sh "$out"
echo "on the node: scripts/gpu/check.sh --device cuda:0 --bundle $out --data $out/data --out table.md"
