#!/usr/bin/env bash
# Renders the same generated fleets with prism-render, `helm template` (benches/helm-fleet) and
# `kustomize build` (the tree benches/gen_fleet.rs writes), on this machine in one run: the
# tools alternate within each round, each size gets --runs rounds, and the medians and their
# ratios are printed. Then prism-render's peak RSS (/usr/bin/time -v) at the largest size and
# its cold start (a new process per render) on a 10-shard fleet.
#
#   bash benches/compare.sh                 # 10, 100 and 1,000 shards, 5 rounds (see BENCHMARKS.md)
#   bash benches/compare.sh --smoke         # a 4-shard fleet, one round, debug build: for CI
#
# Options: --sizes "10 100 1000"  shard counts (10 PrismNamespaces per shard)
#          --runs N               rounds per size (default 5)
#          --kustomize-max N      largest size kustomize runs at (default 100: at 1,000 shards
#                                 one kustomize build takes about 18 minutes here)
#          --cold-runs N          processes for the cold-start figure (default 30)
#          --rss-sizes "10 100 1000 5000"  shard counts of prism-render's memory curve (3 runs
#                                 each; table rss.tsv and plot rss.svg in the results)
#          --profile NAME         cargo profile of prism-render (default release; dev with --smoke)
#          --results DIR          where fleets, outputs and results.tsv go
#                                 (default target/bench-compare)
#
# Needs: cargo, Go >= 1.26 (benches/tools/build.sh builds helm and kustomize once into
# ~/.cache/prism-operator/tools), and /usr/bin/time, which this script installs with apt-get
# when it is missing.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

sizes="10 100 1000"
runs=5
kustomize_max=100
cold_runs=30
rss_sizes="10 100 1000 5000"
profile=
results=$root/target/bench-compare
smoke=0
while (($#)); do
	case $1 in
	--smoke) smoke=1 ;;
	--sizes) sizes=$2; shift ;;
	--runs) runs=$2; shift ;;
	--kustomize-max) kustomize_max=$2; shift ;;
	--cold-runs) cold_runs=$2; shift ;;
	--rss-sizes) rss_sizes=$2; shift ;;
	--profile) profile=$2; shift ;;
	--results) results=$2; shift ;;
	-h | --help) sed -n '2,24p' "${BASH_SOURCE[0]}"; exit 0 ;;
	*) echo "compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done
if ((smoke)); then
	sizes=4 runs=1 cold_runs=3 kustomize_max=4 rss_sizes=4
	profile=${profile:-dev}
