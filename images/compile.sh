#!/usr/bin/env bash
# Compiles the static binaries the images ship: profile `dist` (release, stripped), glibc linked
# statically (crt-static) so the images can be FROM scratch. Used by images/build.sh on the host
# and by the Dockerfiles' `compile` stage, so both paths build the same way.
#
# Usage: images/compile.sh OUT_DIR BINARY...   (BINARY: prism-operator, prism-render)
# Output: OUT_DIR/BINARY for each; cargo's progress goes to stderr.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$1
shift
[ $# -gt 0 ] || { echo "usage: images/compile.sh OUT_DIR BINARY..." >&2; exit 2; }

# An explicit --target keeps crt-static off build scripts and proc macros (which cannot be static).
target=$(uname -m)-unknown-linux-gnu
cargo_home=${CARGO_HOME:-$HOME/.cargo}
target_dir=${CARGO_TARGET_DIR:-$root/target}
# No build-machine paths in the binaries (panic locations name dependency sources and generated
# code): /cargo/... and /target/..., so the same sources give the same bytes wherever CARGO_HOME
# and the target directory are. Workspace sources are named relative to the workspace already.
export RUSTFLAGS="-C target-feature=+crt-static --remap-path-prefix=$cargo_home=/cargo --remap-path-prefix=$target_dir=/target"

# cc-based build scripts (ring, libgit2, zlib) rerun when SOURCE_DATE_EPOCH changes, and
# images/build.sh sets it to the last commit's time: without this, every commit would rebuild
# them and everything above them. The binaries do not depend on it.
unset SOURCE_DATE_EPOCH
# Likewise for what cargo sets for a build script or a test (CARGO_PKG_NAME, CARGO_MANIFEST_DIR,
# OUT_DIR, …) when this runs from one: some build scripts track those names too.
for name in $(compgen -e); do
	case $name in
	CARGO_PKG_* | CARGO_MANIFEST_* | CARGO_CFG_* | CARGO_FEATURE_* | CARGO_BIN_* | CARGO_CRATE_NAME | \
		CARGO_PRIMARY_PACKAGE | CARGO_TARGET_TMPDIR | OUT_DIR) unset "$name" ;;
	esac
done

args=()
for bin in "$@"; do
	case $bin in
	prism-operator) args+=(-p prism-operator --bin prism-operator) ;;
	prism-render) args+=(-p prism-render --bin prism-render) ;;
	*) echo "images/compile.sh: unknown binary $bin (prism-operator, prism-render)" >&2; exit 2 ;;
	esac
done
cd "$root"
cargo build --locked --profile dist --target "$target" "${args[@]}" >&2
mkdir -p "$out"
for bin in "$@"; do
	install -m 0755 "$target_dir/$target/dist/$bin" "$out/$bin"
done
