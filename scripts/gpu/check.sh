#!/usr/bin/env bash
# Check a GPU node (or, with --device cpu, this machine as a smoke test) in one run: the device is
# used, clean accuracies equal the CPU's, images/s against torchattacks and a plain PyTorch
# training loop, DeepFool within 0.4 points of the CPU's, AutoAttack's seconds on weak IPC-1 models,
# a small sweep through coordinator + agent; one markdown table (scripts/gpu/check.py).
#
#   scripts/gpu/check.sh [--device cuda:0] [--bundle DIR] [--data DIR] [--quick] [--out FILE]
#
# --bundle DIR holds what a node without Rust or torchattacks needs: `agent` and `coordinator`
# (or `agent.gz` and `coordinator.gz`, stripped release binaries) and a torchattacks 3.5.1 wheel.
# Without it the script uses target/release and the project venv. --data DIR holds
# cifar-10-batches-bin/, model_pool/ and distilled/ (default: $BEARD_DATA_DIR, else
# ../shared/data). The binaries find libtorch through the Python's torch/lib. --quick keeps every
# size small (CI).
set -euo pipefail
cd "$(dirname "$0")/../.."
device=cuda:0 bundle= data=${BEARD_DATA_DIR:-../shared/data} quick= out=
while (($#)); do
    case $1 in
        --device) device=$2; shift 2 ;;
        --bundle) bundle=$2; shift 2 ;;
        --data) data=$2; shift 2 ;;
        --quick) quick=1; shift ;;
        --out) out=$2; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
python=${BEARD_PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bin=target/release
if [ -n "$bundle" ]; then
    bin=$work/bin
    mkdir -p "$bin"
    for name in agent coordinator; do
        if [ -f "$bundle/$name.gz" ]; then gunzip -c "$bundle/$name.gz" > "$bin/$name"; else cp "$bundle/$name" "$bin/$name"; fi
        chmod +x "$bin/$name"
    done
    if ! "$python" -c 'import torchattacks' 2>/dev/null; then
        "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$work/site" "$bundle"/torchattacks-*.whl
        export PYTHONPATH=$work/site${PYTHONPATH:+:$PYTHONPATH}
    fi
fi
for name in agent coordinator; do
    [ -x "$bin/$name" ] || { echo "no $bin/$name: run \`make build\` or give --bundle" >&2; exit 2; }
done
torch_lib=$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH=$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
sizes=()
if [ -n "$quick" ]; then
    sizes=(--n 200 --batch-size 100 --attacks "fgsm;pgd" --deepfool-n 100 --weak-n 100 --weak-seeds 1 --weak-epochs 100
           --ipc 10 --epochs 20 --timeout 600)
fi
exec "$python" scripts/gpu/check.py --device "$device" --bin "$bin" --data "$data" "${sizes[@]}" ${out:+--out "$out"}
