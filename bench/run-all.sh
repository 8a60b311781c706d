#!/usr/bin/env bash
# run-all.sh - every benchmark beside its baselines, in one run, one table.
#
#   bench/run-all.sh [--quick] [--reps N] [--only "nop handoff files memory echo hooks"]
#
#   --quick   short runs, a 256 MiB file, echo at 16 and 256 connections with
#             64-byte messages: under 5 minutes on this 2-core machine (once
#             the Debian packages are installed)
#   default   the full run: longer runs, a 1 GiB file, echo at 1, 16, 256 and
#             1000 connections with 64- and 4096-byte messages: under 30 min
#   --reps N  runs per implementation and case (default 3), interleaved
#             A B C A B C ...; the table shows medians
#   --only    run only these parts (the table still lists every row)
#
# In order: installs what is missing from Debian (cmake gcc make pkg-config
# liburing-dev libuv1-dev fio gnuplot-nox), builds build-bench/ in Release,
# runs the benchmarks, prints the table and writes, under bench/results/:
#   <stamp>.csv        raw results, one row per figure per run:
#                      timestamp,benchmark,case,impl,rep,metric,value
#   <stamp>.json       the same rows plus the table and the machine
#   echo-<stamp>.csv   run-echo.sh's own raw rows
#   echo-<stamp>.png   req/s and server CPU per request against connections,
#                      every server (gnuplot)
#   latest.md          the table with its notes, for the README (only a run
#                      of every part; an --only run writes <stamp>.md)
#
# Benchmarks (each program's header comment says exactly what it measures):
#   nop      bench/nop.c      tacio post+dequeue and 0 ns timers vs raw
#                             liburing NOPs, batch 1 and 32
#   handoff  bench/handoff.c  producer -> 1 or 2 consumer threads: tacio port,
#                             tacio pool callbacks (tacio_pool_submit; a work
#                             object) vs mutex+condvar queue vs libuv's pool
#   files    bench/files.c    4 KiB random reads, QD 32, page cache and
#                             O_DIRECT: tacio vs fio (io_uring engine; as
#                             given, and "fio-lean": batched, gtod_reduce)
#   memory   bench/memory.c   tacio bytes per pending receive, 100,000 pending
#   echo     bench/run-echo.sh  tacio echo server vs liburing, epoll, libuv;
#                             examples/echo-pool (server tacio-pool) vs the
#                             port-based examples/echo-server
# Hooks for what is not built yet: a later benchmark joins by being an
# executable bench/run-<name>.sh for name in https, verify, called
# as "run-<name>.sh [--quick] --reps N --stamp STAMP --out RAW.csv" and
# appending rows in the raw format above; its rows in the table (spec below)
# say "not yet built" until then. The epoll-backend echo row fills itself in
# once TACIO_BACKEND=epoll runs (run-echo.sh probes it); the pool-callback
# echo server is the run-echo.sh server "tacio-pool".
#
# Environment: TACIO_BENCH_BUILD=DIR builds in DIR instead of build-bench/;
# TACIO_BENCH_SRC=DIR configures that source tree instead of the repository
# (a clean export, when others edit the working tree); both are passed on to
# run-echo.sh.
#
# Pinning, where it makes numbers steadier (printed with the table):
#   nop      the one thread on CPU 1 (taskset)
#   handoff  1 consumer: producer CPU 0, consumer CPU 1 (pthread affinity;
#            a pool thread pins itself at its first callback); 2 consumers:
#            unpinned (three threads on two CPUs)
#   files    tacio and fio on CPU 1 (taskset; io_uring's workers inherit it)
#   memory   unpinned (nothing timed)
#   echo     server CPU 1, load generator CPU 0 (taskset)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
build=${TACIO_BENCH_BUILD:-$root/build-bench}
src=${TACIO_BENCH_SRC:-$root}
export TACIO_BENCH_BUILD=$build TACIO_BENCH_SRC=$src
bin="$build/bench"
results="$here/results"

quick=0
reps=3
only="nop handoff files memory echo hooks"
while (($#)); do
	case "$1" in
	--quick) quick=1 ;;
	--full) quick=0 ;;
	--reps)
		reps=${2:?--reps needs a number}
		shift
		;;
	--only)
		only=${2:?--only needs a list}
		shift
		;;
	-h | --help)
		sed -n '2,59p' "$0"
		exit 0
		;;
	*)
		echo "run-all.sh: unknown option $1 (try --help)" >&2
		exit 2
		;;
	esac
	shift
