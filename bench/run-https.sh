#!/usr/bin/env bash
# run-https.sh - tacio-httpd against nginx (Debian's), same certificates, same machine.
#
#   bench/run-https.sh [--quick] [--reps N] [--stamp STAMP] [--out RAW.csv]
#
# Cases (each run interleaved tacio-httpd, tacio-httpd --shard-accept idle, nginx, ...,
# medians of --reps):
#   keepalive       wrk, 32 keep-alive connections, GET /healthz (3 bytes), ECDSA P-256
#   hs-ecdsa        full TLS 1.3 handshakes/s: openssl s_time -new, one process per CPU
#   hs-rsa          the same with an RSA-2048 server key
#   hs-ecdsa-cert   the same as hs-ecdsa with a required client certificate (both servers
#                   verify it against the development CA)
#   hs-rsa-cert     the same as hs-rsa with a required client certificate (RSA-2048 too)
# The s_time clients run without default CA locations (see handshakes()).
# For the handshake cases the servers' own CPU time (utime + stime of every server process,
# /proc) is also read, and printed as milliseconds of server CPU per handshake: the clients
# share the CPUs, so a rate alone mixes the server's cost with theirs. The clients' CPU time
# (since 2026-12-07, metric client_cpu_ms) gives, for the client-certificate mode, the
# ratio a server with no extra cost for the certificate would reach on this machine.
# Servers: tacio-httpd --threads <CPUs> (its default: one shard, a pool of one thread, per
# CPU, each bound to its CPU and given the connections that CPU received, by hash while
# they come in on too few CPUs: docs/http.md "Shards"), the same with --shard-accept idle
# (the default until 2026-12-07: the shards share the listening socket and the free one
# takes each new connection), nginx with worker_processes <CPUs> (1 per core),
# access logs off, both on 127.0.0.1 on ports bound at run time.
#
# Appends rows "timestamp,benchmark,case,impl,rep,metric,value" (benchmark https, impl
# tacio-httpd, tacio-idle or nginx, metric rps, and for handshakes also server_cpu_ms; on
# 2026-12-04 and 2026-12-07 (before the default changed) a tacio-cpu impl was
# --shard-accept cpu in place of tacio-idle; from
# 2026-12-03 to 2026-12-04 a tacio-1pool impl was --shards 1 in its place; until
# 2026-12-03 the default was one pool
# and tacio-shards named --shards <CPUs>) to --out (the run-all.sh raw format) and prints a
# table with the ratios tacio/nginx (of the medians, and "paired": the median over reps of run k
# of one against run k of the other, which both saw the same load) and, for the
# client-certificate mode, tacio's own
# hs-ecdsa-cert / hs-ecdsa and hs-rsa-cert / hs-rsa (target: >= 0.8), of the medians and
# paired (each rep runs the two cases back to back, since 2026-12-07), with nginx's own for
# comparison, and the same ratio of server CPU per handshake (the server's own capacity).
#
# Installs from Debian when missing, and says so: nginx (its service start is
# suppressed with a temporary policy-rc.d, so it never listens on port 80) and wrk.
# Builds tacio-httpd in build-https (TACIO_HTTPS_BENCH_BUILD=DIR to change).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
quick=0 reps=3 stamp=$(date +%Y%m%d-%H%M%S) out=""
while (($#)); do
	case $1 in
	--quick) quick=1 ;;
	--reps) reps=$2; shift ;;
	--stamp) stamp=$2; shift ;;
	--out) out=$2; shift ;;
	*) echo "usage: $0 [--quick] [--reps N] [--stamp S] [--out RAW.csv]" >&2; exit 2 ;;
	esac
	shift
done
dur=5
((quick)) && dur=2
ncpu=$(nproc)
build=${TACIO_HTTPS_BENCH_BUILD:-$root/build-https}

