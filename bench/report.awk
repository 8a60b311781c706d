# report.awk - the one table of bench/run-all.sh, from its raw results.
#
#   awk -F'|' -v json=ROWS.json -f report.awk SPEC RAW.csv
#
# SPEC, one row of the table a line, fields separated by '|':
#   label|benchmark|case|metric|unit|better|tacio-impl|baselines|target-base|threshold|hook[|also|also-unit]
#     better       hi (throughput) or lo (cost: CPU per op, latency, bytes)
#     baselines    space-separated implementations shown in the baselines
#                  column, "-" for none
#     target-base  the baseline the ratio compares with; "abs" for a target
#                  on tacio's own figure (threshold in unit); "-" for no ratio
#     threshold    the target; "-" for none (the row is information only)
#     hook         what to say when there is no tacio data because the thing
#                  measured does not exist yet ("-" if it should exist)
#     also         a second metric shown in parentheses after each figure
# RAW.csv: timestamp,benchmark,case,impl,rep,metric,value (value may be text,
#   e.g. saturated=server; metric "status" is ok, failed or skipped per run).
#
# Figures are medians over the runs (the most frequent value for text). The
# ratio is how many times as good tacio is as the baseline: tacio/baseline for
# hi, baseline/tacio for lo; a relative target is met when ratio >= threshold,
# an absolute one when tacio's figure is on the right side of it. A missing
# figure is printed as such (NO DATA, skipped, not yet built), never dropped.
# Writes the markdown table to stdout and the same rows as JSON objects (one
# per line, comma-separated) to the file named by -v json=.

function num(v) { return v ~ /^-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?$/ }

function jstr(s) {
	gsub(/\\/, "\\\\", s)
	gsub(/"/, "\\\"", s)
	return "\"" s "\""
}

function jnum(v) { return num(v) ? v + 0 : "null" }

# Median of the numeric values, or the most frequent text value; "" if none.
function figure(b, c, i, m, n, k, a, t, j, x, best, bestn, cnt2) {
	k = b SUBSEP c SUBSEP i SUBSEP m
	n = cnt[k]
	if (n == 0)
		return ""
	if (!isnum[k]) {
		bestn = 0
		for (j = 1; j <= n; j++)
			cnt2[vals[k, j]]++
		for (t in cnt2)
			if (cnt2[t] > bestn) { best = t; bestn = cnt2[t] }
		return best
	}
	for (j = 1; j <= n; j++)
		a[j] = vals[k, j] + 0
	for (j = 2; j <= n; j++) {
		t = a[j]
		for (x = j - 1; x >= 1 && a[x] > t; x--)
			a[x + 1] = a[x]
		a[x + 1] = t
	}
	if (n % 2)
		return a[(n + 1) / 2]
	return (a[n / 2] + a[n / 2 + 1]) / 2
}

# A figure, with the row's second metric in parentheses when it has one.
function fig2(b, c, i, m, also, aunit, v) {
	v = fmt(figure(b, c, i, m))
	if (also != "" && also != "-" && figure(b, c, i, also) != "")
		v = v " (" fmt(figure(b, c, i, also)) " " aunit ")"
	return v
}

function fmt(v, a) {
	if (v == "")
		return "n/a"
	if (!num(v))
		return v
	a = v < 0 ? -v : v
	if (a >= 1e6) return sprintf("%.2fM", v / 1e6)
	if (a >= 1e4) return sprintf("%.1fk", v / 1e3)
	if (a >= 100) return sprintf("%.0f", v)
	if (a >= 1) return sprintf("%.2f", v)
	return sprintf("%.3f", v)
}

# "" when every run was ok; else a note such as "1 of 3 runs failed".
function run_note(b, c, i, k, n) {
	k = b SUBSEP c SUBSEP i
	n = st_ok[k] + st_failed[k] + st_skipped[k]
	if (st_failed[k] > 0)
		return sprintf("%s: %d of %d runs failed", i, st_failed[k], n)
	return ""
}

# Two decimals, or three where two would round a miss up to the target.
function rfmt(r, thr, t) {
	t = sprintf("%.2f", r)
	if (num(thr) && t + 0 >= thr + 0 && r < thr + 0)
		t = sprintf("%.3f", r)
	return t
}

function cell(s) {
	gsub(/\|/, "/", s)
	return s
}

NR != FNR && FNR == 1 { next } # the CSV header

