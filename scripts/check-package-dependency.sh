#!/usr/bin/env bash
# Checks that another Swift package can depend on Patchwork by version: clones this repository's
# committed HEAD to a temp folder, tags the clone with Patchwork's version (PatchworkVersion.string),
# then builds Examples/PackageDependency (from the clone) against that tag through a file:// git URL
# and runs it: one SGD step of resnet_nano. SwiftPM refuses a versioned dependency whose targets
# use unsafeFlags, so this fails at resolution if Package.swift ever adds them back.
# Uncommitted changes are not part of the check. Takes a release build of three targets (a few minutes).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version=$(sed -n 's/.*static let string = "\(.*\)".*/\1/p' "$root/Sources/Patchwork/Version.swift")
[ -n "$version" ] || { echo "error: no version in Sources/Patchwork/Version.swift" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/patchwork-dependency.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
git clone -q "$root" "$tmp/Patchwork"
git -C "$tmp/Patchwork" tag -f "$version" HEAD >/dev/null
echo "== Patchwork $version at $(git -C "$tmp/Patchwork" rev-parse --short HEAD), tagged in $tmp/Patchwork"
example="$tmp/Patchwork/Examples/PackageDependency"
export PATCHWORK_URL="file://$tmp/Patchwork"
swift build -c release --package-path "$example"
"$example/.build/release/TrainOneStep"
