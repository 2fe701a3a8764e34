# shellcheck shell=bash disable=SC2154 # the sourcing script sets the settings listed below
# Builds Go tools from pinned wrapper modules (a directory with go.mod + go.sum each, `tool`
# directives only) into a cache outside the repository. Sourced by tools/cluster/build.sh
# (the test control plane) and benches/tools/build.sh (helm and kustomize); each of them says
# what to build, this file does the rest the same way for both:
#
# - finds Go >= 1.26.0 (`GO`, `go` on PATH, /usr/local/go/bin/go) and builds with
#   GOTOOLCHAIN=local GOWORK=off GOFLAGS=-modcacherw CGO_ENABLED=0 for the host, in the caches
#   PRISM_GOMODCACHE / PRISM_GOCACHE (default $HOME/.cache/prism-operator/go/{mod,build});
# - keys the bin dir, <cache>/<key>/bin, by a hash of the Go version, GOOS/GOARCH, the
#   wrappers' go.mod/go.sum and the caller's recipe version: nothing else, so rewording or
#   refactoring the scripts keeps the cache, and a change to what the build produces must bump
#   the recipe version;
# - reuses a complete bin dir (`.complete` and every expected file present) without invoking
#   the compiler, else builds under a lock file (concurrent callers wait, then reuse), after
#   checking the free disk, into a temporary dir moved into place when complete;
# - prunes sibling bin dirs unused for a week, and prints the bin dir as the last line of stdout
#   (progress goes to stderr).
#
# Usage: source this file, set the variables below, define `build_into STAGE_DIR` (builds
# everything into STAGE_DIR and writes STAGE_DIR/versions.txt; it may use log, die, go_bin,
# mod_version, mod_dir and step_done), then call `gobuild`.
#   log_prefix     prefix of progress lines, e.g. "prism tools"
#   here           the directory holding the wrapper modules
#   modules        array: the wrapper module directories under $here
#   recipe         version of the build steps; bump it when build_into produces other files
#   go_needed_by   who needs Go >= 1.26.0, for the error message ("Kubernetes v1.37 needs")
#   cache_dir      parent of the <key> directories
#   executables    array: the executables a complete bin dir holds
#   data_files     array: other files a complete bin dir holds (may be empty)
#   what           what is built, for the disk message ("helm and kustomize")
#   headroom_kb    free disk a build needs beyond what the Go caches lack
#   cold_mod_kb, cold_build_kb  the size of the module / build cache after a cold build, to ask
#                  for what the caches still lack (0: not counted)
#   min_free_var   name of an environment variable (in GiB) replacing that computed need, or ""

cache_root=$HOME/.cache/prism-operator

log() { printf '[%s] %s\n' "$log_prefix" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# Version, and source directory, of module $2 as resolved by the wrapper module in $1.
mod_version() { (cd "$here/$1" && "$go_bin" list -m -f '{{.Version}}' "$2"); }
mod_dir() { (cd "$here/$1" && "$go_bin" list -m -f '{{.Dir}}' "$2"); }

# Logs the time since the build started.
step_done() { log "  done after $((SECONDS - start))s"; }

# `N GiB` or `N MiB` for a size in KiB.
size() {
	local kb=$1
	if ((kb % (1024 * 1024) == 0)); then
		printf '%d GiB' $((kb / 1024 / 1024))
	else
		printf '%d MiB' $((kb / 1024))
	fi
}

find_go() {
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
	export GOTOOLCHAIN=local GOWORK=off GOFLAGS=-modcacherw CGO_ENABLED=0
	export GOMODCACHE=${PRISM_GOMODCACHE:-$cache_root/go/mod}
	export GOCACHE=${PRISM_GOCACHE:-$cache_root/go/build}
	unset GOOS GOARCH GOEXPERIMENT # host binaries, default toolchain settings
	go_version=$("$go_bin" env GOVERSION) || die "'$go_bin env GOVERSION' failed"
	case $go_version in
	go1.2[6-9]* | go1.[3-9][0-9]*) ;;
	*) die "$go_bin is $go_version; $go_needed_by go >= 1.26.0" ;;
	esac
}

