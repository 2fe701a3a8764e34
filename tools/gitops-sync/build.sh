#!/usr/bin/env bash
# Builds gitops-sync, the harness that syncs rendered manifests into the test control plane
# with Argo CD's gitops-engine (main.go and lua.go next to this script), at the versions
# go.mod + go.sum pin, into a cache outside the repository. How is shared with
# tools/cluster/build.sh: ../gobuild.sh.
#
# Output: the bin dir (holding `gitops-sync`) on the last line of stdout; progress goes to
# stderr.
# Cache:  ${PRISM_GITOPS_SYNC_CACHE:-$HOME/.cache/prism-operator/gitops-sync}/<key>/bin, where
#         <key> hashes the Go version, go.mod, go.sum, the Go sources and `recipe` below. A
#         complete bin dir is reused without invoking the compiler.
# Env:    PRISM_GOMODCACHE / PRISM_GOCACHE override the Go caches
#         (default $HOME/.cache/prism-operator/go/{mod,build}, shared with tools/cluster);
#         GO selects the go binary (default: `go` on PATH, then /usr/local/go/bin/go).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../gobuild.sh
source "$here/../gobuild.sh"

log_prefix="prism gitops-sync"
modules=(.)
# Bump the number when build_into below produces other files (flags, stamps): the cache key
# does not hash this script. The key hashes go.mod and go.sum; the sources are hashed here.
recipe="1 $(cat "$here"/*.go | sha256sum | cut -c1-16)"
go_needed_by="the gitops-sync module needs"
cache_dir=${PRISM_GITOPS_SYNC_CACHE:-$cache_root/gitops-sync}
executables=(gitops-sync)
data_files=()
what="the gitops-engine sync harness"
headroom_kb=$((3 * 1024 * 1024 / 2))
cold_mod_kb=0
cold_build_kb=0
min_free_var=

build_into() {
	local stage=$1 version
	version=$(mod_version . github.com/argoproj/gitops-engine)
	log "gitops-sync with gitops-engine $version"
	(cd "$here" && "$go_bin" build -trimpath -ldflags="-s -w" -o "$stage/gitops-sync" .)
	step_done
	{
		printf 'gitops-engine: %s\n' "$version"
		printf 'gopher-lua: %s\n' "$(mod_version . github.com/yuin/gopher-lua)"
		printf 'go: %s\n' "$go_version"
	} >"$stage/versions.txt"
}

gobuild