fi
profile=${profile:-release}
sizes=${sizes//,/ }

log() { printf '[compare] %s\n' "$*" >&2; }

# /usr/bin/time (GNU time) for peak RSS; Debian's package is "time".
if [[ ! -x /usr/bin/time ]]; then
	log "installing GNU time (apt-get install time)"
	sudo=
	((EUID == 0)) || sudo=sudo
	$sudo apt-get install -y -qq time >/dev/null 2>&1 ||
		{ $sudo apt-get update -qq && $sudo apt-get install -y -qq time >/dev/null; }
fi
/usr/bin/time -f %M true 2>/dev/null >/dev/null || { log "error: /usr/bin/time is not GNU time"; exit 1; }

log "helm and kustomize: benches/tools/build.sh"
tools=$(bash benches/tools/build.sh | tail -n 1)
helm=$tools/helm
kustomize=$tools/kustomize

log "cargo build --profile $profile: prism-render and the fleet generator"
artifacts=$(cargo build --locked --profile "$profile" --bin prism-render --bench gen_fleet \
	--message-format=json-render-diagnostics)
executable() {
	grep -F "\"name\":\"$1\"" <<<"$artifacts" | grep -o '"executable":"[^"]*"' | tail -n 1 | cut -d'"' -f4
}
prism=$(executable prism-render)
gen=$(executable gen_fleet)
[[ -x $prism && -x $gen ]] || { log "error: no prism-render or gen_fleet executable from cargo"; exit 1; }

rm -rf "$results"
mkdir -p "$results"
tsv=$results/results.tsv
printf 'shards\ttool\tround\twall_s\tcpu_s\tmax_rss_kb\tobjects\toutput_bytes\n' >"$tsv"

{
	echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "prism-render: $("$prism" --version) ($profile profile; $(rustc --version))"
	echo "helm: $("$helm" version --short)   kustomize: $("$kustomize" version)"
} | tee "$results/machine.txt"

# Runs one tool on one fleet: appends a row to results.tsv.
measure() {
	local n=$1 tool=$2 round=$3 dir=$results/fleet-$1 out start end
	out=$dir/out-$tool.yaml
	start=$EPOCHREALTIME
	case $tool in
	prism-render) /usr/bin/time -f '%M %U %S' -o "$dir/time" "$prism" render "$dir/fleet" >"$out" ;;
	helm) /usr/bin/time -f '%M %U %S' -o "$dir/time" "$helm" template fleet benches/helm-fleet -f "$dir/helm-values.yaml" >"$out" ;;
	kustomize) /usr/bin/time -f '%M %U %S' -o "$dir/time" "$kustomize" build "$dir/kustomize" >"$out" ;;
	esac
	end=$EPOCHREALTIME
	read -r rss user sys <"$dir/time"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$tool" "$round" \
		"$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.4f", b - a}')" \
		"$(awk -v u="$user" -v s="$sys" 'BEGIN {printf "%.2f", u + s}')" \
		"$rss" "$(grep -c '^kind:' "$out")" "$(wc -c <"$out")" >>"$tsv"
}