# --- dependencies ---------------------------------------------------------------------------------
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
need=()
[ -x "$nginx_bin" ] || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
command -v openssl >/dev/null || need+=(openssl)
command -v python3 >/dev/null || need+=(python3)
if ((${#need[@]})); then
	echo "run-https.sh: installing from Debian: ${need[*]}"
	made_policy=0
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		made_policy=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/dev/null ||
		{ apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/dev/null; }
	((made_policy)) && rm -f /usr/sbin/policy-rc.d
	nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
fi

if [ ! -f "$build/CMakeCache.txt" ]; then
	cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" -j"$ncpu" --target tacio-httpd >/dev/null
httpd="$build/tools/tacio-httpd/tacio-httpd"

tmp=$(mktemp -d)
srv=""
cleanup() {
	[ -n "$srv" ] && kill "$srv" 2>/dev/null || true
	[ -f "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid")" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# The certificates: tacio-httpd's development sets (ECDSA and RSA), made once here.
for kt in ec rsa; do
	"$httpd" --listen https://127.0.0.1:0/ --pki-dir "$tmp/pki-$kt" --pki-key "$kt" \
		--port-file "$tmp/p" --log none >/dev/null 2>&1 &
	p=$!
	for _ in $(seq 200); do [ -s "$tmp/p" ] && break; sleep 0.05; done
	kill "$p"; wait "$p" 2>/dev/null || true
	rm -f "$tmp/p"
done

# --- servers -----------------------------------------------------------------------------------------
start_tacio() { # kt mode shards [more flags] -> sets port
	rm -f "$tmp/tp"
	"$httpd" --listen https://127.0.0.1:0/ --pki-dir "$tmp/pki-$1" --client-cert "$2" \
		--threads "$ncpu" --shards "$3" "${@:4}" --log none --port-file "$tmp/tp" >/dev/null 2>"$tmp/tacio.err" &
	srv=$!
	for _ in $(seq 200); do [ -s "$tmp/tp" ] && break; sleep 0.05; done
	port=$(cat "$tmp/tp")
	pids=$srv
}

start_nginx() { # kt mode -> sets port
	port=$(free_port)
	local d="$tmp/pki-$1" verify=""
	[ "$2" = required ] && verify="ssl_verify_client on; ssl_client_certificate $d/ca.pem; ssl_verify_depth 4;"
	mkdir -p "$tmp/ng"
	cat >"$tmp/ng/nginx.conf" <<-EOF
		worker_processes $ncpu;
		pid $tmp/nginx.pid;
		error_log $tmp/ng/error.log;
		events { worker_connections 4096; }
		http {
		  access_log off;
		  client_body_temp_path $tmp/ng; proxy_temp_path $tmp/ng; fastcgi_temp_path $tmp/ng;
		  uwsgi_temp_path $tmp/ng; scgi_temp_path $tmp/ng;
		  keepalive_requests 1000000;
		  server {
		    listen 127.0.0.1:$port ssl;
		    ssl_certificate $d/server-chain.pem;
		    ssl_certificate_key $d/server.key;
		    ssl_protocols TLSv1.2 TLSv1.3;
		    $verify
		    location /healthz { return 200 "ok\n"; }
		  }
		}
	EOF
	"$nginx_bin" -c "$tmp/ng/nginx.conf" -p "$tmp/ng" -e "$tmp/ng/error.log" 2>>"$tmp/ng/start.err"
	for _ in $(seq 100); do [ -s "$tmp/nginx.pid" ] && break; sleep 0.05; done
	srv=$(cat "$tmp/nginx.pid")
	for _ in $(seq 100); do [ "$(pgrep -c -P "$srv")" -ge "$ncpu" ] && break; sleep 0.05; done
	pids="$srv $(pgrep -P "$srv" | tr '\n' ' ')"
}

# CPU ticks used so far by the server's processes (utime + stime).
server_ticks() {
	local p t=0 u s
	for p in $pids; do
		read -r u s < <(awk '{ print $14, $15 }' "/proc/$p/stat" 2>/dev/null || echo "0 0")
		t=$((t + u + s))
	done
	echo "$t"
}
hz=$(getconf CLK_TCK)

stop_server() { # impl
	if [ "$1" = nginx ]; then
		kill "$srv" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$srv" 2>/dev/null || break; sleep 0.05; done
		rm -f "$tmp/nginx.pid"
	else
		kill -TERM "$srv" 2>/dev/null || true
		wait "$srv" 2>/dev/null || true
	fi
}

# --- load ----------------------------------------------------------------------------------------------
keepalive() { # -> req/s
	wrk -t1 -c32 -d"${dur}s" "https://127.0.0.1:$port/healthz" 2>/dev/null |
		awk '/^Requests\/sec:/ { print $2 }'
}

handshakes() { # kt withcert -> "handshakes/s server-CPU-ms client-CPU-ms" (per handshake), one s_time per CPU
	local d="$tmp/pki-$1" certargs=() i st=() t0 t1 c0 c1 cl
	# No default CA locations for the clients: s_time does not verify the server, but
	# libssl still checks its chain, and with the defaults every handshake walked
	# /usr/lib/ssl/certs through OpenSSL's directory store, and once more in
	# client-certificate mode to complete the client's own chain: 0.26 and 0.42 ms of
	# client CPU per handshake (the servers' whole handshake is 0.4-0.6), on the CPUs
	# the servers share (until 2026-12-07 the clients ran with the defaults).
	certargs=(-no-CAfile -no-CApath -no-CAstore)
	[ "$2" = 1 ] && certargs+=(-cert "$d/client-chain.pem" -key "$d/client.key")
	c0=$(server_ticks)
	t0=$(date +%s.%N)
	# The clients in a subshell that, once it has waited for them, reads its
	# children's CPU time (cutime + cstime of /proc/<subshell>/stat).
	cl=$(
		for i in $(seq "$ncpu"); do
			openssl s_time -connect "127.0.0.1:$port" -new -time "$dur" "${certargs[@]}" \
				>"$tmp/st.$i" 2>&1 &
			st+=($!)
		done
		wait "${st[@]}" 2>/dev/null || true
		read -r f </proc/$BASHPID/stat # read here: in a pipeline BASHPID names the child
		read -r -a f <<<"${f##*) }"
		echo $((f[13] + f[14]))
	)
	t1=$(date +%s.%N)
	c1=$(server_ticks)
	# s_time rounds its "real seconds" to whole seconds: time the runs here.
	cat "$tmp"/st.* | awk -v t="$(python3 -c "print($t1 - $t0)")" -v c=$((c1 - c0)) -v cl="${cl:-0}" -v hz="$hz" \
		'/connections in [0-9.]+ real seconds/ { n += $1 }
		END { if (t > 0 && n > 0) printf "%.1f %.3f %.3f\n", n / t, 1000 * c / hz / n, 1000 * cl / hz / n; else print "0 0 0" }'
	rm -f "$tmp"/st.*
}

row() { # case impl rep value [server-cpu-ms client-cpu-ms]
	[ -n "$out" ] && echo "$stamp,https,$1,$2,$3,rps,$4" >>"$out"
	[ -n "$out" ] && [ -n "${5:-}" ] && echo "$stamp,https,$1,$2,$3,server_cpu_ms,$5" >>"$out"
	[ -n "$out" ] && [ -n "${6:-}" ] && echo "$stamp,https,$1,$2,$3,client_cpu_ms,$6" >>"$out"
	echo "$1 $2 $3 $4 ${5:-0} ${6:-0}" >>"$tmp/results"
}

# Each rep runs every impl on every case given, in turn: cases compared with each other
# (a client-certificate case and its server-auth one) see the same drift of the machine.
run_cases() { # "case kt mode kind"...
	local r impl spec c kt mode kind v cpu ccpu
	for r in $(seq "$reps"); do
		for impl in tacio-httpd tacio-idle nginx; do
			for spec in "$@"; do
				read -r c kt mode kind <<<"$spec"
				case $impl in
				nginx) start_nginx "$kt" "$mode" ;;
				tacio-httpd) start_tacio "$kt" "$mode" "$ncpu" ;;
				tacio-idle) start_tacio "$kt" "$mode" "$ncpu" --shard-accept idle ;;
				esac
				cpu="" ccpu=""
				case $kind in
				ka) v=$(keepalive) ;;
				hs) read -r v cpu ccpu < <(handshakes "$kt" 0) ;;
				hsc) read -r v cpu ccpu < <(handshakes "$kt" 1) ;;
				esac
				stop_server "$impl"
				row "$c" "$impl" "$r" "${v:-0}" "$cpu" "$ccpu"
			done
		done
	done
}

