#!/usr/bin/env bash
# Offline checks of the deployment material, run by `make deploy-check` (part of `make test`):
#
# 1. `systemd-analyze verify` on deploy/systemd's units, in a scratch root holding the host's
#    stock units (for the targets they order against), our units, and stand-ins for the binaries
#    at their ExecStart paths (verify checks those are executable; this checks the units, not the
#    binaries). Any message fails the check: verify only warns about unknown keys or bad values.
# 2. deploy/k8s rendered by `kubectl kustomize` and the output validated by kubernetes-validate
#    against the Kubernetes schemas (strict: unknown fields fail) of the oldest version the base
#    needs (1.27, gRPC probes) and of the newest kubernetes-validate knows.
#
# Needs systemd-analyze, kubectl and kubernetes-validate (`make deploy-check` installs the last
# into the project venv; .ci/run installs the others from Debian when missing).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
validate="${KUBERNETES_VALIDATE:-$root/.venv/bin/kubernetes-validate}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

for tool in systemd-analyze kubectl "$validate"; do
    command -v "$tool" >/dev/null || { echo "deploy-check: $tool is missing" >&2; exit 1; }
done

echo "==> systemd-analyze verify deploy/systemd"
sysroot="$scratch/root"
mkdir -p "$sysroot/usr/lib/systemd" "$sysroot/etc/systemd/system"
cp -a /lib/systemd/system "$sysroot/usr/lib/systemd/"
units=()
for unit in "$root"/deploy/systemd/*.service; do
    cp "$unit" "$sysroot/etc/systemd/system/"
    name="$(basename "$unit")"
    # A template is verified through one instance.
    [[ "$name" == *@.service ]] && name="${name%@.service}@0.service"
    units+=("$name")
    sed -n 's/^ExecStart=[-@:+!]*\([^ ]*\).*/\1/p' "$unit" | while read -r exe; do
        mkdir -p "$sysroot$(dirname "$exe")"
        printf '#!/bin/sh\n' >"$sysroot$exe"
        chmod +x "$sysroot$exe"
    done
done
messages="$(systemd-analyze verify --root="$sysroot" "${units[@]}" 2>&1)" || {
    echo "$messages" >&2
    exit 1
}
if [[ -n "$messages" ]]; then
    echo "$messages" >&2
    echo "deploy-check: systemd-analyze verify reported problems" >&2
    exit 1
fi
echo "    ${units[*]}: ok"

echo "==> kubectl kustomize deploy/k8s | kubernetes-validate --strict"
kubectl kustomize "$root/deploy/k8s" >"$scratch/k8s.yaml"
kinds="$(grep -c '^kind:' "$scratch/k8s.yaml")"
for version in 1.27.0 1.37.0; do
    "$validate" --strict --quiet --kubernetes-version "$version" "$scratch/k8s.yaml"
done
echo "    $kinds resources: ok"
