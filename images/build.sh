#!/usr/bin/env bash
# Builds both images into the local podman (or docker) store, without network or base images:
#   <registry>/prism-operator:<appVersion>   from Dockerfile
#   <registry>/prism-render:<appVersion>     from argocd/Dockerfile (the Argo CD plugin sidecar)
# tagged exactly as the chart (image.repository, appVersion) and argocd/repo-server-sidecar.yaml
# refer to them. The binaries are compiled on the host by images/compile.sh and copied into
# FROM-scratch images (--build-arg BINARY_FROM=context, with a context holding only the binary).
#
# Reproducible: the same sources give the same image IDs. File and creation times are set to
# SOURCE_DATE_EPOCH (default: the time of the last commit); the revision label is the commit.
#
# Usage:  bash images/build.sh [--no-cache]
# Env:    CONTAINER_ENGINE  podman or docker (default: podman if installed, else docker)
#         IMAGE_REGISTRY    default ghcr.io/prism
#         IMAGE_TAG         default: appVersion of charts/prism-operator/Chart.yaml
# Output: the two image references on stdout, one per line; progress goes to stderr.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

no_cache=()
for arg in "$@"; do
	case $arg in
	--no-cache) no_cache=(--no-cache) ;;
	*) echo "usage: bash images/build.sh [--no-cache]" >&2; exit 2 ;;
	esac
done

engine=${CONTAINER_ENGINE:-}
if [ -z "$engine" ]; then
	if command -v podman >/dev/null; then engine=podman
	elif command -v docker >/dev/null; then engine=docker
	else echo "images/build.sh: neither podman nor docker is installed" >&2; exit 1
	fi
fi

app_version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' charts/prism-operator/Chart.yaml)
crate_version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"$/\1/p' Cargo.toml)
if [ "$app_version" != "$crate_version" ]; then
	echo "images/build.sh: Chart.yaml appVersion ($app_version) differs from the crate version ($crate_version)" >&2
	exit 1
fi
registry=${IMAGE_REGISTRY:-ghcr.io/prism}
# The org.opencontainers.image.source label of both Dockerfiles.
source_label=https://github.com/prism/prism-operator
tag=${IMAGE_TAG:-$app_version}

if revision=$(git rev-parse HEAD 2>/dev/null); then
	[ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || revision="$revision-dirty"
	SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
else
	revision=unknown
	SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0}
fi
export SOURCE_DATE_EPOCH

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/prism-operator" "$stage/prism-render"
bash images/compile.sh "$stage/bin" prism-operator prism-render
mv "$stage/bin/prism-operator" "$stage/prism-operator/"
mv "$stage/bin/prism-render" "$stage/prism-render/"

build() { # dockerfile context reference
	local args=(build "${no_cache[@]}" -f "$1" -t "$3"
		--build-arg BINARY_FROM=context
		--build-arg "VERSION=$app_version"
		--build-arg "REVISION=$revision")
	if [ "$engine" = podman ]; then
		# Creation and file times from SOURCE_DATE_EPOCH: the image ID depends on the inputs only.
		args+=(--timestamp "$SOURCE_DATE_EPOCH" --format oci)
	else
		# BuildKit takes the creation time from this build argument.
		args+=(--build-arg "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH")
	fi
	"$engine" "${args[@]}" "$2" >&2
	echo "$3"
}
build Dockerfile "$stage/prism-operator" "$registry/prism-operator:$tag"
build argocd/Dockerfile "$stage/prism-render" "$registry/prism-render:$tag"
if [ "$engine" = podman ]; then
	# podman keeps an untagged image of each `context` stage, and earlier builds of these images
	# stay behind untagged: nothing needs either once the new images are tagged.
	podman image prune --force --filter label=prism.image-stage=context >/dev/null
	podman image prune --force --filter "label=org.opencontainers.image.source=$source_label" >/dev/null
fi
