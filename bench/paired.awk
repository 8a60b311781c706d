# paired.awk - paired ratios from bench/run-all.sh's raw CSV: for every run k
# of implementation A and run k of implementation B of the same benchmark and
# case (neighbours in the interleaving A B C A B C ...), the ratio A/B (or
# B/A for a cost), and the median of those. On a shared, noisy machine this
# is steadier than a ratio of medians: both runs of a pair saw the same load.
#
#   awk -F, -v a=pool -v b=mutex-cv -v metric=ops_s -v better=hi \
#       [-v bench=handoff] -f bench/paired.awk RAW.csv
#
# better=hi: ratio = A/B (throughput); better=lo: ratio = B/A (latency, CPU),
# so higher is better either way. Prints one line per case:
#   bench case metric A vs B: paired median R (n pairs; min .. max), medians A | B

function median(arr, n, i, j, t) {
	for (i = 2; i <= n; i++) {
		t = arr[i]
		for (j = i - 1; j >= 1 && arr[j] > t; j--) arr[j + 1] = arr[j]
		arr[j + 1] = t
	}
	if (n == 0) return 0
	return n % 2 ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
}

NR == 1 { next }
bench != "" && $2 != bench { next }
$6 == "status" { st[$2, $3, $4, $5] = $7; next }
$6 == metric && ($4 == a || $4 == b) {
	v[$2, $3, $4, $5] = $7
	if (!(($2, $3) in seen)) { seen[$2, $3] = 1; cases[++nc] = $2 SUBSEP $3 }
	if ($5 > maxrep) maxrep = $5
}
END {
	for (k = 1; k <= nc; k++) {
		split(cases[k], c, SUBSEP)
		n = 0; na = 0; nb = 0; lo = ""; hi = ""
		for (r = 1; r <= maxrep; r++) {
			ka = c[1] SUBSEP c[2] SUBSEP a SUBSEP r
			kb = c[1] SUBSEP c[2] SUBSEP b SUBSEP r
			if ((ka in v) && st[ka] == "ok") va[++na] = v[ka]
			if ((kb in v) && st[kb] == "ok") vb[++nb] = v[kb]
			if (!(ka in v) || !(kb in v) || st[ka] != "ok" || st[kb] != "ok") continue
			if (v[ka] <= 0 || v[kb] <= 0) continue
			x = better == "lo" ? v[kb] / v[ka] : v[ka] / v[kb]
			rs[++n] = x
			if (lo == "" || x < lo) lo = x
			if (hi == "" || x > hi) hi = x
		}
		ma = median(va, na); mb = median(vb, nb)
		if (n == 0)
			printf "%s %s %s %s vs %s: no pairs\n", c[1], c[2], metric, a, b
		else
			printf "%s %s %s %s vs %s: paired median %.2fx (%d pairs; %.2f .. %.2f), medians %g | %g\n",
			       c[1], c[2], metric, a, b, median(rs, n), n, lo, hi, ma, mb
		delete va; delete vb; delete rs
	}
}
