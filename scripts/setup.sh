#!/usr/bin/env bash
# Installs the Debian packages Patchwork builds against (run as root, or with sudo available).
set -euo pipefail
# libxml2: FoundationXML (the report's SVG sanitiser) loads it at run time.
# libjpeg62-turbo-dev: JPEGs decoded as Pillow decodes them (docs/PREPROCESSING.md).
# openmpi-bin, libopenmpi-dev: data-parallel training under mpirun (docs/DISTRIBUTED.md).
packages=(libdnnl-dev libstb-dev zlib1g-dev libjpeg62-turbo-dev libfftw3-dev libxml2 openmpi-bin libopenmpi-dev)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq "${missing[@]}"
fi