done
[[ "$reps" =~ ^[1-9][0-9]*$ ]] || { echo "run-all.sh: --reps wants a positive number" >&2; exit 2; }

if ((quick)); then
	mode=quick
	nop_s=0.5 nop_w=0.2
	# Sized so the whole quick run stays under 5 minutes on 2 CPUs (it took
	# 5m58s with 1 s floods, 2000 paced packets, 2 s file and 1.5 s echo runs).
	ho_s=0.75 ho_w=0.25 ho_samples=1000
	file_mb=256 file_s=1.5 file_w=0.3
	echo_args=(--quick --seconds 1.2 --warmup 0.3 --conns "16 256" --sizes "64")
	echo_conns="16 256" echo_sizes="64"
else
	mode=full
	nop_s=2 nop_w=0.5
	ho_s=3 ho_w=0.5 ho_samples=10000
	file_mb=1024 file_s=5 file_w=1
	# run-echo.sh --full with 3 s runs instead of its 5: 9 servers x 8 cases
	# x 3 reps is 216 runs, about 17 minutes, so the whole run stays under 30
	# (an estimate from the quick run's parts: not timed in full since the
	# verifier and pool servers joined).
	echo_args=(--full --seconds 3)
	echo_conns="1 16 256 1000" echo_sizes="64 4096"
fi
mem_count=100000

t_start=$SECONDS
progress() { printf '[%3dm%02ds] %s\n' $(((SECONDS - t_start) / 60)) $(((SECONDS - t_start) % 60)) "$*"; }
die() {
	echo "run-all.sh: $*" >&2
	exit 1
}
wants() { [[ " $only " == *" $1 "* ]]; }

