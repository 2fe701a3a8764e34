#!/usr/bin/env bash
# Builds the tools the render comparison runs against, helm and kustomize, from the pinned
# wrapper modules next to this script (helm/, kustomize/: go.mod + go.sum with a `tool`
# directive each), into a cache outside the repository. How is shared with
# tools/cluster/build.sh: ../../tools/gobuild.sh.
#
# Output: the bin dir on the last line of stdout; progress goes to stderr.
# Cache:  ${PRISM_TOOLS_CACHE:-$HOME/.cache/prism-operator/tools}/<key>/bin, where <key>
#         hashes the Go version, the wrapper go.mod/go.sum files and `recipe` below. A complete
#         bin dir is reused without invoking the compiler.
# Env:    PRISM_GOMODCACHE / PRISM_GOCACHE override the Go caches
#         (default $HOME/.cache/prism-operator/go/{mod,build}, shared with tools/cluster);
#         GO selects the go binary (default: `go` on PATH, then /usr/local/go/bin/go).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../tools/gobuild.sh
source "$here/../../tools/gobuild.sh"

log_prefix="prism tools"
modules=(helm kustomize)
# Bump when build_into below produces other files (flags, stamps): the cache key does not hash
# this script.
recipe=1
go_needed_by="helm v4.3 and kustomize v5.8 need"
cache_dir=${PRISM_TOOLS_CACHE:-$cache_root/tools}
executables=(helm kustomize)
data_files=()
what="helm and kustomize"
# Measured with the caches of tools/cluster/build.sh warm: +0.4 GiB of module sources and
# +1.0 GiB of build cache; 3 GiB leaves room for a build whose caches are cold.
headroom_kb=$((3 * 1024 * 1024))
cold_mod_kb=0
cold_build_kb=0
min_free_var=

build_into() {
	local stage=$1
	local helm_version kustomize_version
	helm_version=$(mod_version helm helm.sh/helm/v4)
	log "helm $helm_version"
	(cd "$here/helm" && "$go_bin" build -trimpath \
		-ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$helm_version -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
		-o "$stage/helm" helm.sh/helm/v4/cmd/helm)
	step_done

	kustomize_version=$(mod_version kustomize sigs.k8s.io/kustomize/kustomize/v5)
	log "kustomize $kustomize_version"
	(cd "$here/kustomize" && "$go_bin" build -trimpath \
		-ldflags="-s -w -X sigs.k8s.io/kustomize/api/provenance.version=kustomize/$kustomize_version -X sigs.k8s.io/kustomize/api/provenance.buildDate=1970-01-01T00:00:00Z" \
		-o "$stage/kustomize" sigs.k8s.io/kustomize/kustomize/v5)
	step_done

	{
		printf 'helm: %s\n' "$("$stage/helm" version --short 2>&1 | head -n1)"
		printf 'kustomize: %s\n' "$("$stage/kustomize" version 2>&1 | head -n1)"
		printf 'go: %s\n' "$go_version"
	} >"$stage/versions.txt"
}

gobuild