NR == FNR {
	if ($0 ~ /^[ \t]*(#|$)/)
		next
	nspec++
	for (f = 1; f <= 13; f++)
		spec[nspec, f] = $f
	next
}

{
	# The raw CSV: split on commas ourselves (FS is '|' for the spec).
	split($0, r, ",")
	b = r[2]; c = r[3]; i = r[4]; m = r[6]; v = r[7]
	if (m == "status") {
		k = b SUBSEP c SUBSEP i
		if (v == "ok") st_ok[k]++
		else if (v == "skipped") st_skipped[k]++
		else st_failed[k]++
		next
	}
	k = b SUBSEP c SUBSEP i SUBSEP m
	if (!(k in isnum))
		isnum[k] = 1
	if (!num(v))
		isnum[k] = 0
	vals[k, ++cnt[k]] = v
}

END {
	print "| benchmark | tacio | baselines | ratio | target | result | saturated |"
	print "|---|---|---|---|---|---|---|"
	first = 1
	for (s = 1; s <= nspec; s++) {
		label = spec[s, 1]; b = spec[s, 2]; c = spec[s, 3]; m = spec[s, 4]
		unit = spec[s, 5]; better = spec[s, 6]; ti = spec[s, 7]
		nb = spec[s, 8] == "-" ? 0 : split(spec[s, 8], bases, " ")
		tb = spec[s, 9]; thr = spec[s, 10]; hook = spec[s, 11]
		also = spec[s, 12]; aunit = spec[s, 13]

		tv = figure(b, c, ti, m)
		bl = ""
		jb = ""
		for (j = 1; j <= nb; j++) {
			bv[j] = figure(b, c, bases[j], m)
			bl = bl (j > 1 ? ", " : "") bases[j] " " fig2(b, c, bases[j], m, also, aunit)
			jb = jb (j > 1 ? ", " : "") jstr(bases[j]) ": " jnum(bv[j])
		}
		if (nb == 0)
			bl = "-"

		ratio = ""
		rtxt = "-"
		ttxt = "-"
		if (tb != "-" && tb != "abs") {
			base = figure(b, c, tb, m)
			if (num(tv) && num(base) && tv > 0 && base > 0) {
				ratio = (better == "hi") ? tv / base : base / tv
				rtxt = rfmt(ratio, thr) "x vs " tb
			}
			if (thr != "-")
				ttxt = ">= " thr "x"
		} else if (tb == "abs") {
			ttxt = (better == "lo" ? "<= " : ">= ") thr " " unit
		}

		k = b SUBSEP c SUBSEP ti
		if (tv == "" && hook != "-") {
			result = "not yet built"
			rtxt = hook
		} else if (tv == "" && st_skipped[k] > 0 && st_ok[k] == 0) {
			result = "skipped"
		} else if (tv == "" || (tb != "-" && tb != "abs" && ratio == "")) {
			result = "NO DATA"
		} else if (tb == "-" || thr == "-") {
			result = "info"
		} else if (tb == "abs") {
			result = (better == "lo" ? tv <= thr + 0 : tv >= thr + 0) ? "met" : "NOT MET"
		} else {
			result = (ratio >= thr + 0) ? "met" : "NOT MET"
		}
		note = run_note(b, c, ti)
		for (j = 1; j <= nb; j++) {
			n2 = run_note(b, c, bases[j])
			if (n2 != "")
				note = note (note == "" ? "" : "; ") n2
		}
		if (note != "")
			result = result " (" note ")"

		sat = ""
		st = figure(b, c, ti, "saturated")
		if (st != "" && st != "n/a")
			sat = ti ": " st
		if (tb != "-" && tb != "abs") {
			st = figure(b, c, tb, "saturated")
			if (st != "" && st != "n/a")
				sat = sat (sat == "" ? "" : "; ") tb ": " st
		}
		if (sat == "")
			sat = "-"

		printf "| %s (%s) | %s | %s | %s | %s | %s | %s |\n", cell(label), unit,
		       fig2(b, c, ti, m, also, aunit),
		       cell(bl), cell(rtxt), ttxt, result, cell(sat)
		if (json != "") {
			printf "%s{\"label\": %s, \"benchmark\": %s, \"case\": %s, \"metric\": %s, \"unit\": %s, " \
			       "\"better\": %s, \"tacio_impl\": %s, \"tacio\": %s, \"baselines\": {%s}, " \
			       "\"target_baseline\": %s, \"threshold\": %s, \"ratio\": %s, \"result\": %s, " \
			       "\"saturated\": %s}\n",
			       first ? "" : ",", jstr(label), jstr(b), jstr(c), jstr(m), jstr(unit),
			       jstr(better), jstr(ti), num(tv) ? tv + 0 : (tv == "" ? "null" : jstr(tv)),
			       jb, jstr(tb), jnum(thr), ratio == "" ? "null" : sprintf("%.4f", ratio),
			       jstr(result), jstr(sat) > json
			first = 0
		}
	}
}