# --- dependencies: install only what is missing ------------------------------------
ensure_deps() {
	local pkgs=() sudo=""

	command -v cmake >/dev/null || pkgs+=(cmake)
	command -v cc >/dev/null || pkgs+=(gcc libc6-dev)
	command -v make >/dev/null || pkgs+=(make)
	command -v pkg-config >/dev/null || pkgs+=(pkg-config)
	pkg-config --exists liburing 2>/dev/null || pkgs+=(liburing-dev)
	pkg-config --exists libuv 2>/dev/null || pkgs+=(libuv1-dev)
	command -v fio >/dev/null || pkgs+=(fio)
	command -v gnuplot >/dev/null || pkgs+=(gnuplot-nox)
	command -v taskset >/dev/null || pkgs+=(util-linux)
	((${#pkgs[@]})) || return 0

	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null || die "missing ${pkgs[*]}, and not root to install them"
		sudo=sudo
	fi
	progress "installing missing Debian packages: ${pkgs[*]}"
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null ||
		{ $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null; } ||
		die "apt-get install ${pkgs[*]} failed"
}

# --- build -----------------------------------------------------------------------------
targets=(bench-nop bench-handoff bench-files bench-memory echo-uring echo-epoll echo-libuv echo-load echo-server echo-pool)
build_note="Release build, -Werror"
build_all() {
	local log="$build/build.log"

	mkdir -p "$build"
	: >"$log"
	progress "building ${build#"$root"/}/ from ${src#"$root"/} (Release; log: ${log#"$root"/})"
	if cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DTACIO_WERROR=ON >>"$log" 2>&1 &&
		cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >>"$log" 2>&1; then
		return 0
	fi
	# The library is edited while benchmarks run: a warning elsewhere in the
	# tree must not stop the measurement, but it is said.
	build_note="Release build WITH WARNINGS ALLOWED: the tree did not build with -Werror (see build-bench/build.log)"
	progress "WARNING: the -Werror build failed; rebuilding with warnings allowed"
	cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DTACIO_WERROR=OFF >>"$log" 2>&1 ||
		{ tail -20 "$log" >&2; die "cmake configure failed (log: $log)"; }
	if ! cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" -- -k >>"$log" 2>&1; then
		build_note="$build_note; SOME TARGETS DID NOT BUILD"
		progress "WARNING: some targets did not build; their rows will say NO DATA"
		grep -m5 -E 'error' "$log" >&2 || true
	fi
	# Leave the cache as run-echo.sh and CI expect it.
	cmake -S "$src" -B "$build" -DTACIO_WERROR=ON >>"$log" 2>&1 || true
}

ensure_deps
build_all

# --- machine and pinning -----------------------------------------------------------------
if taskset -c 0 true 2>/dev/null && taskset -c 1 true 2>/dev/null; then
	pin1=(taskset -c 1)
	ho_pin=(--pin-producer 0 --pin-consumers 1)
	pin_note="nop: CPU 1; handoff 1 consumer: producer CPU 0, consumer CPU 1, 2 consumers unpinned; files: tacio and fio on CPU 1; memory: unpinned; echo: server CPU 1, load generator CPU 0"
else
	pin1=()
	ho_pin=()
	pin_note="WARNING: CPUs 0 and 1 are not both available: everything runs unpinned"
fi
kernel=$(uname -r)
ncpu=$(nproc)
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown)

mkdir -p "$results"
stamp=$(date +%Y%m%d-%H%M%S)
raw="$results/$stamp.csv"
echo "timestamp,benchmark,case,impl,rep,metric,value" >"$raw"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

progress "run-all $mode: $reps interleaved runs per implementation and case; kernel $kernel, $ncpu CPUs ($cpu_model)"
progress "pinning: $pin_note"

# --- running one case ----------------------------------------------------------------------
# Every k=v pair of a program's one output line becomes a raw row.
record() { # bench case impl rep line
	local kv
	for kv in $5; do
		[[ "$kv" == *=* ]] && echo "$stamp,$1,$2,$3,$4,${kv%%=*},${kv#*=}" >>"$raw"
	done
	return 0
}

run_case() { # bench case impl rep cmd...
	local b=$1 c=$2 i=$3 r=$4 out rc=0
	shift 4
	out=$("$@" 2>"$tmp/err") || rc=$?
	if ((rc == 0)) && [ -n "$out" ]; then
		record "$b" "$c" "$i" "$r" "status=ok $out"
		progress "$b $c $i (run $r/$reps): $out"
	elif ((rc == 77)); then
		record "$b" "$c" "$i" "$r" "status=skipped"
		progress "$b $c $i (run $r/$reps): skipped: $(tail -1 "$tmp/err")"
	else
		record "$b" "$c" "$i" "$r" "status=failed"
		progress "$b $c $i (run $r/$reps): FAILED (exit $rc): $(tail -3 "$tmp/err" | tr '\n' ' ')"
	fi
}

have() { # binary...
	local b
	for b; do
		[ -x "$bin/$b" ] || { progress "$b was not built: its rows will say NO DATA"; return 1; }
	done
}

# --- nop ---------------------------------------------------------------------------------------
bench_nop() {
	have bench-nop || return 0
	progress "nop: one thread, ${nop_s}s per run after ${nop_w}s warm-up"
	for batch in 1 32; do
		for ((rep = 1; rep <= reps; rep++)); do
			for impl in liburing tacio-post tacio-timer liburing-timeout; do
				run_case nop "b$batch" "$impl" "$rep" "${pin1[@]}" "$bin/bench-nop" --impl "$impl" \
					--batch "$batch" --seconds "$nop_s" --warmup "$nop_w"
			done
		done
	done
}

# --- handoff -----------------------------------------------------------------------------------
bench_handoff() {
	have bench-handoff || return 0
	progress "handoff: flood ${ho_s}s after ${ho_w}s warm-up, then $ho_samples paced packets"
	for n in 1 2; do
		local pin=()
		((n == 1)) && pin=("${ho_pin[@]}")
		for ((rep = 1; rep <= reps; rep++)); do
			for impl in mutex-cv libuv tacio pool pool-work; do
				run_case handoff "n$n" "$impl" "$rep" "$bin/bench-handoff" --impl "$impl" --consumers "$n" \
					--seconds "$ho_s" --warmup "$ho_w" --samples "$ho_samples" "${pin[@]}"
			done
		done
	done
}

# --- files ---------------------------------------------------------------------------------------
# fio: the parameters of the brief and fio's defaults otherwise (it submits
# each I/O as it is queued and times every one); fio-lean: the same plus
# batched submission and completion (32) and no per-I/O clock reads
# (gtod_reduce), the fastest fio we know to configure for this job.
fio_line() { # variant file mode size_mb seconds warmup -> one k=v line like bench-files
	local json="$tmp/fio.json" direct=0 runtime ramp extra=()
	[ "$1" = fio-lean ] && extra=(--iodepth_batch_submit=32 --iodepth_batch_complete_max=32 --gtod_reduce=1)
	shift
	[ "$2" = direct ] && direct=1
	[ "$2" = cached ] && "$bin/bench-files" --preread "$1"
	runtime=$(awk -v s="$4" 'BEGIN { printf "%dms", s * 1000 }')
	ramp=$(awk -v s="$5" 'BEGIN { printf "%dms", s * 1000 }')
	"${pin1[@]}" fio --name=randread --filename="$1" --ioengine=io_uring --rw=randread --bs=4k \
		--iodepth=32 --direct="$direct" --size="${3}m" --runtime="$runtime" --ramp_time="$ramp" \
		--time_based --norandommap --randrepeat=0 --invalidate=0 "${extra[@]}" \
		--output-format=json --output="$json" >/dev/null || return 1
	# The first "iops" of the job is its read side; cpu is over the job's runtime.
	awk '
	/"iops" :/ && iops == "" { v = $3; sub(/,$/, "", v); iops = v }
	/"usr_cpu" :/ { v = $3; sub(/,$/, "", v); usr = v }
	/"sys_cpu" :/ { v = $3; sub(/,$/, "", v); sys = v }
	END {
		if (iops + 0 <= 0) { print "fio: no iops in its output" > "/dev/stderr"; exit 1 }
		cpu = usr + sys
		printf "iops=%.0f cpu_pct=%.1f cpu_us_per_io=%.3f saturated=%s\n", iops, cpu,
			cpu / 100 / iops * 1e6, (cpu > 90 ? "cpu" : "device")
	}' "$json"
}

bench_files() {
	have bench-files || return 0
	local dir=${TACIO_BENCH_DATA_DIR:-$results} file modes=(cached)
	mkdir -p "$dir"
	file="$dir/randread-${file_mb}m.dat"
	progress "files: ${file_mb} MiB data file ${file#"$root"/} (real data, made once)"
	"$bin/bench-files" --create "$file" --size-mb "$file_mb" || die "cannot create $file"
	if "$bin/bench-files" --probe-direct "$file" 2>"$tmp/err"; then
		modes+=(direct)
	else
		progress "files: O_DIRECT refused here ($(tail -1 "$tmp/err")): direct rows say skipped"
		for impl in tacio fio fio-lean; do record files direct "$impl" 1 "status=skipped"; done
	fi
	progress "files: 4 KiB random reads, QD 32, ${file_s}s per run after ${file_w}s warm-up; fio --ioengine=io_uring with defaults, and fio-lean (batch 32, gtod_reduce)"
	for m in "${modes[@]}"; do
		for ((rep = 1; rep <= reps; rep++)); do
			run_case files "$m" tacio "$rep" "${pin1[@]}" "$bin/bench-files" --file "$file" --mode "$m" \
				--seconds "$file_s" --warmup "$file_w"
			run_case files "$m" fio "$rep" fio_line fio "$file" "$m" "$file_mb" "$file_s" "$file_w"
			run_case files "$m" fio-lean "$rep" fio_line fio-lean "$file" "$m" "$file_mb" "$file_s" "$file_w"
		done
	done
}

# --- memory --------------------------------------------------------------------------------------
bench_memory() {
	have bench-memory || return 0
	progress "memory: $mem_count pending receives, two shapes"
	for shape in udp queued; do
		for ((rep = 1; rep <= reps; rep++)); do
			run_case memory "$shape" tacio "$rep" "$bin/bench-memory" --shape "$shape" --count "$mem_count"
		done
	done
}

# --- echo ------------------------------------------------------------------------------------------
echo_csv="$results/echo-$stamp.csv"
bench_echo() {
	have echo-load echo-uring || return 0
	progress "echo: bench/run-echo.sh ${echo_args[*]} --reps $reps"
	"$here/run-echo.sh" --prebuilt "${echo_args[@]}" --reps "$reps" --out "$echo_csv" 2>&1 |
		sed 's/^/    /' || progress "echo: run-echo.sh failed"
	[ -s "$echo_csv" ] || return 0
	# Its rows, in the raw format: case c<conns>-s<size>, impl = server.
	awk -F, -v stamp="$stamp" 'NR > 1 {
		p = stamp ",echo,c" $2 "-s" $3 "," $4 "," $5 ","
		print p "status," ($13 == "ok" ? "ok" : "failed")
		if ($13 != "ok") next
		scpu = $10 / $6 * 100
		sat = ""
		if ($12 > 90) sat = "client"
		if (scpu > 90) sat = sat (sat == "" ? "" : "+") "server"
		if (sat == "") sat = "none"
		print p "rps," $7; print p "cpu_us_per_op," $11; print p "p50_us," $8
		print p "p99_us," $9; print p "client_cpu_pct," $12
		printf "%sserver_cpu_pct,%.1f\n", p, scpu
		print p "saturated," sat
	}' "$echo_csv" >>"$raw"
}

# --- hooks for what is not built yet --------------------------------------------------------------
bench_hooks() {
	local name
	for name in https; do
		if [ -x "$here/run-$name.sh" ]; then
			progress "$name: bench/run-$name.sh"
			local qa=()
			((quick)) && qa=(--quick)
			"$here/run-$name.sh" "${qa[@]}" --reps "$reps" --stamp "$stamp" --out "$raw" 2>&1 |
				sed 's/^/    /' || progress "$name: run-$name.sh failed"
		else
			progress "$name: not yet built (no bench/run-$name.sh)"
		fi
	done
}

for part in nop handoff files memory echo hooks; do
	wants "$part" && "bench_$part"
done

# --- the table -------------------------------------------------------------------------------------
spec="$tmp/spec"
{
	cat <<'EOF'
nop: post + dequeue, batch 1|nop|b1|ops_s|ops/s|hi|tacio-post|liburing|liburing|-|-|ns_per_op|ns
nop: post + dequeue, batch 32|nop|b32|ops_s|ops/s|hi|tacio-post|liburing|liburing|0.8|-|ns_per_op|ns
nop: 0 ns timer, batch 1|nop|b1|ops_s|ops/s|hi|tacio-timer|liburing liburing-timeout|liburing|-|-|ns_per_op|ns
nop: 0 ns timer, batch 32|nop|b32|ops_s|ops/s|hi|tacio-timer|liburing liburing-timeout|liburing|0.8|-|ns_per_op|ns
nop: 0 ns timer vs raw timeout, batch 32|nop|b32|ops_s|ops/s|hi|tacio-timer|liburing-timeout|liburing-timeout|-|-|ns_per_op|ns
handoff: throughput, 1 consumer|handoff|n1|ops_s|posts/s|hi|tacio|mutex-cv libuv|mutex-cv|2|-
handoff: throughput, 2 consumers|handoff|n2|ops_s|posts/s|hi|tacio|mutex-cv libuv|mutex-cv|2|-
handoff: post -> dequeue p50, 1 consumer|handoff|n1|p50_us|us|lo|tacio|mutex-cv libuv|libuv|1|-
handoff: post -> dequeue p50, 2 consumers|handoff|n2|p50_us|us|lo|tacio|mutex-cv libuv|libuv|1|-
handoff: post -> dequeue p99, 1 consumer|handoff|n1|p99_us|us|lo|tacio|mutex-cv libuv|libuv|-|-
handoff: post -> dequeue p99, 2 consumers|handoff|n2|p99_us|us|lo|tacio|mutex-cv libuv|libuv|-|-
handoff: pool callback (tacio_pool_submit) throughput, 1 consumer|handoff|n1|ops_s|posts/s|hi|pool|mutex-cv libuv tacio|mutex-cv|2|-
handoff: pool callback (tacio_pool_submit) throughput, 2 consumers|handoff|n2|ops_s|posts/s|hi|pool|mutex-cv libuv tacio|mutex-cv|2|-
handoff: pool post -> callback starts p50, 1 consumer|handoff|n1|p50_us|us|lo|pool|mutex-cv libuv tacio|libuv|1|-
handoff: pool post -> callback starts p50, 2 consumers|handoff|n2|p50_us|us|lo|pool|mutex-cv libuv tacio|libuv|1|-
handoff: pool post -> callback starts p99, 1 consumer|handoff|n1|p99_us|us|lo|pool|mutex-cv libuv tacio|libuv|-|-
handoff: pool post -> callback starts p99, 2 consumers|handoff|n2|p99_us|us|lo|pool|mutex-cv libuv tacio|libuv|-|-
handoff: pool work object (tacio_pool_work_submit) throughput, 1 consumer|handoff|n1|ops_s|posts/s|hi|pool-work|mutex-cv pool|mutex-cv|-|-
handoff: pool work object (tacio_pool_work_submit) throughput, 2 consumers|handoff|n2|ops_s|posts/s|hi|pool-work|mutex-cv pool|mutex-cv|-|-
files: 4K random read QD32, page cache|files|cached|iops|IOPS|hi|tacio|fio fio-lean|fio|0.9|-|cpu_us_per_io|us CPU/IO
files: 4K random read QD32, page cache, vs fio-lean|files|cached|iops|IOPS|hi|tacio|fio-lean|fio-lean|0.9|-|cpu_us_per_io|us CPU/IO
files: 4K random read QD32, O_DIRECT|files|direct|iops|IOPS|hi|tacio|fio fio-lean|fio|0.9|-|cpu_us_per_io|us CPU/IO
files: 4K random read QD32, O_DIRECT, vs fio-lean|files|direct|iops|IOPS|hi|tacio|fio-lean|fio-lean|0.9|-|cpu_us_per_io|us CPU/IO
memory: 100k pending UDP receives, all in the kernel|memory|udp|bytes_per_op|B/op|lo|tacio|-|abs|128|-|heap_bytes_per_op|B heap
memory: 100k pending receives, queued on 1000 streams|memory|queued|bytes_per_op|B/op|lo|tacio|-|abs|128|-|heap_bytes_per_op|B heap
EOF
	for size in $echo_sizes; do
		for conns in $echo_conns; do
			c="c$conns-s$size"
			all="echo-uring echo-epoll echo-libuv"
			if ((conns == 256)); then
				echo "echo $conns conns, $size B vs echo-uring|echo|$c|rps|req/s|hi|tacio|$all|echo-uring|0.95|-"
				echo "echo $conns conns, $size B, server CPU vs echo-uring|echo|$c|cpu_us_per_op|us/req|lo|tacio|$all|echo-uring|0.95|-"
				echo "echo $conns conns, $size B vs libuv|echo|$c|rps|req/s|hi|tacio|echo-libuv|echo-libuv|1.2|-"
				echo "echo $conns conns, $size B, server CPU vs libuv|echo|$c|cpu_us_per_op|us/req|lo|tacio|echo-libuv|echo-libuv|1.2|-"
				echo "echo $conns conns, $size B: 1 worker thread|echo|$c|rps|req/s|hi|tacio-1t|echo-uring|echo-uring|-|-|cpu_us_per_op|us/req"
				echo "echo $conns conns, $size B: workers exit every 1000 entries|echo|$c|rps|req/s|hi|tacio-churn|echo-uring|echo-uring|-|-|cpu_us_per_op|us/req"
				echo "echo $conns conns, $size B: epoll backend|echo|$c|rps|req/s|hi|tacio-epoll|echo-epoll|echo-epoll|-|not yet built (epoll backend)|cpu_us_per_op|us/req"
			else
				echo "echo $conns conns, $size B vs echo-uring|echo|$c|rps|req/s|hi|tacio|$all|echo-uring|-|-|cpu_us_per_op|us/req"
			fi
			# Issue 4: the server on pool-bound callbacks >= 0.9x the
			# port-based example, at every connection count, both figures.
			echo "echo $conns conns, $size B: pool callbacks (echo-pool) vs port (echo-server)|echo|$c|rps|req/s|hi|tacio-pool|tacio echo-uring|tacio|0.9|-|cpu_us_per_op|us/req"
			echo "echo $conns conns, $size B: pool callbacks, server CPU vs port|echo|$c|cpu_us_per_op|us/req|lo|tacio-pool|tacio|tacio|0.9|-"
			# Issue 5: verifier on >= 0.85x off.
			echo "echo $conns conns, $size B: verifier on (TACIO_VERIFY=1) vs off|echo|$c|rps|req/s|hi|tacio-verify|tacio|tacio|0.85|-|cpu_us_per_op|us/req"
		done
	done
	cat <<'EOF'
https: keep-alive req/s, ECDSA P-256|https|keepalive|rps|req/s|hi|tacio-httpd|nginx|nginx|1.0|-
https: full handshakes/s, ECDSA P-256|https|hs-ecdsa|rps|hs/s|hi|tacio-httpd|nginx|nginx|1.0|-|server_cpu_ms|server ms/hs
https: full handshakes/s, RSA-2048|https|hs-rsa|rps|hs/s|hi|tacio-httpd|nginx|nginx|1.0|-|server_cpu_ms|server ms/hs
https: full handshakes/s, required client cert, ECDSA|https|hs-ecdsa-cert|rps|hs/s|hi|tacio-httpd|nginx|nginx|-|-|server_cpu_ms|server ms/hs
https: full handshakes/s, required client cert, RSA-2048|https|hs-rsa-cert|rps|hs/s|hi|tacio-httpd|nginx|nginx|-|-|server_cpu_ms|server ms/hs
https: keep-alive req/s, tacio-httpd --shard-accept idle|https|keepalive|rps|req/s|hi|tacio-idle|nginx|nginx|1.0|-
https: full handshakes/s, ECDSA P-256, --shard-accept idle|https|hs-ecdsa|rps|hs/s|hi|tacio-idle|nginx|nginx|1.0|-
https: full handshakes/s, RSA-2048, --shard-accept idle|https|hs-rsa|rps|hs/s|hi|tacio-idle|nginx|nginx|1.0|-
https: full handshakes/s, required client cert, ECDSA, --shard-accept idle|https|hs-ecdsa-cert|rps|hs/s|hi|tacio-idle|nginx|nginx|-|-
https: full handshakes/s, required client cert, RSA-2048, --shard-accept idle|https|hs-rsa-cert|rps|hs/s|hi|tacio-idle|nginx|nginx|-|-
EOF
} >"$spec"

table="$tmp/table.md"
awk -F'|' -v json="$tmp/table.json" -f "$here/report.awk" "$spec" "$raw" >"$table"

legend="ratio = how many times as good as the baseline: tacio/baseline for throughput, baseline/tacio for CPU per operation, latency and bytes; so higher is better, and a target is met when ratio >= target. Server targets apply to both req/s and CPU per request. Figures are medians of $reps interleaved runs; a figure in parentheses is the second metric (ns per op, CPU per I/O or request, heap bytes). saturated: nop = the one thread's CPU; handoff = producer, or consumer (the producer found its 1024-packet window full >10% of the time, or a consumer >85% busy); files = cpu (the process >90% of one CPU) or device; echo = client (load generator >90% CPU), server (server >90% of one CPU), both, or none."
elapsed=$((SECONDS - t_start))

{
	echo "## Benchmarks ($mode run, $(date -u +%Y-%m-%d) UTC)"
	echo
	echo "Machine: $ncpu CPUs ($cpu_model), Linux $kernel. $build_note. Loopback only."
	echo "Pinning: $pin_note."
	echo "Produced by \`bench/run-all.sh$( ((quick)) && echo " --quick")\` in $((elapsed / 60))m$((elapsed % 60))s; raw results: bench/results/$stamp.csv and .json."
	echo
	cat "$table"
	echo
	echo "$legend"
	echo "memory: bytes_per_op is the resident-set growth when the receives are started, divided by their number, after the caller's records and buffers and the handles already exist (what is counted: bench/memory.c); handles are reported separately in the raw results (handle_bytes)."
} >"$tmp/latest.md"
# A partial run (--only) does not replace the full table.
table_md="$results/latest.md"
[ "$only" = "nop handoff files memory echo hooks" ] || table_md="$results/$stamp.md"
cp "$tmp/latest.md" "$table_md"

# --- JSON ------------------------------------------------------------------------------------------
json="$results/$stamp.json"
jesc() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"; }
{
	printf '{\n  "timestamp": %s,\n  "mode": %s,\n  "reps": %d,\n  "elapsed_s": %d,\n' \
		"$(jesc "$stamp")" "$(jesc "$mode")" "$reps" "$elapsed"
	printf '  "machine": {"cpus": %d, "cpu": %s, "kernel": %s},\n' "$ncpu" "$(jesc "$cpu_model")" "$(jesc "$kernel")"
	printf '  "build": %s,\n  "pinning": %s,\n  "legend": %s,\n' "$(jesc "$build_note")" "$(jesc "$pin_note")" "$(jesc "$legend")"
	printf '  "raw": [\n'
	awk -F, 'function q(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); return "\"" s "\"" }
	NR > 1 {
		v = ($7 ~ /^-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?$/) ? $7 + 0 : q($7)
		printf "%s    {\"benchmark\": %s, \"case\": %s, \"impl\": %s, \"rep\": %d, \"metric\": %s, \"value\": %s}", \
			(NR > 2 ? ",\n" : ""), q($2), q($3), q($4), $5, q($6), v
	}
	END { print "" }' "$raw"
	printf '  ],\n  "table": [\n'
	[ -f "$tmp/table.json" ] && sed 's/^/    /' "$tmp/table.json"
	printf '  ]\n}\n'
} >"$json"

# --- plot ------------------------------------------------------------------------------------------
png="$results/echo-$stamp.png"
plot_echo() {
	local sizes=() servers=() gp="$tmp/echo.gp" s sv col f first
	[ -s "$echo_csv" ] || { progress "no echo results: no plot"; return 0; }
	command -v gnuplot >/dev/null || { progress "gnuplot missing: no plot"; return 0; }
	# Medians per server, size and connection count: one data file per
	# (size, server), lines "conns rps cpu_us_per_rt".
	awk -F, -v dir="$tmp" '
	function median(k, n, i, j, t, a) {
		n = cnt[k]
		for (i = 1; i <= n; i++) a[i] = v[k, i]
		for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	NR > 1 && $13 == "ok" {
		k = $3 SUBSEP $4 SUBSEP $2
		v[k "r", ++cnt[k "r"]] = $7; v[k "c", ++cnt[k "c"]] = $11
		keys[k] = 1
	}
	END {
		for (k in keys) {
			split(k, p, SUBSEP)
			printf "%s %s %s\n", p[3], median(k "r"), median(k "c") > (dir "/plot-" p[1] "-" p[2] ".dat")
		}
	}' "$echo_csv"
	read -ra sizes <<<"$(awk -F, 'NR > 1 && !s[$3]++ { printf "%s ", $3 }' "$echo_csv")"
	read -ra servers <<<"$(awk -F, 'NR > 1 && !s[$4]++ { printf "%s ", $4 }' "$echo_csv")"
	for f in "$tmp"/plot-*.dat; do sort -n -o "$f" "$f"; done
	{
		echo "set terminal pngcairo size $((640 * ${#sizes[@]} + 260)),900 font 'sans,10'"
		echo "set output '$png'"
		echo "set multiplot layout 2,${#sizes[@]} title 'echo, $mode run $stamp: medians of $reps; server on CPU 1, load generator on CPU 0'"
		echo "set logscale x; set xlabel 'connections'; set grid; set key outside right top vertical"
		for col in 2 3; do
			for s in "${sizes[@]}"; do
				if ((col == 2)); then
					echo "set title 'req/s, $s-byte messages'; set ylabel 'round trips per second'; set yrange [0:*]"
				else
					echo "set title 'server CPU per request, $s-byte messages'; set ylabel 'us CPU per round trip'; set yrange [0:*]"
				fi
				printf 'plot '
				first=1
				for sv in "${servers[@]}"; do
					f="$tmp/plot-$s-$sv.dat"
					[ -s "$f" ] || continue
					((first)) || printf ', '
					printf "'%s' using 1:%d with linespoints lw 2 title '%s'" "$f" "$col" "$sv"
					first=0
				done
				echo
			done
		done
		echo "unset multiplot"
	} >"$gp"
	if gnuplot "$gp" 2>"$tmp/gp.err"; then
		progress "plot: ${png#"$root"/}"
	else
		progress "gnuplot failed: $(head -3 "$tmp/gp.err")"
	fi
}
plot_echo

echo
cat "$table_md"
echo
progress "done in $((elapsed / 60))m$((elapsed % 60))s; raw: ${raw#"$root"/}, ${json#"$root"/}; table: ${table_md#"$root"/}"
