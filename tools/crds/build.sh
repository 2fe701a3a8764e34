#!/usr/bin/env bash
# Fetches the CustomResourceDefinitions of other projects that the tests install, from those
# projects' Go modules (pinned by the wrapper module upstream/: go.mod + go.sum), into a cache
# outside the repository. Nothing is compiled. How is shared with tools/cluster/build.sh:
# ../gobuild.sh.
#
#   monitoring.coreos.com_servicemonitors.yaml   github.com/prometheus-operator/prometheus-operator
#                                                example/prometheus-operator-crd/
#   gateway.networking.k8s.io_*.yaml             sigs.k8s.io/gateway-api config/crd/standard/
#                                                (the standard channel: GatewayClass, Gateway,
#                                                GRPCRoute, HTTPRoute, ReferenceGrant)
#   monitoring.coreos.com_podmonitors.yaml       github.com/prometheus-operator/prometheus-operator
#   keda.sh_scaledobjects.yaml                   github.com/kedacore/keda/v2 config/crd/bases/
#   cert-manager.io_certificates.yaml            github.com/cert-manager/cert-manager deploy/crds/
#   cert-manager.io_issuers.yaml                 (Certificate and Issuer, cert-manager.io/v1)
#
# cert-manager's deploy/crds/ holds controller-gen's plain YAML; the copies in its Helm chart
# (deploy/charts/cert-manager/templates/crd-*.yaml) wrap the same spec in `{{ ... }}` lines.
# The plain files are taken as they are, so nothing is stripped; build_into fails on a file
# with a template line instead of guessing (should a later version template deploy/crds/).
#
# Output: the directory holding the CRD files on the last line of stdout; progress on stderr.
# Cache:  ${PRISM_CRDS_CACHE:-$HOME/.cache/prism-operator/crds}/<key>/bin (see ../gobuild.sh).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../gobuild.sh
source "$here/../gobuild.sh"

log_prefix="prism crds"
modules=(upstream)
# Bump when build_into below produces other files: the cache key does not hash this script.
recipe=4
go_needed_by="the wrapper module needs"
cache_dir=${PRISM_CRDS_CACHE:-$cache_root/crds}
executables=()
gateway_kinds=(gatewayclasses gateways grpcroutes httproutes referencegrants)
data_files=(monitoring.coreos.com_servicemonitors.yaml monitoring.coreos.com_podmonitors.yaml keda.sh_scaledobjects.yaml)
cert_manager_kinds=(certificates issuers)
for plural in "${cert_manager_kinds[@]}"; do data_files+=("cert-manager.io_$plural.yaml"); done
for plural in "${gateway_kinds[@]}"; do data_files+=("gateway.networking.k8s.io_$plural.yaml"); done
what="the upstream CRDs"
# Module sources only: a few MiB.
headroom_kb=$((64 * 1024))
cold_mod_kb=0
cold_build_kb=0
min_free_var=

build_into() {
	local stage=$1 prometheus_operator=github.com/prometheus-operator/prometheus-operator
	local gateway_api=sigs.k8s.io/gateway-api keda=github.com/kedacore/keda/v2 dir plural
	local cert_manager=github.com/cert-manager/cert-manager file
	(cd "$here/upstream" && "$go_bin" mod download "$prometheus_operator" "$gateway_api" "$keda" "$cert_manager")
	dir=$(mod_dir upstream "$prometheus_operator")
	install -m 0644 "$dir/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" "$stage/"
	install -m 0644 "$dir/example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml" "$stage/"
	dir=$(mod_dir upstream "$keda")
	install -m 0644 "$dir/config/crd/bases/keda.sh_scaledobjects.yaml" "$stage/"
	dir=$(mod_dir upstream "$gateway_api")
	for plural in "${gateway_kinds[@]}"; do
		install -m 0644 "$dir/config/crd/standard/gateway.networking.k8s.io_$plural.yaml" "$stage/"
	done
	dir=$(mod_dir upstream "$cert_manager")
	for plural in "${cert_manager_kinds[@]}"; do
		file=$dir/deploy/crds/cert-manager.io_$plural.yaml
		if grep -qE '^[[:space:]]*\{\{' "$file"; then die "$file is Helm-templated; expected plain CRD YAML"; fi
		install -m 0644 "$file" "$stage/"
	done
	{
		printf 'prometheus-operator: %s\n' "$(mod_version upstream "$prometheus_operator")"
		printf 'gateway-api: %s (standard channel)\n' "$(mod_version upstream "$gateway_api")"
		printf 'keda: %s\n' "$(mod_version upstream "$keda")"
		printf 'cert-manager: %s (deploy/crds)\n' "$(mod_version upstream "$cert_manager")"
	} >"$stage/versions.txt"
}

gobuild
