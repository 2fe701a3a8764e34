#!/usr/bin/env bash
# Builds the control-plane binaries used by the end-to-end tests (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kwok) from the pinned wrapper modules next to
# this script, plus the kwok stage/StorageClass files, into a cache outside the repository.
#
# Output: the bin dir on the last line of stdout; progress goes to stderr.
# Cache:  ${PRISM_TESTBIN_CACHE:-$HOME/.cache/prism-operator/testbin}/<key>/bin, where <key>
#         hashes the Go version, the wrapper go.mod/go.sum files and this script. A present,
#         complete bin dir is reused without invoking the compiler.
# Env:    PRISM_GOMODCACHE / PRISM_GOCACHE override the Go caches
#         (default $HOME/.cache/prism-operator/go/{mod,build});
#         PRISM_TESTBIN_MIN_FREE_GB overrides the free-disk requirement of a build
#         (default: what the Go caches still lack for a cold build, plus 1.5 GiB);
#         GO selects the go binary (default: `go` on PATH, then /usr/local/go/bin/go).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { printf '[prism testbin] %s\n' "$*" >&2; }
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
unset GOOS GOARCH GOEXPERIMENT # host binaries, default toolchain settings

go_version=$("$go_bin" env GOVERSION) || die "'$go_bin env GOVERSION' failed"
case $go_version in
go1.2[6-9]* | go1.[3-9][0-9]*) ;;
*) die "$go_bin is $go_version; Kubernetes v1.37 needs go >= 1.26.0" ;;
esac

modules=(k8s etcd kwok)
key=$(
	{
		printf '%s\n' "$go_version" "$("$go_bin" env GOOS GOARCH)"
		for m in "${modules[@]}"; do cat "$here/$m/go.mod" "$here/$m/go.sum"; done
		cat "${BASH_SOURCE[0]}"
	} | sha256sum | cut -c1-16
)
testbin_root=${PRISM_TESTBIN_CACHE:-$cache_root/testbin}
out=$testbin_root/$key
bin=$out/bin
tools=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

complete() {
	[[ -f $bin/.complete ]] || return 1
	local t
	for t in "${tools[@]}"; do [[ -x $bin/$t ]] || return 1; done
	[[ -f $bin/kwok-stages.yaml && -f $bin/kwok-storage-class.yaml ]]
}

# Records use of a bin dir; builds prune sibling dirs unused for a week.
reuse() {
	touch "$out/.last-used"
	log "up to date: $bin"
	printf '%s\n' "$bin"
	exit 0
}
if complete; then reuse; fi

mkdir -p "$testbin_root"
# Concurrent test binaries may all call this script; one builds, the others wait.
exec 9>"$testbin_root/.lock"
if ! flock -n 9; then
	log "another build holds $testbin_root/.lock; waiting"
	flock 9
fi
if complete; then reuse; fi

# Measured cold: module sources ~1.1 GiB, build cache ~4.4 GiB, binaries 0.3 GiB. Ask for what
# the caches still lack, plus the binaries and 1 GiB of headroom.
mkdir -p "$GOMODCACHE" "$GOCACHE"
gib=$((1024 * 1024))
have_mod_kb=$(du -sk "$GOMODCACHE" | cut -f1)
have_build_kb=$(du -sk "$GOCACHE" | cut -f1)
need_kb=$((3 * gib / 2 + (13 * gib / 10 > have_mod_kb ? 13 * gib / 10 - have_mod_kb : 0) +
	(46 * gib / 10 > have_build_kb ? 46 * gib / 10 - have_build_kb : 0)))
if [[ -n ${PRISM_TESTBIN_MIN_FREE_GB:-} ]]; then need_kb=$((PRISM_TESTBIN_MIN_FREE_GB * gib)); fi
for d in "$GOMODCACHE" "$GOCACHE" "$testbin_root"; do
	free_kb=$(df -Pk "$d" | awk 'NR==2 {print $4}')
	if ((free_kb < need_kb)); then
		die "only $((free_kb / 1024)) MiB free for $d; building the test binaries needs $((need_kb / 1024)) MiB (PRISM_TESTBIN_MIN_FREE_GB=<GiB> overrides)"
	fi
