#!/usr/bin/env bash
# Installs the system packages the package needs when they are missing: the libraries it links
# against (Debian's OpenBLAS and LAPACKE), and Open MPI's mpirun and libmpi, which `arpo-train`
# loads at run time under mpirun (docs/distributed.md) and the data-parallel tests run.
# Safe to run repeatedly; does nothing once they are there.
set -euo pipefail

packages=(libopenblas-dev liblapacke-dev openmpi-bin)
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing ${missing[*]} (apt-get)…" >&2
if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
else
    echo "error: ${missing[*]} missing and not running as root (no sudo); install them with apt-get" >&2
    exit 2
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
