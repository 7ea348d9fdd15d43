#!/usr/bin/env bash
# Installs the system libraries the package links against (Debian's OpenBLAS and LAPACKE) when
# they are missing. Safe to run repeatedly; does nothing once they are there.
set -euo pipefail

packages=(libopenblas-dev liblapacke-dev)
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