echo "https: $(openssl version); nginx $("$nginx_bin" -v 2>&1 | sed 's/.*nginx\///'); $ncpu CPUs; ${dur}s runs x $reps"
run_cases "keepalive ec on-demand ka"
run_cases "hs-ecdsa ec none hs" "hs-ecdsa-cert ec required hsc"
run_cases "hs-rsa rsa none hs" "hs-rsa-cert rsa required hsc"

awk '
function median(list,   n, a, i, j, t) {
	n = split(list, a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ v[$1, $2] = v[$1, $2] " " $4; cpu[$1, $2] = cpu[$1, $2] " " $5; ccpu[$1, $2] = ccpu[$1, $2] " " $6; cases[$1] = 1; one[$1, $2, $3] = $4 }
# The median over reps of case b against case a, same impl, run k (adjacent in time).
function own(b, a, impl,   r, list) {
	list = ""
	for (r = 1; (a, impl, r) in one; r++)
		if (one[a, impl, r] > 0 && ((b, impl, r) in one))
			list = list " " one[b, impl, r] / one[a, impl, r]
	return list == "" ? 0 : median(list)
}
# The median of run k of impl against run k of nginx: both saw the same load.
function paired(c, impl,   r, list) {
	list = ""
	for (r = 1; (c, "nginx", r) in one; r++)
		if (one[c, "nginx", r] > 0 && ((c, impl, r) in one))
			list = list " " one[c, impl, r] / one[c, "nginx", r]
	return list == "" ? 0 : median(list)
}
END {
	printf "%-16s %12s %12s %12s %9s %9s %9s %9s   %s\n", "case", "tacio-httpd", "idle", "nginx", "ratio",
		"paired", "idle", "paired", "server CPU ms/handshake: tacio-httpd, idle, nginx"
	split("keepalive hs-ecdsa hs-rsa hs-ecdsa-cert hs-rsa-cert", order, " ")
	for (k = 1; k <= 5; k++) {
		c = order[k]
		if (!(c in cases)) continue
		t = median(v[c, "tacio-httpd"]); s = median(v[c, "tacio-idle"]); n = median(v[c, "nginx"])
		m[c] = t; ms[c] = s; mn[c] = n
		ct[c] = median(cpu[c, "tacio-httpd"]); cs[c] = median(cpu[c, "tacio-idle"]); cn[c] = median(cpu[c, "nginx"])
		printf "%-16s %12.0f %12.0f %12.0f %8.2fx %8.2fx %8.2fx %8.2fx", c, t, s, n, (n > 0 ? t / n : 0),
			paired(c, "tacio-httpd"), (n > 0 ? s / n : 0), paired(c, "tacio-idle")
		if (c != "keepalive") printf "   %.3f, %.3f, %.3f", ct[c], cs[c], cn[c]
		printf "  (target >= 1.0x)\n"
	}
	split("ecdsa rsa", kts, " ")
	for (k = 1; k <= 2; k++) {
		a = "hs-" kts[k]; b = a "-cert"
		if (!(m[a] > 0 && ms[a] > 0 && (b in cases))) continue
		printf "client-certificate mode, %s / %s: rate: tacio-httpd %.2f (paired %.2f), idle %.2f (%.2f), nginx %.2f (%.2f); server CPU per handshake (own %s / %s): tacio-httpd %.2f, idle %.2f, nginx %.2f (target >= 0.80)\n",
			b, a, m[b] / m[a], own(b, a, "tacio-httpd"), ms[b] / ms[a], own(b, a, "tacio-idle"),
			mn[b] / mn[a], own(b, a, "nginx"), a, b,
			(ct[b] > 0 ? ct[a] / ct[b] : 0), (cs[b] > 0 ? cs[a] / cs[b] : 0), (cn[b] > 0 ? cn[a] / cn[b] : 0)
		# Clients and server share the CPUs, so the rate is set by their sum: even a
		# server with no extra cost for the certificate reaches only
		# (server + client, own) / (server own + client with certificate).
		ka = median(ccpu[a, "tacio-httpd"]); kb = median(ccpu[b, "tacio-httpd"])
		if (kb > 0)
			printf "  clients of tacio-httpd, CPU per handshake %s %.3f, %s %.3f ms: a server with no extra cost would reach %.2f\n",
				a, ka, b, kb, (ct[a] + ka) / (ct[a] + kb)
	}
}' "$tmp/results"
