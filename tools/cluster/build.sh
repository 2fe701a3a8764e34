#!/usr/bin/env bash
# Builds the control-plane binaries used by the end-to-end tests (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kwok) from the pinned wrapper modules next to
# this script, plus the kwok stage/StorageClass files, into a cache outside the repository.
# How is shared with benches/tools/build.sh: ../gobuild.sh.
#
# Output: the bin dir on the last line of stdout; progress goes to stderr.
# Cache:  ${PRISM_TESTBIN_CACHE:-$HOME/.cache/prism-operator/testbin}/<key>/bin, where <key>
#         hashes the Go version, the wrapper go.mod/go.sum files and `recipe` below. A present,
#         complete bin dir is reused without invoking the compiler.
# Env:    PRISM_GOMODCACHE / PRISM_GOCACHE override the Go caches
#         (default $HOME/.cache/prism-operator/go/{mod,build});
#         PRISM_TESTBIN_MIN_FREE_GB overrides the free-disk requirement of a build
#         (default: what the Go caches still lack for a cold build, plus 1.5 GiB);
#         GO selects the go binary (default: `go` on PATH, then /usr/local/go/bin/go).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../gobuild.sh
source "$here/../gobuild.sh"

log_prefix="prism testbin"
modules=(k8s etcd kwok)
# Bump when build_into below produces other files (flags, stamps, stage files): the cache key
# does not hash this script.
recipe=1
go_needed_by="Kubernetes v1.37 needs"
cache_dir=${PRISM_TESTBIN_CACHE:-$cache_root/testbin}
executables=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
data_files=(kwok-stages.yaml kwok-storage-class.yaml)
what="the test binaries"
# Measured cold: module sources ~1.1 GiB, build cache ~4.4 GiB, binaries 0.3 GiB. Ask for what
# the caches still lack, plus the binaries and 1 GiB of headroom.
headroom_kb=$((3 * 1024 * 1024 / 2))
cold_mod_kb=$((13 * 1024 * 1024 / 10))
cold_build_kb=$((46 * 1024 * 1024 / 10))
min_free_var=PRISM_TESTBIN_MIN_FREE_GB

build_into() {
	local stage=$1
	local kube_version kube_minor ldflags p kwok_version kwok_stages f t
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
	step_done

	log "etcd $(mod_version etcd go.etcd.io/etcd/server/v3)"
	(cd "$here/etcd" && "$go_bin" build -trimpath -ldflags="-s -w" -o "$stage/etcd" go.etcd.io/etcd/server/v3)
	step_done

	kwok_version=$(mod_version kwok sigs.k8s.io/kwok)
	log "kwok $kwok_version"
	(cd "$here/kwok" && "$go_bin" build -trimpath -ldflags="-s -w" -o "$stage/kwok" sigs.k8s.io/kwok/cmd/kwok)
	step_done

	# kwok loads Stages only from config files; take the stock ones shipped in its module.
	kwok_stages=$(mod_dir kwok sigs.k8s.io/kwok)/kustomize/stage
	local stage_files=(
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
}

gobuild
