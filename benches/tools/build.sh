#!/usr/bin/env bash
# Builds the tools the render comparison runs against, helm and kustomize, from the pinned
# wrapper modules next to this script (helm/, kustomize/: go.mod + go.sum with a `tool`
# directive each), into a cache outside the repository.
#
# Output: the bin dir on the last line of stdout; progress goes to stderr.
# Cache:  ${PRISM_TOOLS_CACHE:-$HOME/.cache/prism-operator/tools}/<key>/bin, where <key>
#         hashes the Go version, the wrapper go.mod/go.sum files and this script. A complete
#         bin dir is reused without invoking the compiler.
# Env:    PRISM_GOMODCACHE / PRISM_GOCACHE override the Go caches
#         (default $HOME/.cache/prism-operator/go/{mod,build}, shared with tests/cluster);
#         GO selects the go binary (default: `go` on PATH, then /usr/local/go/bin/go).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { printf '[prism tools] %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

go_bin=${GO:-}
if [[ -n $go_bin && ! -x $go_bin ]]; then
	die "GO=$go_bin is not an executable"
elif [[ -z $go_bin ]]; then
	if command -v go >/dev/null 2>&1; then
		go_bin=$(command -v go)
	elif [[ -x /usr/local/go/bin/go ]]; then
		go_bin=/usr/local/go/bin/go
	else
		die "Go toolchain not found (need go >= 1.26.0 on PATH, in /usr/local/go/bin, or GO=/path/to/go)"
	fi
fi

cache_root=$HOME/.cache/prism-operator
export GOTOOLCHAIN=local GOWORK=off GOFLAGS=-modcacherw CGO_ENABLED=0
export GOMODCACHE=${PRISM_GOMODCACHE:-$cache_root/go/mod}
export GOCACHE=${PRISM_GOCACHE:-$cache_root/go/build}
unset GOOS GOARCH GOEXPERIMENT

go_version=$("$go_bin" env GOVERSION) || die "'$go_bin env GOVERSION' failed"
case $go_version in
go1.2[6-9]* | go1.[3-9][0-9]*) ;;
*) die "$go_bin is $go_version; helm v4.3 and kustomize v5.8 need go >= 1.26.0" ;;
esac

modules=(helm kustomize)
key=$(
	{
		printf '%s\n' "$go_version" "$("$go_bin" env GOOS GOARCH)"
		for m in "${modules[@]}"; do cat "$here/$m/go.mod" "$here/$m/go.sum"; done
		cat "${BASH_SOURCE[0]}"
	} | sha256sum | cut -c1-16
)
tools_root=${PRISM_TOOLS_CACHE:-$cache_root/tools}
out=$tools_root/$key
bin=$out/bin

complete() { [[ -f $bin/.complete && -x $bin/helm && -x $bin/kustomize ]]; }
reuse() {
	touch "$out/.last-used"
	log "up to date: $bin"
	printf '%s\n' "$bin"
	exit 0
}
if complete; then reuse; fi

mkdir -p "$tools_root"
# Test binaries and scripts may call this concurrently: one builds, the others wait.
exec 9>"$tools_root/.lock"
if ! flock -n 9; then
	log "another build holds $tools_root/.lock; waiting"
	flock 9
fi
if complete; then reuse; fi

mkdir -p "$GOMODCACHE" "$GOCACHE"
# Measured with the caches of tests/cluster/build.sh warm: +0.4 GiB of module sources and
# +1.0 GiB of build cache; 3 GiB leaves room for a build whose caches are cold.
need_kb=$((3 * 1024 * 1024))
for d in "$GOMODCACHE" "$GOCACHE" "$tools_root"; do
	free_kb=$(df -Pk "$d" | awk 'NR==2 {print $4}')
	((free_kb >= need_kb)) || die "only $((free_kb / 1024)) MiB free for $d; building helm and kustomize needs 3 GiB"
done

log "building into $bin with $go_version (GOMODCACHE=$GOMODCACHE GOCACHE=$GOCACHE)"
stage=$(mktemp -d "$out.tmp.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mod_version() { (cd "$here/$1" && "$go_bin" list -m -f '{{.Version}}' "$2"); }

start=$SECONDS
helm_version=$(mod_version helm helm.sh/helm/v4)
log "helm $helm_version"
(cd "$here/helm" && "$go_bin" build -trimpath \
	-ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$helm_version -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
	-o "$stage/helm" helm.sh/helm/v4/cmd/helm)
log "  done after $((SECONDS - start))s"

kustomize_version=$(mod_version kustomize sigs.k8s.io/kustomize/kustomize/v5)
log "kustomize $kustomize_version"
(cd "$here/kustomize" && "$go_bin" build -trimpath \
	-ldflags="-s -w -X sigs.k8s.io/kustomize/api/provenance.version=kustomize/$kustomize_version -X sigs.k8s.io/kustomize/api/provenance.buildDate=1970-01-01T00:00:00Z" \
	-o "$stage/kustomize" sigs.k8s.io/kustomize/kustomize/v5)
log "  done after $((SECONDS - start))s"

{
	printf 'helm: %s\n' "$("$stage/helm" version --short 2>&1 | head -n1)"
	printf 'kustomize: %s\n' "$("$stage/kustomize" version 2>&1 | head -n1)"
	printf 'go: %s\n' "$go_version"
} >"$stage/versions.txt"
sed 's/^/  /' "$stage/versions.txt" >&2
touch "$stage/.complete"
chmod 0755 "$stage"

mkdir -p "$out"
rm -rf "$bin"
mv "$stage" "$bin"
trap - EXIT
touch "$out/.last-used"
find "$tools_root" -mindepth 2 -maxdepth 2 -name .last-used -mtime +7 -printf '%h\n' |
	while read -r old; do
		[[ $old == "$out" ]] && continue
		log "pruning unused $old"
		rm -rf "$old"
	done
log "built in $((SECONDS - start))s: $bin"
printf '%s\n' "$bin"
