#!/usr/bin/env bash
# Builds the OpenTelemetry Collector the end-to-end tests send traces to: main.go next to this
# script, with the OTLP receiver and the file exporter only, at the collector release pinned by
# go.mod + go.sum, into a cache outside the repository. How is shared with
# tools/cluster/build.sh: ../gobuild.sh.
#
# Output: the bin dir (holding `otelcol`) on the last line of stdout; progress goes to stderr.
# Cache:  ${PRISM_OTELCOL_CACHE:-$HOME/.cache/prism-operator/otelcol}/<key>/bin, where <key>
#         hashes the Go version, go.mod, go.sum, main.go and `recipe` below. A complete bin dir
#         is reused without invoking the compiler.
# Env:    PRISM_GOMODCACHE / PRISM_GOCACHE override the Go caches
#         (default $HOME/.cache/prism-operator/go/{mod,build}, shared with tools/cluster);
#         GO selects the go binary (default: `go` on PATH, then /usr/local/go/bin/go).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../gobuild.sh
source "$here/../gobuild.sh"

log_prefix="prism otelcol"
modules=(.)
# Bump the number when build_into below produces other files (flags, stamps): the cache key
# does not hash this script. The key hashes go.mod and go.sum; main.go is hashed here.
recipe="1 main.go $(sha256sum <"$here/main.go" | cut -c1-16)"
go_needed_by="the collector wrapper module needs"
cache_dir=${PRISM_OTELCOL_CACHE:-$cache_root/otelcol}
executables=(otelcol)
data_files=()
what="the OpenTelemetry Collector"
# Measured with empty Go caches: 0.45 GiB of module sources, 0.55 GiB of build cache, a 33 MiB
# binary; 1.5 GiB leaves room for that.
headroom_kb=$((3 * 1024 * 1024 / 2))
cold_mod_kb=0
cold_build_kb=0
min_free_var=

build_into() {
	local stage=$1 version
	version=$(mod_version . go.opentelemetry.io/collector/otelcol)
	log "otelcol $version (otlpreceiver, fileexporter)"
	(cd "$here" && "$go_bin" build -trimpath -ldflags="-s -w -X main.version=$version" \
		-o "$stage/otelcol" .)
	step_done

	local otlp=go.opentelemetry.io/collector/receiver/otlpreceiver
	local file=github.com/open-telemetry/opentelemetry-collector-contrib/exporter/fileexporter
	local components
	components=$("$stage/otelcol" components 2>&1)
	grep -q "module: $otlp $version" <<<"$components" || die "the collector lacks $otlp $version: $components"
	grep -q "module: $file $version" <<<"$components" || die "the collector lacks $file $version: $components"
	{
		printf 'otelcol: %s\n' "$("$stage/otelcol" --version 2>&1 | head -n1)"
		printf 'receiver: %s\n' "$otlp $version"
		printf 'exporter: %s\n' "$file $version"
		printf 'go: %s\n' "$go_version"
	} >"$stage/versions.txt"
}

gobuild