done

log "building into $bin with $go_version (GOMODCACHE=$GOMODCACHE GOCACHE=$GOCACHE)"
stage=$(mktemp -d "$out.tmp.XXXXXX")
trap 'rm -rf "$stage"' EXIT

# Version of a module as resolved by the wrapper module in $1.
mod_version() { (cd "$here/$1" && "$go_bin" list -m -f '{{.Version}}' "$2"); }
mod_dir() { (cd "$here/$1" && "$go_bin" list -m -f '{{.Dir}}' "$2"); }

start=$SECONDS
kube_version=$(mod_version k8s k8s.io/kubernetes)
kube_minor=$(cut -d. -f2 <<<"$kube_version")
ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $p.gitVersion=$kube_version -X $p.gitMajor=1 -X $p.gitMinor=$kube_minor"
	ldflags+=" -X $p.gitTreeState=clean -X $p.gitCommit=module-$kube_version"
	ldflags+=" -X $p.buildDate=1970-01-01T00:00:00Z"
done
log "kubernetes $kube_version: kube-apiserver, kube-controller-manager, kube-scheduler"
(cd "$here/k8s" && "$go_bin" build -trimpath -tags=notest,grpcnotrace -ldflags="$ldflags" \
	-o "$stage/" k8s.io/kubernetes/cmd/kube-apiserver \
	k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler)
log "  done after $((SECONDS - start))s"

log "etcd $(mod_version etcd go.etcd.io/etcd/server/v3)"
(cd "$here/etcd" && "$go_bin" build -trimpath -ldflags="-s -w" -o "$stage/etcd" go.etcd.io/etcd/server/v3)
log "  done after $((SECONDS - start))s"

kwok_version=$(mod_version kwok sigs.k8s.io/kwok)
log "kwok $kwok_version"
(cd "$here/kwok" && "$go_bin" build -trimpath -ldflags="-s -w" -o "$stage/kwok" sigs.k8s.io/kwok/cmd/kwok)
log "  done after $((SECONDS - start))s"

# kwok loads Stages only from config files; take the stock ones shipped in its module.
kwok_stages=$(mod_dir kwok sigs.k8s.io/kwok)/kustomize/stage
stage_files=(
	node/fast/node-initialize.yaml
	node/heartbeat-with-lease/node-heartbeat-with-lease.yaml
	pod/fast/pod-ready.yaml
	pod/fast/pod-complete.yaml
	pod/fast/pod-delete.yaml
	volume/fast/pvc-provision.yaml
	volume/fast/pv-bind.yaml
	volume/fast/pvc-delete.yaml
	volume/fast/pv-delete.yaml
)
{
	printf '# Stages from sigs.k8s.io/kwok@%s kustomize/stage\n' "$kwok_version"
	for f in "${stage_files[@]}"; do
		[[ -f $kwok_stages/$f ]] || die "missing kwok stage file $kwok_stages/$f"
		printf -- '---\n# %s\n' "$f"
		cat "$kwok_stages/$f"
	done
} >"$stage/kwok-stages.yaml"
install -m 0644 "$kwok_stages/volume/fast/storage-class.yaml" "$stage/kwok-storage-class.yaml"

for t in kube-apiserver kube-controller-manager kube-scheduler etcd kwok; do
	printf '%s: %s\n' "$t" "$("$stage/$t" --version 2>&1 | head -n1)"
done >"$stage/versions.txt"
grep -q "Kubernetes $kube_version" "$stage/versions.txt" ||
	die "kube-apiserver is not stamped with $kube_version: $(cat "$stage/versions.txt")"
sed 's/^/  /' "$stage/versions.txt" >&2
touch "$stage/.complete"
chmod 0755 "$stage"

mkdir -p "$out"
rm -rf "$bin"
mv "$stage" "$bin"
trap - EXIT
touch "$out/.last-used"
find "$testbin_root" -mindepth 2 -maxdepth 2 -name .last-used -mtime +7 -printf '%h\n' |
	while read -r old; do
		log "pruning unused $old"
		rm -rf "$old"
	done
log "built in $((SECONDS - start))s: $bin"
printf '%s\n' "$bin"