for n in $sizes; do
	log "fleet of $n shards"
	"$gen" --out "$results/fleet-$n" --shards "$n" --kustomize
	toolset=(prism-render helm)
	((n <= kustomize_max)) && toolset+=(kustomize)
	for ((r = 1; r <= runs; r++)); do
		# Alternate: each round starts with the next tool.
		k=${#toolset[@]}
		for ((i = 0; i < k; i++)); do
			measure "$n" "${toolset[$(((r - 1 + i) % k))]}" "$r"
		done
	done
	# Same objects from every tool (tests/bench_fair.rs compares them in full).
	counts=$(awk -F'\t' -v n="$n" '$1 == n {print $7}' "$tsv" | sort -u | wc -l)
	if ((counts != 1)); then
		log "error: the tools rendered different numbers of objects for $n shards:"
		awk -F'\t' -v n="$n" '$1 == n {print "  " $2 ": " $7}' "$tsv" | sort -u >&2
		exit 1
	fi
done

# Medians per size and tool, and the ratios to prism-render.
report=$(awk -F'\t' '
	NR == 1 { next }
	{ key = $1 SUBSEP $2; n[key]++; wall[key, n[key]] = $4; cpu[key, n[key]] = $5; rss[key, n[key]] = $6
	  objects[key] = $7; bytes[key] = $8; if (!($1 in seen)) { seen[$1] = 1; sizes[++ns] = $1 } }
	function median(arr, key, count,   i, j, t, v) {
		for (i = 1; i <= count; i++) v[i] = arr[key, i] + 0
		for (i = 2; i <= count; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
		return count % 2 ? v[(count + 1) / 2] : (v[count / 2] + v[count / 2 + 1]) / 2
	}
	END {
		printf "%-7s %-13s %5s %10s %10s %9s %9s %9s %11s %9s %9s\n", "shards", "tool", "runs", "median s", "cpu s", "MiB RSS", "objects", "MiB out", "objects/s", "vs prism", "cpu vs"
		split("prism-render helm kustomize", tools, " ")
		for (s = 1; s <= ns; s++) {
			size = sizes[s]; base = median(wall, size SUBSEP "prism-render", n[size, "prism-render"])
			cpu_base = median(cpu, size SUBSEP "prism-render", n[size, "prism-render"])
			for (t = 1; t <= 3; t++) {
				key = size SUBSEP tools[t]; if (!(key in n)) continue
				m = median(wall, key, n[key])
				printf "%-7s %-13s %5d %10.3f %10.2f %9.1f %9d %9.1f %11.0f %8.1fx %8.1fx\n", size, tools[t], n[key], m, median(cpu, key, n[key]), median(rss, key, n[key]) / 1024, objects[key], bytes[key] / 1048576, objects[key] / m, m / base, (cpu_base > 0 ? median(cpu, key, n[key]) / cpu_base : 0)
			}
		}
	}' "$tsv")
echo
echo "median wall time of $runs alternating rounds; \"vs prism\" = median / prism-render's median"
echo "$report" | tee "$results/summary.txt"

largest=$(tr ' ' '\n' <<<"$sizes" | sort -n | tail -n 1)
echo
echo "prism-render peak memory, $largest shards: /usr/bin/time -v $prism render $results/fleet-$largest/fleet"
/usr/bin/time -v "$prism" render "$results/fleet-$largest/fleet" 2>"$results/time-v.txt" >/dev/null
grep -E 'Maximum resident set size|Elapsed \(wall clock\)' "$results/time-v.txt" | sed 's/^\s*/  /' | tee -a "$results/summary.txt"

# Peak memory against fleet size: prism-render alone, 3 runs per size, the median.
rss_tsv=$results/rss.tsv
printf 'shards\tobjects\toutput_bytes\twall_s\tcpu_s\tmax_rss_kb\n' >"$rss_tsv"
for n in ${rss_sizes//,/ }; do
	dir=$results/fleet-$n
	[[ -d $dir/fleet ]] || "$gen" --out "$dir" --shards "$n" 2>/dev/null
	for r in 1 2 3; do
		start=$EPOCHREALTIME
		/usr/bin/time -f '%M %U %S' -o "$dir/time" "$prism" render "$dir/fleet" >"$dir/out-rss.yaml"
		end=$EPOCHREALTIME
		read -r rss user sys <"$dir/time"
		printf '%s\t%s\t%s\t%s\t%s\n' "$(grep -c '^kind:' "$dir/out-rss.yaml")" "$(wc -c <"$dir/out-rss.yaml")" \
			"$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.3f", b - a}')" \
			"$(awk -v u="$user" -v s="$sys" 'BEGIN {printf "%.2f", u + s}')" "$rss"
	done | sort -t$'\t' -k5,5n | sed -n 2p | sed "s/^/$n\t/" >>"$rss_tsv"
	rm -f "$dir/out-rss.yaml"
done
echo
echo "prism-render peak RSS by fleet size (median of 3): $rss_tsv, plot $results/rss.svg"
column -t "$rss_tsv" | sed 's/^/  /' | tee -a "$results/summary.txt"
python3 benches/plot_rss.py "$rss_tsv" >"$results/rss.svg"

smallest=$(tr ' ' '\n' <<<"$sizes" | sort -n | head -n 1)
cold=$results/fleet-cold
"$gen" --out "$cold" --shards "$((smoke ? smallest : 10))" 2>/dev/null
cold_times() {
	local i start end
	for ((i = 0; i < cold_runs; i++)); do
		start=$EPOCHREALTIME
		"$@" >/dev/null
		end=$EPOCHREALTIME
		awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f\n", (b - a) * 1000}'
	done | sort -n | awk '{v[NR] = $1} END {printf "min %.1f ms, median %.1f ms, max %.1f ms (%d processes)\n", v[1], NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2, v[NR], NR}'
}
echo
echo "prism-render cold start ($((smoke ? smallest : 10))-shard fleet, a new process each time):"
echo "  render:    $(cold_times "$prism" render "$cold/fleet")" | tee -a "$results/summary.txt"
echo "  --version: $(cold_times "$prism" --version)" | tee -a "$results/summary.txt"
echo "  helm template (same fleet): $(cold_times "$helm" template fleet benches/helm-fleet -f "$cold/helm-values.yaml")" | tee -a "$results/summary.txt"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$results/machine.txt"
echo "results: $tsv"