cache_key() {
	{
		printf '%s\n' "$go_version" "$("$go_bin" env GOOS GOARCH)"
		local m
		for m in "${modules[@]}"; do cat "$here/$m/go.mod" "$here/$m/go.sum"; done
		printf 'recipe %s\n' "$recipe"
	} | sha256sum | cut -c1-16
}

# Whether directory $1 holds every expected file.
has_all() {
	local f
	for f in "${executables[@]}"; do [[ -x $1/$f ]] || return 1; done
	for f in "${data_files[@]}"; do [[ -f $1/$f ]] || return 1; done
}

complete() { [[ -f $bin/.complete ]] && has_all "$bin"; }

# Records use of the bin dir (builds prune sibling dirs unused for a week) and prints it.
reuse() {
	touch "$out/.last-used"
	log "up to date: $bin"
	printf '%s\n' "$bin"
	exit 0
}

check_free_disk() {
	mkdir -p "$GOMODCACHE" "$GOCACHE"
	local need_kb=$headroom_kb have_kb d free_kb
	if ((cold_mod_kb > 0)); then
		have_kb=$(du -sk "$GOMODCACHE" | cut -f1)
		need_kb=$((need_kb + (cold_mod_kb > have_kb ? cold_mod_kb - have_kb : 0)))
	fi
	if ((cold_build_kb > 0)); then
		have_kb=$(du -sk "$GOCACHE" | cut -f1)
		need_kb=$((need_kb + (cold_build_kb > have_kb ? cold_build_kb - have_kb : 0)))
	fi
	local override=
	if [[ -n $min_free_var ]]; then
		override=" ($min_free_var=<GiB> overrides)"
		if [[ -n ${!min_free_var:-} ]]; then need_kb=$((${!min_free_var} * 1024 * 1024)); fi
	fi
	for d in "$GOMODCACHE" "$GOCACHE" "$cache_dir"; do
		free_kb=$(df -Pk "$d" | awk 'NR==2 {print $4}')
		if ((free_kb < need_kb)); then
			die "only $((free_kb / 1024)) MiB free for $d; building $what needs $(size "$need_kb")$override"
		fi
	done
}

gobuild() {
	local v
	for v in log_prefix here modules recipe go_needed_by cache_dir executables data_files what \
		headroom_kb cold_mod_kb cold_build_kb min_free_var; do
		declare -p "$v" >/dev/null 2>&1 || {
			printf 'gobuild.sh: %s is not set\n' "$v" >&2
			exit 1
		}
	done
	find_go
	key=$(cache_key)
	out=$cache_dir/$key
	bin=$out/bin
	if complete; then reuse; fi

	mkdir -p "$cache_dir"
	# Test binaries and scripts may call this concurrently: one builds, the others wait.
	exec 9>"$cache_dir/.lock"
	if ! flock -n 9; then
		log "another build holds $cache_dir/.lock; waiting"
		flock 9
	fi
	if complete; then reuse; fi
	check_free_disk

	log "building into $bin with $go_version (GOMODCACHE=$GOMODCACHE GOCACHE=$GOCACHE)"
	stage=$(mktemp -d "$out.tmp.XXXXXX")
	trap 'rm -rf "$stage"' EXIT
	start=$SECONDS
	build_into "$stage"
	has_all "$stage" || die "the build did not produce ${executables[*]} ${data_files[*]}"
	[[ -f $stage/versions.txt ]] || die "the build wrote no versions.txt"
	sed 's/^/  /' "$stage/versions.txt" >&2
	touch "$stage/.complete"
	chmod 0755 "$stage"

	mkdir -p "$out"
	rm -rf "$bin"
	mv "$stage" "$bin"
	trap - EXIT
	touch "$out/.last-used"
	find "$cache_dir" -mindepth 2 -maxdepth 2 -name .last-used -mtime +7 -printf '%h\n' |
		while read -r old; do
			[[ $old == "$out" ]] && continue
			log "pruning unused $old"
			rm -rf "$old"
		done
	log "built in $((SECONDS - start))s: $bin"
	printf '%s\n' "$bin"
}
