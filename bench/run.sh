#!/usr/bin/env bash
# Benchmark kit: the service against a bare net/http baseline, measured in the
# same run on the same machine, printed as one markdown table (issue 6).
#
# Usage: ./bench/run.sh     (from anywhere; about 7 minutes with the defaults)
#        DURATION=3s REPS=1 ./bench/run.sh          a quick look (about 1 minute)
#        SCALE=1000000 SECRETS_FOR_RSS=100000 ./bench/run.sh   every target of issue 6
#        STORE=postgres POSTGRES_URL=postgres://user:pw@127.0.0.1/postgres ./bench/run.sh
#        AUDIT_AB=1 ./bench/run.sh                   issue 5: audit on against off, alternating
#        WEBHOOK_AB=1 ./bench/run.sh                 issue 14: PUT with one webhook subscription against none
#        BEFORE=main ./bench/run.sh                  a refactor: this tree against a git rev, alternating
#
# What it does: builds the service, a baseline server (bench/baseline: the
# shape of ../shared/bench/ceiling, no storage, no crypto) and a seeder
# (bench/seed); starts the service on a fresh data directory with its
# production defaults (`keys init`, `serve`, an API key per tenant from
# `apikey create`), seeds it, and drives both with wrk (-t1 --latency):
#   baseline GET  the baseline's GET /api/t1/secrets/k1
#   GET value     GET /api/t1/secrets/k1, a 24-byte value
#   GET list      GET /api/list/secrets, a tenant with 1,000 keys
#   PUT new key   a key never written before on every request, body
#                 {"value":"value-0123456789abcdef"}, Content-Type application/json
#   DELETE existing key  before each run the seeder writes a pool of keys (2x
#                 the fastest write rate seen x the duration, + 1,000) and
#                 every request deletes a different one of them; a run that
#                 gets through its pool is discarded and rerun with a bigger
#                 one, so deletes of absent keys (also 204) are not measured
# each at 32 and 1 connections, REPS runs each. Baseline GET and GET value
# runs alternate (baseline, service, baseline, ...), so that the machine's
# drift hits both alike. The table shows medians, p50 and p99 in ms, non-2xx
# counts, and the ratio to the baseline's GET req/s at the same connection
# count (for list, PUT and DELETE too: issue 6's targets are defined so), then
# the service's VmRSS after the GET load (with its anonymous and file-backed
# parts: bbolt's memory-mapped file counts in RSS) and the git commit measured
# (`-dirty` when the working tree differs from it: the tree is what is built).
# It asserts nothing and never runs in CI. Every process it starts is stopped
# and its temporary directories removed when it exits, however it exits.
#
# Environment (all optional):
#   DURATION=10s REPS=3   wrk -d, and runs per case (the table shows medians)
#   THREADS=1             wrk -t
#   RESULTS=DIR           where raw wrk outputs, logs, summary.tsv and table.md
#                         go (default: a new directory under $TMPDIR, printed)
#   STORE=postgres        the PostgreSQL store (`serve --store postgres`); needs
#                         POSTGRES_URL of a role with CREATEDB: each service
#                         instance gets a new database, dropped at exit.
#                         POSTGRES_CREATE_DB=0 uses POSTGRES_URL's database as it
#                         is: it must be empty (each run makes a new master key,
#                         which a used database refuses), and it serves one
#                         instance only, so not with SCALE or SECRETS_FOR_RSS
#   SCALE=1000000         also a second instance holding SCALE secrets over
#                         SCALE/100 tenants: its GET runs alternate with the
#                         first instance's (flat cost), plus a random-key GET on
#                         both; then the time from process start to the first
#                         200 on GET after a restart (REPS restarts)
#   SECRETS_FOR_RSS=100000  also a fresh instance that is written N secrets
#                         (1,000 per tenant), serves the GET load, reports RSS
#   AUDIT_AB=1            also a second instance, noaudit: the same serve flags
#                         with `--audit-sink off` appended, seeded the same way;
#                         its GET value and PUT new key runs alternate with the
#                         first instance's (rows "... (audit off)"), and a
#                         second table, "Audit cost", gives per case audit on
#                         and off req/s, their ratio and the cost (1 - ratio;
#                         issue 5's target: at most 20% at default durability).
#                         About 4 more minutes with the defaults. Not with
#                         POSTGRES_CREATE_DB=0 (two instances)
#   WEBHOOK_AB=1          also a second instance, webhook: the same serve flags
#                         plus `--webhook-allow-private --webhook-allow-insecure`,
#                         with one subscription (`webhook add --tenant put
#                         --events secret.updated`) delivering to a receiver on
#                         loopback (`seed receiver`: verifies every signature,
#                         answers 204, counts); its PUT new key runs alternate
#                         with main's (rows "PUT new key (1 webhook)"). After
#                         each of its runs the kit waits until the receiver has
#                         every event (`seed drain`), so that no delivery spills
#                         into the next run, and notes how many were pending
#                         when wrk stopped and how long they took. A third
#                         table, "Webhook cost", gives the PUT ratio (issue
#                         14's target: a cost under 10%). Not with AUDIT_AB=1
#                         or BEFORE (run them apart), nor POSTGRES_CREATE_DB=0.
#                         WEBHOOK_SEND=off: the webhook instance restarts with
#                         `--webhooks off` once subscribed, so that its PUTs
#                         write their events to the outbox and nothing sends
#                         them: the outbox's cost alone, apart from delivery's
#   BEFORE=REV            also the service built at git rev REV (`git archive
#                         REV` unpacked into the temporary directory, built
#                         there, removed at exit): a second instance, before,
#                         with its own binary and master key, the same serve
#                         flags and seeding as the main instance (which is the
#                         working tree: after); its GET value, GET list and PUT new
#                         key runs alternate with main's (rows "... (before)"), and
#                         a second table, "Before and after", gives per case
#                         before and after req/s, after/before and both p99s,
#                         with both revs (for refactors that must show no
#                         regression over 3%). Its serve must have every flag
#                         the kit passes. About 5 more minutes with the
#                         defaults. Not with AUDIT_AB=1 (run the two apart)
#                         nor POSTGRES_CREATE_DB=0; SCALE, SECRETS_FOR_RSS
#                         and DELETE measure the working tree only
#   EXTRA_SERVE_FLAGS, AUDIT  extra `serve` flags (word-split), to compare e.g.
#                         audit on and off: AUDIT='--audit-sink off', or
#                         AUDIT='--audit-durability every'; {tmp} in them
#                         becomes a directory of the instance outside its data
#                         directory: AUDIT='--audit-file {tmp}/audit.log'
#   RATE_LIMITS=on        keep serve's per-credential and per-tenant rate limits;
#                         by default the kit turns them off (one load generator
#                         on one API key would measure 429s). Apart from that,
#                         and the metrics listener on a free port instead of
#                         the fixed default, every serve default stays: audit
#                         trail, access log, metrics, fsync'd writes. The
#                         table says which flags the kit added.
#   SEED_CONCURRENCY=64   requests in flight while seeding
#   GO=go                 the go command
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/bench
DURATION=${DURATION:-10s}
REPS=${REPS:-3}
THREADS=${THREADS:-1}
STORE=${STORE:-bolt}
SCALE=${SCALE:-0}
SECRETS_FOR_RSS=${SECRETS_FOR_RSS:-0}
AUDIT_AB=${AUDIT_AB:-0}
WEBHOOK_AB=${WEBHOOK_AB:-0}
WEBHOOK_SEND=${WEBHOOK_SEND:-on}
BEFORE=${BEFORE:-}
SEED_CONCURRENCY=${SEED_CONCURRENCY:-64}
EXTRA_SERVE_FLAGS="${EXTRA_SERVE_FLAGS:-} ${AUDIT:-}"
GO=${GO:-go}
CONNS_LIST="32 1"
LIST_KEYS=1000
PUT_BODY='{"value":"value-0123456789abcdef"}'
BASELINE_KEY=bench-api-key-0123456789abcdef # the baseline's fixed key, not a secret
BASELINE="baseline GET (bare net/http)"

die() {
	echo "bench: $*" >&2
	exit 1
}
log() { echo "bench: $*" >&2; }

# ---- preconditions -------------------------------------------------------

if ! command -v wrk >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		log "installing wrk"
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; } ||
			die "could not install wrk with apt-get"
	else
		die "wrk is not installed: install it (Debian/Ubuntu: sudo apt-get install wrk) and run again"
	fi
fi
case $STORE in
bolt | postgres) ;;
*) die "STORE=$STORE: want bolt or postgres" ;;
esac
case $AUDIT_AB in
0 | 1) ;;
'') AUDIT_AB=0 ;;
*) die "AUDIT_AB=$AUDIT_AB: want 1 (or 0, the default)" ;;
esac
case $WEBHOOK_AB in
0 | 1) ;;
'') WEBHOOK_AB=0 ;;
*) die "WEBHOOK_AB=$WEBHOOK_AB: want 1 (or 0, the default)" ;;
esac
case $WEBHOOK_SEND in
on | off) ;;
*) die "WEBHOOK_SEND=$WEBHOOK_SEND: want on (the default) or off" ;;
esac
if [ "$WEBHOOK_AB" = 1 ] && { [ -n "$BEFORE" ] || [ "$AUDIT_AB" = 1 ]; }; then
	die "WEBHOOK_AB=1 with BEFORE or AUDIT_AB=1 is not supported: run them apart"
fi
if [ -n "$BEFORE" ] && [ "$AUDIT_AB" = 1 ]; then
	# Four instances (audit on and off, before and after) would double the
	# run's length and crowd the machine the ratios are measured on.
	die "BEFORE and AUDIT_AB=1 together are not supported: run them apart"
fi
if [ -n "$BEFORE" ]; then
	BEFORE_REV=$(git -C "$ROOT" rev-parse --verify --quiet "$BEFORE^{commit}") ||
		die "BEFORE=$BEFORE: not a commit of the repository at $ROOT"
	BEFORE_COMMIT=$(git -C "$ROOT" rev-parse --short "$BEFORE_REV")
fi
if [ "$STORE" = postgres ]; then
	[ -n "${POSTGRES_URL:-}" ] || die "STORE=postgres needs POSTGRES_URL (a role with CREATEDB, e.g. postgres://bench@127.0.0.1:5432/postgres)"
	if [ "${POSTGRES_CREATE_DB:-1}" = 0 ] && { [ "$SCALE" != 0 ] || [ "$SECRETS_FOR_RSS" != 0 ]; }; then
		die "POSTGRES_CREATE_DB=0 gives one database: it cannot also hold SCALE's or SECRETS_FOR_RSS's instances"
	fi
	if [ "${POSTGRES_CREATE_DB:-1}" = 0 ] && [ "$AUDIT_AB" = 1 ]; then
		die "POSTGRES_CREATE_DB=0 gives one database: it cannot also hold AUDIT_AB's noaudit instance"
	fi
	if [ "${POSTGRES_CREATE_DB:-1}" = 0 ] && [ "$WEBHOOK_AB" = 1 ]; then
		die "POSTGRES_CREATE_DB=0 gives one database: it cannot also hold WEBHOOK_AB's webhook instance"
	fi
	if [ "${POSTGRES_CREATE_DB:-1}" = 0 ] && [ -n "$BEFORE" ]; then
		die "POSTGRES_CREATE_DB=0 gives one database: it cannot also hold BEFORE's instance"
	fi
fi
for n in "$REPS" "$THREADS" "$SCALE" "$SECRETS_FOR_RSS" "$SEED_CONCURRENCY"; do
	case $n in '' | *[!0-9]*) die "REPS, THREADS, SCALE, SECRETS_FOR_RSS and SEED_CONCURRENCY must be whole numbers" ;; esac
done
if [ "$REPS" -lt 1 ] || [ "$THREADS" -lt 1 ] || [ "$SEED_CONCURRENCY" -lt 1 ]; then
	die "REPS, THREADS and SEED_CONCURRENCY must be at least 1"
fi

# duration_seconds turns wrk's -d syntax (10, 10s, 2m, 1h) into seconds.
duration_seconds() {
	case $1 in
	*h) echo $((${1%h} * 3600)) ;;
	*m) echo $((${1%m} * 60)) ;;
	*s) echo "${1%s}" ;;
	*) echo "$1" ;;
	esac
}
DUR_S=$(duration_seconds "$DURATION" 2>/dev/null || true)
case $DUR_S in '' | *[!0-9]* | 0) die "DURATION=$DURATION: want whole seconds, minutes or hours, e.g. 10s" ;; esac

# ---- temporary state and cleanup -----------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/neostore-bench.XXXXXX")
if [ -z "${RESULTS:-}" ]; then
	RESULTS=$(mktemp -d "${TMPDIR:-/tmp}/neostore-bench-results.XXXXXX")
fi
mkdir -p "$RESULTS/raw" "$RESULTS/logs" "$WORK/logs"
PIDS=()   # every background process of ours still running
PG_DBS=() # databases created for this run
SEED=$WORK/seed

# stop_pid sends SIGTERM to one of our children, waits up to 30 s, then
# SIGKILL. It forgets the pid, so that cleanup cannot signal a stranger
# that reused it.
stop_pid() {
	local pid=$1 i p keep=()
	for p in "${PIDS[@]}"; do
		[ "$p" = "$pid" ] || keep+=("$p")
	done
	PIDS=("${keep[@]}")
	kill -TERM "$pid" 2>/dev/null || {
		wait "$pid" 2>/dev/null || true
		return 0
	}
	for i in $(seq 1 300); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$? pid db f
	trap - EXIT INT TERM
	for pid in "${PIDS[@]}"; do
		stop_pid "$pid"
	done
	# The service logs a line per request (its default): keep only the ends.
	for f in "$WORK"/logs/*.log; do
		[ -f "$f" ] || continue
		tail -n 300 "$f" >"$RESULTS/logs/$(basename "$f").tail" || true
	done
	for db in "${PG_DBS[@]}"; do
		"$SEED" pgdb drop "$db" || log "could not drop a benchmark database (neostore_bench_*); drop it by hand"
	done
	rm -rf "$WORK"
	if [ "$rc" != 0 ]; then
		log "failed (exit $rc); logs and raw outputs are in $RESULTS"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- build ---------------------------------------------------------------

log "results go to $RESULTS"
log "building"
(
	cd "$ROOT"
	"$GO" build -o "$WORK/neostore-secrets" ./cmd/neostore-secrets
	"$GO" build -o "$WORK/baseline" ./bench/baseline
	"$GO" build -o "$SEED" ./bench/seed
)
BIN=$WORK/neostore-secrets
if [ -n "$BEFORE" ]; then
	# git archive, not a worktree: nothing to unregister from the repository,
	# and the whole copy goes with $WORK however the kit exits.
	log "building $BEFORE ($BEFORE_COMMIT)"
	mkdir -p "$WORK/before-src"
	git -C "$ROOT" archive "$BEFORE_REV" | tar -x -C "$WORK/before-src" ||
		die "could not unpack $BEFORE ($BEFORE_COMMIT) with git archive"
	(cd "$WORK/before-src" && "$GO" build -buildvcs=false -o "$WORK/neostore-secrets-before" ./cmd/neostore-secrets) ||
		die "could not build the service at $BEFORE ($BEFORE_COMMIT)"
	rm -rf "$WORK/before-src"
fi

COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null)" ]; then
	COMMIT="$COMMIT-dirty"
fi

SERVE_HELP=$("$BIN" serve -h 2>&1 || true)
# has_flag NAME reports whether this build's serve has --NAME.
has_flag() { case $SERVE_HELP in *"--$1 ("*) return 0 ;; esac; return 1; }

if [ "$WEBHOOK_AB" = 1 ] && ! has_flag webhook-allow-private; then
	die "WEBHOOK_AB=1: this build's \`serve -h\` lists no --webhook-allow-private flag"
fi
if [ "$AUDIT_AB" = 1 ] && ! has_flag audit-sink; then
	die "AUDIT_AB=1: this build's \`serve -h\` lists no --audit-sink flag"
fi

STORE_FLAGS=()
PG_ENV_URL=0
if [ "$STORE" = postgres ]; then
	if ! has_flag store || ! has_flag postgres-url; then
		die "STORE=postgres: this build's \`serve -h\` lists no --store and --postgres-url flags (yet)"
	fi
	STORE_FLAGS=(--store postgres)
	# The URL may carry a password: hand it over in the environment, not
	# on the command line where ps shows it.
	case $SERVE_HELP in *NEOSTORE_POSTGRES_URL*) PG_ENV_URL=1 ;; esac
fi

# Flags the kit adds to the production defaults, and why:
# - rate limits off: one load generator on one API key would measure the
#   limiter (cheap 429s) instead of the service; RATE_LIMITS=on keeps them.
# - metrics on a free port instead of the fixed default, so that several
#   instances (and other servers on the machine) do not collide; metrics
#   stay on.
KIT_FLAGS=()
KIT_NOTES=()
if [ "${RATE_LIMITS:-off}" != on ]; then
	for f in rate-limit-credential rate-limit-tenant; do
		if has_flag "$f"; then
			KIT_FLAGS+=("--$f" -1)
		fi
	done
	[ "${#KIT_FLAGS[@]}" = 0 ] || KIT_NOTES+=("rate limits off (\`${KIT_FLAGS[*]}\`)")
fi
has_flag metrics-listen && KIT_NOTES+=("metrics on a free port")

if [ -n "$BEFORE" ]; then
	# Both instances get the same command line, so the older build must
	# know every flag the kit passes to this one.
	BEFORE_HELP=$("$WORK/neostore-secrets-before" serve -h 2>&1 || true)
	need=("${KIT_FLAGS[@]}" "${STORE_FLAGS[@]}")
	has_flag metrics-listen && need+=(--metrics-listen)
	[ "$STORE" != postgres ] || [ "$PG_ENV_URL" = 1 ] || need+=(--postgres-url)
	for f in "${need[@]}"; do
		case $f in --*) ;; *) continue ;; esac
		case $BEFORE_HELP in *"$f ("*) ;; *) die "BEFORE=$BEFORE: its \`serve -h\` lists no $f flag, which the kit passes to both builds" ;; esac
	done
	if [ "$STORE" = postgres ] && [ "$PG_ENV_URL" = 1 ]; then
		case $BEFORE_HELP in *NEOSTORE_POSTGRES_URL*) ;; *) die "BEFORE=$BEFORE: its serve does not read NEOSTORE_POSTGRES_URL, which the kit uses for both builds" ;; esac
	fi
fi

# ---- measuring -----------------------------------------------------------

# Runs of each case, keyed by "case|conns": space-separated per-run values,
# and totals.
declare -A RUN_RPS RUN_P50 RUN_P99 NON2XX SOCKERR ABSENT
# Medians, filled by finish_case.
declare -A RPS P50 P99
CASES=() # "case|conns" in the order first measured

# median prints the median of its numeric arguments.
median() {
	printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {
		if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# field prints the value of NAME=value from a BENCH_RESULT line.
field() {
	tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"
}

# run_rep NAME CONNS REP URL [wrk args]: one wrk run, recorded under
# NAME|CONNS. BENCH_* variables for wrk.lua come from the caller's environment.
# Sets LAST_RPS. With REJECT_ABSENT set, a DELETE run that went past its pool
# is not recorded (LAST_REJECTED=1) and its output is kept as *-overrun-*.txt.
run_rep() {
	local name=$1 conns=$2 rep=$3 url=$4 key="$1|$2" slug f line
	shift 4
	slug=$(tr -c 'A-Za-z0-9\n' '-' <<<"$name" | tr -s '-')
	f="$RESULTS/raw/${slug%-}-c${conns}-r${rep}.txt"
	echo "# wrk -t$THREADS -c$conns -d$DURATION --latency -s wrk.lua $* $url (BENCH_MODE=${BENCH_MODE:-get})" |
		sed 's/X-API-KEY: [^ ]*/X-API-KEY: (redacted)/g' >"$f"
	BENCH_THREADS=$THREADS wrk -t"$THREADS" -c"$conns" -d"$DURATION" --latency -s "$BENCH/wrk.lua" "$@" "$url" >>"$f" 2>&1 ||
		die "wrk failed for $name c$conns; see $f"
	line=$(grep '^BENCH_RESULT ' "$f" || true)
	[ -n "$line" ] || die "no result from wrk for $name c$conns; see $f"
	LAST_RPS=$(field rps "$line")
	LAST_ACKED=$(($(field requests "$line") - $(field non2xx "$line")))
	LAST_REJECTED=0
	if [ -n "${REJECT_ABSENT:-}" ] && [ "$(field absent "$line")" != 0 ]; then
		mv "$f" "${f%.txt}-overrun-$(date +%s%N).txt"
		LAST_REJECTED=1
		sleep 1
		return 0
	fi
	if [ -z "${RUN_RPS[$key]+set}" ]; then
		CASES+=("$key")
		RUN_RPS[$key]="" RUN_P50[$key]="" RUN_P99[$key]="" NON2XX[$key]=0 SOCKERR[$key]=0 ABSENT[$key]=0
	fi
	RUN_RPS[$key]+=" $(field rps "$line")"
	RUN_P50[$key]+=" $(field p50_us "$line")"
	RUN_P99[$key]+=" $(field p99_us "$line")"
	NON2XX[$key]=$((NON2XX[$key] + $(field non2xx "$line")))
	SOCKERR[$key]=$((SOCKERR[$key] + $(field sockerr "$line")))
	ABSENT[$key]=$((ABSENT[$key] + $(field absent "$line")))
	# A second for the machine to settle, unless the caller looks at once
	# (NO_SETTLE=1) and settles itself.
	[ -n "${NO_SETTLE:-}" ] || sleep 1
}

# finish_case NAME CONNS: medians of the runs, a line in summary.tsv and on
# the terminal.
finish_case() {
	local name=$1 conns=$2 key="$1|$2" runs
	# shellcheck disable=SC2086 # the runs are space-separated numbers
	{
		RPS[$key]=$(median ${RUN_RPS[$key]})
		P50[$key]=$(median ${RUN_P50[$key]})
		P99[$key]=$(median ${RUN_P99[$key]})
		runs=$(echo ${RUN_RPS[$key]} | tr ' ' /)
	}
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$conns" "$REPS" "${RPS[$key]}" "$runs" \
		"${P50[$key]}" "${P99[$key]}" "${NON2XX[$key]}" "${SOCKERR[$key]}" >>"$RESULTS/summary.tsv"
	log "$(printf '%-34s c%-3s %9.0f req/s  p50 %6.2f ms  p99 %7.2f ms  non-2xx %s' "$name" "$conns" "${RPS[$key]}" \
		"$(awk -v u="${P50[$key]}" 'BEGIN{print u/1000}')" "$(awk -v u="${P99[$key]}" 'BEGIN{print u/1000}')" "${NON2XX[$key]}")"
	if [ "${NON2XX[$key]}" != 0 ] || [ "${SOCKERR[$key]}" != 0 ]; then
		log "WARNING: $name c$conns had ${NON2XX[$key]} non-2xx responses and ${SOCKERR[$key]} socket errors; see $RESULTS/raw"
	fi
}

# run_case NAME CONNS URL [wrk args]: REPS runs, then their medians.
# PRE_REP, if set, names a function called with the run's number first.
run_case() {
	local name=$1 conns=$2 i
	for i in $(seq 1 "$REPS"); do
		if [ -n "${PRE_REP:-}" ]; then "$PRE_REP" "$i"; fi
		run_rep "$name" "$conns" "$i" "${@:3}"
	done
	finish_case "$name" "$conns"
}
printf 'case\tconns\truns\trps_median\trps_all\tp50_us_median\tp99_us_median\tnon2xx_total\tsocket_errors_total\n' >"$RESULTS/summary.tsv"

# rss_kb PID FIELD prints a field of /proc/PID/status (VmRSS, VmHWM,
# RssAnon, RssFile) in kB.
rss_kb() {
	awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"
}

# rss_line PID describes the memory of PID: resident set, its anonymous and
# file-backed parts (bbolt's memory-mapped file counts in the latter), peak.
rss_line() {
	printf '**%s** (anonymous %s, file-backed %s; peak %s)' "$(mb "$(rss_kb "$1" VmRSS)")" \
		"$(mb "$(rss_kb "$1" RssAnon)")" "$(mb "$(rss_kb "$1" RssFile)")" "$(mb "$(rss_kb "$1" VmHWM)")"
}
thousands() { printf '%.0f\n' "$1" | sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/' -e 'ta'; }
mb() { awk -v k="$1" 'BEGIN{printf "%.1f MB", k / 1024}'; }

# ---- service instances ---------------------------------------------------

MASTER=$WORK/master.key
"$BIN" keys init --out "$MASTER" 2>>"$RESULTS/logs/keys-init.log"

# State of each instance, by name.
# I_EXTRA: serve flags of that instance alone, after EXTRA_SERVE_FLAGS.
# I_BIN, I_MASTER: its binary and master key ($BIN and $MASTER but for
# BEFORE's instance, whose own build makes its key and API keys).
declare -A I_DIR I_DATA I_PG I_PORT I_METRICS_PORT I_PID I_BASE I_EXTRA I_BIN I_MASTER

# new_instance NAME: a fresh data directory (and database) on a free port.
new_instance() {
	local name=$1
	I_DIR[$name]=$WORK/$name
	I_DATA[$name]=$WORK/$name/data
	mkdir -p "${I_DIR[$name]}"
	I_PG[$name]=""
	if [ "$STORE" = postgres ]; then
		if [ "${POSTGRES_CREATE_DB:-1}" = 0 ]; then
			I_PG[$name]=$POSTGRES_URL
		else
			I_PG[$name]=$("$SEED" pgdb create "$POSTGRES_URL") || die "could not create a database on POSTGRES_URL's server"
			PG_DBS+=("${I_PG[$name]}")
		fi
	fi
	I_PORT[$name]=$("$SEED" freeport)
	I_METRICS_PORT[$name]=$("$SEED" freeport)
	I_BASE[$name]=http://127.0.0.1:${I_PORT[$name]}
	I_EXTRA[$name]=""
	I_BIN[$name]=$BIN
	I_MASTER[$name]=$MASTER
}

# serve_cmd NAME fills SERVE_ARGS with the instance's command line and
# SVC_ENV with its extra environment.
serve_cmd() {
	local name=$1 extra
	extra=${EXTRA_SERVE_FLAGS//\{tmp\}/${I_DIR[$name]}}
	SERVE_ARGS=("${I_BIN[$name]}" serve --data "${I_DATA[$name]}" --master-key-file "${I_MASTER[$name]}" --listen "127.0.0.1:${I_PORT[$name]}"
		"${STORE_FLAGS[@]}" "${KIT_FLAGS[@]}")
	if has_flag metrics-listen; then
		SERVE_ARGS+=(--metrics-listen "127.0.0.1:${I_METRICS_PORT[$name]}")
	fi
	SVC_ENV=()
	if [ "$STORE" = postgres ]; then
		if [ "$PG_ENV_URL" = 1 ]; then
			SVC_ENV=("NEOSTORE_POSTGRES_URL=${I_PG[$name]}")
		else
			SERVE_ARGS+=(--postgres-url "${I_PG[$name]}")
		fi
	fi
	# shellcheck disable=SC2206 # word splitting of the extra flags is the point
	SERVE_ARGS+=($extra ${I_EXTRA[$name]})
}

# start_instance NAME starts the instance and waits until it answers.
start_instance() {
	local name=$1
	serve_cmd "$name"
	env "${SVC_ENV[@]}" "${SERVE_ARGS[@]}" >>"$WORK/logs/$name.log" 2>&1 &
	I_PID[$name]=$!
	PIDS+=("${I_PID[$name]}")
	BENCH_API_KEY="" "$SEED" wait -url "${I_BASE[$name]}/" -timeout 60s -pid "${I_PID[$name]}" ||
		die "the service did not start; see $RESULTS/logs/$name.log.tail"
}

stop_instance() { stop_pid "${I_PID[$1]}"; }

# api_key NAME TENANT prints a new read-write API key for TENANT.
api_key() {
	local out
	out=$("${I_BIN[$1]}" apikey create --data "${I_DATA[$1]}" --tenant "$2" --scope Secret.Read --scope Secret.Write --name bench 2>>"$RESULTS/logs/apikey.log") ||
		die "apikey create failed; see $RESULTS/logs/apikey.log"
	out=${out%%$'\n'*}
	[ -n "$out" ] || die "apikey create printed no key"
	echo "$out"
}

# seed_put NAME TENANT APIKEY [seed put flags]: the seeder on one tenant.
seed_put() {
	local name=$1 tenant=$2 key=$3
	shift 3
	BENCH_API_KEY=$key "$SEED" put -url "${I_BASE[$name]}" -tenant "$tenant" -concurrency "$SEED_CONCURRENCY" "$@" >&2
}

# seed_many NAME TENANTS PER PREFIX [KEYS_FILE]: PER secrets in each of
# TENANTS tenants PREFIX0.., an API key each over the admin socket.
seed_many() {
	local out=()
	[ -z "${5:-}" ] || out=(-keys-out "$5")
	"$SEED" put -url "${I_BASE[$1]}" -tenant "$4" -tenants "$2" -keys "$3" -key-prefix k \
		-data "${I_DATA[$1]}" -concurrency "$SEED_CONCURRENCY" "${out[@]}" >&2
}

# ---- set up: baseline, main instance, noaudit instance, scale instance ---

BL_PORT=$("$SEED" freeport)
BL_URL=http://127.0.0.1:$BL_PORT/api/t1/secrets/k1
"$WORK/baseline" -addr "127.0.0.1:$BL_PORT" >>"$RESULTS/logs/baseline.log" 2>&1 &
PIDS+=("$!")
BENCH_API_KEY=$BASELINE_KEY "$SEED" wait -url "$BL_URL" -status 200 -timeout 30s -pid "$!" ||
	die "the baseline did not start; see $RESULTS/logs/baseline.log"

new_instance main
start_instance main
MAIN=${I_BASE[main]}
KEY_T1=$(api_key main t1)
KEY_LIST=$(api_key main list)
KEY_PUT=$(api_key main put)
KEY_DEL=$(api_key main del)
seed_put main t1 "$KEY_T1" -key-prefix k -start 1 -keys 1
seed_put main list "$KEY_LIST" -key-prefix k -keys "$LIST_KEYS"
BENCH_API_KEY=$KEY_T1 "$SEED" wait -url "$MAIN/api/t1/secrets/k1" -status 200 -timeout 5s
BENCH_API_KEY=$KEY_LIST "$SEED" wait -url "$MAIN/api/list/secrets" -status 200 -timeout 5s
MAIN_STORED=$((LIST_KEYS + 1))
SCALE_N=0

if [ "$AUDIT_AB" = 1 ]; then
	# The same instance as main, with the audit trail off; its GET value
	# and PUT new key runs alternate with main's.
	new_instance noaudit
	I_EXTRA[noaudit]="--audit-sink off"
	start_instance noaudit
	NOAUDIT=${I_BASE[noaudit]}
	KEY_NA_T1=$(api_key noaudit t1)
	KEY_NA_PUT=$(api_key noaudit put)
	seed_put noaudit t1 "$KEY_NA_T1" -key-prefix k -start 1 -keys 1
	BENCH_API_KEY=$KEY_NA_T1 "$SEED" wait -url "$NOAUDIT/api/t1/secrets/k1" -status 200 -timeout 5s
fi

if [ "$WEBHOOK_AB" = 1 ]; then
	# The same instance as main, with one subscription on the PUT case's
	# tenant, delivering to a receiver on loopback (the flags let it post
	# to 127.0.0.1 over http). The signing secret goes to the receiver in a
	# file, never on a command line.
	new_instance webhook
	I_EXTRA[webhook]="--webhook-allow-private --webhook-allow-insecure"
	start_instance webhook
	WEBHOOK_BASE=${I_BASE[webhook]}
	KEY_WH_PUT=$(api_key webhook put)
	RCV_PORT=$("$SEED" freeport)
	RCV_STATS=http://127.0.0.1:$RCV_PORT/stats
	# The whole output goes to a file first: `| head -n 1` would close the
	# pipe while the command still writes, and under pipefail its SIGPIPE
	# failed the kit now and then.
	(umask 077 && "$BIN" webhook add --data "${I_DATA[webhook]}" --tenant put --events secret.updated --name bench \
		--url "http://127.0.0.1:$RCV_PORT/hook" >"$WORK/webhook.add" 2>>"$RESULTS/logs/webhook-add.log" &&
		head -n 1 "$WORK/webhook.add" >"$WORK/webhook.secret" && rm "$WORK/webhook.add") ||
		die "webhook add failed; see $RESULTS/logs/webhook-add.log"
	grep -q '^whsec_' "$WORK/webhook.secret" || die "webhook add printed no signing secret"
	if [ "$WEBHOOK_SEND" = off ]; then
		stop_instance webhook
		I_EXTRA[webhook]+=" --webhooks off"
		start_instance webhook
	fi
	"$SEED" receiver -listen "127.0.0.1:$RCV_PORT" -secret-file "$WORK/webhook.secret" >>"$RESULTS/logs/receiver.log" 2>&1 &
	RCV_PID=$!
	PIDS+=("$RCV_PID")
	"$SEED" wait -url "$RCV_STATS" -status 200 -timeout 30s -pid "$RCV_PID" ||
		die "the webhook receiver did not start; see $RESULTS/logs/receiver.log"
	WH_ACKED=0 # PUTs answered 2xx on the webhook instance: events to deliver
	WH_LAG=""  # per run: "cCONNS pending N drained in MS ms"
fi

if [ -n "$BEFORE" ]; then
	# main as its rev's build: its own master key (made by its own keys
	# init, in case the format moved), the same flags and seeding. Its GET
	# value, GET list and PUT new key runs alternate with main's.
	new_instance before
	I_BIN[before]=$WORK/neostore-secrets-before
	I_MASTER[before]=$WORK/before/master.key
	"${I_BIN[before]}" keys init --out "${I_MASTER[before]}" 2>>"$RESULTS/logs/keys-init.log" ||
		die "keys init of the $BEFORE build failed; see $RESULTS/logs/keys-init.log"
	start_instance before
	BEFORE_BASE=${I_BASE[before]}
	KEY_BF_T1=$(api_key before t1)
	KEY_BF_PUT=$(api_key before put)
	KEY_BF_LIST=$(api_key before list)
	seed_put before t1 "$KEY_BF_T1" -key-prefix k -start 1 -keys 1
	seed_put before list "$KEY_BF_LIST" -key-prefix k -keys "$LIST_KEYS"
	BENCH_API_KEY=$KEY_BF_T1 "$SEED" wait -url "$BEFORE_BASE/api/t1/secrets/k1" -status 200 -timeout 5s
	BENCH_API_KEY=$KEY_BF_LIST "$SEED" wait -url "$BEFORE_BASE/api/list/secrets" -status 200 -timeout 5s
fi

if [ "$SCALE" != 0 ]; then
	SCALE_TENANTS=$((SCALE / 100))
	[ "$SCALE_TENANTS" -ge 1 ] || SCALE_TENANTS=1
	SCALE_PER=$((SCALE / SCALE_TENANTS))
	SCALE_N=$((SCALE_TENANTS * SCALE_PER + 1))
	new_instance scale
	start_instance scale
	SCALE_BASE=${I_BASE[scale]}
	KEY_SCALE_T1=$(api_key scale t1)
	seed_put scale t1 "$KEY_SCALE_T1" -key-prefix k -start 1 -keys 1
	log "seeding $((SCALE_N - 1)) secrets over $SCALE_TENANTS tenants"
	SEED_START=$(date +%s)
	seed_many scale "$SCALE_TENANTS" "$SCALE_PER" s "$WORK/keys-scale.txt"
	SEED_S=$(($(date +%s) - SEED_START))
	echo "list $KEY_LIST" >"$WORK/keys-list.txt"
fi

# ---- GET value: baseline, main, noaudit, before and scale runs alternate -

log "GET: baseline and service, alternating"
GET_VALUE="GET value"
GET_NOAUDIT="GET value (audit off)"
GET_BEFORE="GET value (before)"
GET_SCALE="GET value ($(thousands "$SCALE_N") stored)"
for c in $CONNS_LIST; do
	for i in $(seq 1 "$REPS"); do
		BENCH_MODE="get" run_rep "$BASELINE" "$c" "$i" "$BL_URL" -H "X-API-KEY: $BASELINE_KEY"
		BENCH_MODE="get" run_rep "$GET_VALUE" "$c" "$i" "$MAIN/api/t1/secrets/k1" -H "X-API-KEY: $KEY_T1"
		if [ "$AUDIT_AB" = 1 ]; then
			BENCH_MODE="get" run_rep "$GET_NOAUDIT" "$c" "$i" "$NOAUDIT/api/t1/secrets/k1" -H "X-API-KEY: $KEY_NA_T1"
		fi
		if [ -n "$BEFORE" ]; then
			BENCH_MODE="get" run_rep "$GET_BEFORE" "$c" "$i" "$BEFORE_BASE/api/t1/secrets/k1" -H "X-API-KEY: $KEY_BF_T1"
		fi
		if [ "$SCALE" != 0 ]; then
			BENCH_MODE="get" run_rep "$GET_SCALE" "$c" "$i" "$SCALE_BASE/api/t1/secrets/k1" -H "X-API-KEY: $KEY_SCALE_T1"
		fi
	done
	finish_case "$BASELINE" "$c"
	finish_case "$GET_VALUE" "$c"
	[ "$AUDIT_AB" = 0 ] || finish_case "$GET_NOAUDIT" "$c"
	[ -z "$BEFORE" ] || finish_case "$GET_BEFORE" "$c"
	[ "$SCALE" = 0 ] || finish_case "$GET_SCALE" "$c"
done
RSS_MAIN=$(rss_line "${I_PID[main]}")

if [ "$SCALE" != 0 ]; then
	# A random key of a random tenant per request (with that tenant's API
	# key), so that a cache of hot tenants or pages cannot hide the scale.
	RAND_MAIN="GET random key ($(thousands "$LIST_KEYS") stored, 1 tenant)"
	RAND_SCALE="GET random key ($(thousands "$SCALE_N") stored, $(thousands "$SCALE_TENANTS") tenants)"
	for c in $CONNS_LIST; do
		for i in $(seq 1 "$REPS"); do
			BENCH_MODE=getrand BENCH_KEYS_FILE=$WORK/keys-list.txt BENCH_KEYS_PER_TENANT=$LIST_KEYS BENCH_KEY_PREFIX=k \
				run_rep "$RAND_MAIN" "$c" "$i" "$MAIN"
			BENCH_MODE=getrand BENCH_KEYS_FILE=$WORK/keys-scale.txt BENCH_KEYS_PER_TENANT=$SCALE_PER BENCH_KEY_PREFIX=k \
				run_rep "$RAND_SCALE" "$c" "$i" "$SCALE_BASE"
		done
		finish_case "$RAND_MAIN" "$c"
		finish_case "$RAND_SCALE" "$c"
	done
	RSS_SCALE=$(rss_line "${I_PID[scale]}")
	stop_instance scale
fi

# ---- GET list, PUT, DELETE on the main instance ---------------------------

log "GET list"
GET_LIST="GET list ($(thousands "$LIST_KEYS") keys)"
GET_LIST_BEFORE="$GET_LIST (before)"
for c in $CONNS_LIST; do
	for i in $(seq 1 "$REPS"); do
		BENCH_MODE="get" run_rep "$GET_LIST" "$c" "$i" "$MAIN/api/list/secrets" -H "X-API-KEY: $KEY_LIST"
		if [ -n "$BEFORE" ]; then
			BENCH_MODE="get" run_rep "$GET_LIST_BEFORE" "$c" "$i" "$BEFORE_BASE/api/list/secrets" -H "X-API-KEY: $KEY_BF_LIST"
		fi
	done
	finish_case "$GET_LIST" "$c"
	[ -z "$BEFORE" ] || finish_case "$GET_LIST_BEFORE" "$c"
done

log "PUT"
# A fresh key prefix per run, so that every request writes a new key. With
# AUDIT_AB=1, main's and noaudit's runs alternate, with BEFORE main's and
# before's.
put_rep() {
	BENCH_KEY_PREFIX="p$(date +%s%N)-r$1"
	export BENCH_KEY_PREFIX
}
PUT_NEW="PUT new key"
PUT_NOAUDIT="PUT new key (audit off)"
PUT_BEFORE="PUT new key (before)"
PUT_WEBHOOK="PUT new key (1 webhook)"
[ "$WEBHOOK_SEND" = on ] || PUT_WEBHOOK="PUT new key (1 webhook, not sent)"
for c in $CONNS_LIST; do
	for i in $(seq 1 "$REPS"); do
		put_rep "$i"
		BENCH_MODE=put BENCH_PATH_PREFIX=/api/put/secrets/ BENCH_BODY=$PUT_BODY \
			run_rep "$PUT_NEW" "$c" "$i" "$MAIN" -H "X-API-KEY: $KEY_PUT" -H "Content-Type: application/json"
		if [ "$AUDIT_AB" = 1 ]; then
			put_rep "$i"
			BENCH_MODE=put BENCH_PATH_PREFIX=/api/put/secrets/ BENCH_BODY=$PUT_BODY \
				run_rep "$PUT_NOAUDIT" "$c" "$i" "$NOAUDIT" -H "X-API-KEY: $KEY_NA_PUT" -H "Content-Type: application/json"
		fi
		if [ -n "$BEFORE" ]; then
			put_rep "$i"
			BENCH_MODE=put BENCH_PATH_PREFIX=/api/put/secrets/ BENCH_BODY=$PUT_BODY \
				run_rep "$PUT_BEFORE" "$c" "$i" "$BEFORE_BASE" -H "X-API-KEY: $KEY_BF_PUT" -H "Content-Type: application/json"
		fi
		if [ "$WEBHOOK_AB" = 1 ]; then
			put_rep "$i"
			NO_SETTLE=1 BENCH_MODE=put BENCH_PATH_PREFIX=/api/put/secrets/ BENCH_BODY=$PUT_BODY \
				run_rep "$PUT_WEBHOOK" "$c" "$i" "$WEBHOOK_BASE" -H "X-API-KEY: $KEY_WH_PUT" -H "Content-Type: application/json"
			# Looked at as wrk stops: the events not yet delivered, and how
			# long they take.
			WH_ACKED=$((WH_ACKED + LAST_ACKED))
			if [ "$WEBHOOK_SEND" = off ]; then
				sleep 1
				continue
			fi
			lag=$("$SEED" drain -url "$RCV_STATS" -want "$WH_ACKED" -timeout 5m) ||
				die "the webhook receiver did not get every event within 5 minutes; see $RESULTS/logs"
			WH_LAG="$WH_LAG c$c run $i: $(field pending_at_end "$lag") of $LAST_ACKED pending as wrk stopped, all delivered $(field drain_ms "$lag") ms later;"
			log "webhook c$c run $i: $lag"
			sleep 1
		fi
	done
	finish_case "$PUT_NEW" "$c"
	[ "$AUDIT_AB" = 0 ] || finish_case "$PUT_NOAUDIT" "$c"
	[ -z "$BEFORE" ] || finish_case "$PUT_BEFORE" "$c"
	[ "$WEBHOOK_AB" = 0 ] || finish_case "$PUT_WEBHOOK" "$c"
done
[ "$AUDIT_AB" = 0 ] || stop_instance noaudit
if [ "$WEBHOOK_AB" = 1 ]; then
	WH_STATS=$("$SEED" drain -url "$RCV_STATS" -want 0 | sed 's/^pending_at_end=0 drain_ms=[0-9]* //')
	stop_instance webhook
	stop_pid "$RCV_PID"
fi
[ -z "$BEFORE" ] || stop_instance before

log "DELETE"
# Every run deletes keys the seeder wrote just before it, a different one
# per request. The pool is twice the fastest write rate seen so far at this
# connection count times the duration, plus 1,000. A run that gets through
# its pool (and so would also measure deletes of absent keys) is discarded
# and run again with a pool sized from its own rate; the third try counts
# whatever happens, and the notes below the table say how many requests
# deleted an absent key.
POOLS=""
for c in $CONNS_LIST; do
	rate=${RPS["$PUT_NEW|$c"]}
	for i in $(seq 1 "$REPS"); do
		for attempt in 1 2 3; do
			BENCH_POOL=$(awk -v r="$rate" -v d="$DUR_S" 'BEGIN{print int(r * d * 2) + 1000}')
			BENCH_KEY_PREFIX="d$(date +%s%N)-r$i-"
			export BENCH_POOL BENCH_KEY_PREFIX
			seed_put main del "$KEY_DEL" -key-prefix "$BENCH_KEY_PREFIX" -keys "$BENCH_POOL"
			reject=1
			[ "$attempt" != 3 ] || reject=""
			REJECT_ABSENT=$reject BENCH_MODE=delete BENCH_PATH_PREFIX=/api/del/secrets/ \
				run_rep "DELETE existing key" "$c" "$i" "$MAIN" -H "X-API-KEY: $KEY_DEL"
			rate=$(awk -v a="$rate" -v b="$LAST_RPS" 'BEGIN{print (b > a ? b : a)}')
			[ "$LAST_REJECTED" = 1 ] || break
			log "DELETE c$c run $i got through its $BENCH_POOL keys; running it again with more"
		done
	done
	finish_case "DELETE existing key" "$c"
	POOLS="$POOLS c$c up to $(thousands "$BENCH_POOL") keys per run;"
done
RSS_MAIN_END=$(rss_line "${I_PID[main]}")
stop_instance main

# ---- SCALE: readiness after a restart ------------------------------------

if [ "$SCALE" != 0 ]; then
	log "readiness after a restart with $SCALE_N secrets"
	ready=()
	serve_cmd scale
	for i in $(seq 1 "$REPS"); do
		ready+=("$(BENCH_API_KEY=$KEY_SCALE_T1 env "${SVC_ENV[@]}" "$SEED" ready -url "$SCALE_BASE/api/t1/secrets/k1" \
			-log "$WORK/logs/scale-restart.log" -timeout 5m -- "${SERVE_ARGS[@]}")") ||
			die "the service did not become ready after a restart; see $RESULTS/logs/scale-restart.log.tail"
	done
	READY_MS=$(median "${ready[@]}")
	READY_ALL=$(echo "${ready[*]}" | tr ' ' /)
fi

# ---- SECRETS_FOR_RSS -----------------------------------------------------

if [ "$SECRETS_FOR_RSS" != 0 ]; then
	RSS_TENANTS=$(((SECRETS_FOR_RSS + 999) / 1000))
	RSS_PER=$(((SECRETS_FOR_RSS + RSS_TENANTS - 1) / RSS_TENANTS))
	RSS_N=$((RSS_TENANTS * RSS_PER + 1))
	new_instance rss
	start_instance rss
	KEY_RSS_T1=$(api_key rss t1)
	seed_put rss t1 "$KEY_RSS_T1" -key-prefix k -start 1 -keys 1
	log "writing $((RSS_N - 1)) secrets over $RSS_TENANTS tenants"
	seed_many rss "$RSS_TENANTS" "$RSS_PER" r
	for c in $CONNS_LIST; do
		BENCH_MODE="get" run_case "GET value ($(thousands "$RSS_N") written)" "$c" "${I_BASE[rss]}/api/t1/secrets/k1" -H "X-API-KEY: $KEY_RSS_T1"
	done
	RSS_RSS=$(rss_line "${I_PID[rss]}")
	stop_instance rss
fi

# ---- the table -----------------------------------------------------------

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f×", a / b; else print "-" }'; }
ms() { awk -v u="$1" 'BEGIN{ if (u < 10000) printf "%.2f ms", u / 1000; else printf "%.1f ms", u / 1000 }'; }
row() {
	local key=$1 name=${1%|*} c=${1#*|}
	printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$c" "$(thousands "${RPS[$key]}")" \
		"$(ms "${P50[$key]}")" "$(ms "${P99[$key]}")" "${NON2XX[$key]}" "${SOCKERR[$key]}" \
		"$(ratio "${RPS[$key]}" "${RPS["$BASELINE|$c"]}")"
}
{
	echo "Commit \`$COMMIT\`, store $STORE, $(nproc) cores ($(uname -sr)), wrk -t$THREADS -d$DURATION --latency, median of $REPS run(s), $("$GO" env GOVERSION 2>/dev/null)."
	if [ "${#KIT_NOTES[@]}" != 0 ]; then
		notes=$(printf '%s; ' "${KIT_NOTES[@]}")
		echo "Production defaults except: ${notes%; }."
	fi
	read -r -a extra <<<"$EXTRA_SERVE_FLAGS" || true
	[ "${#extra[@]}" = 0 ] || echo "Extra serve flags: \`${extra[*]}\`."
	echo
	echo "| case | conns | req/s | p50 | p99 | non-2xx | socket errors | ratio to baseline GET |"
	echo "|---|---|---|---|---|---|---|---|"
	for key in "${CASES[@]}"; do
		[ "${key%|*}" != "$BASELINE" ] || row "$key"
	done
	for key in "${CASES[@]}"; do
		[ "${key%|*}" = "$BASELINE" ] || row "$key"
	done
	echo
	echo "- RSS (VmRSS) of the service after the GET load ($(thousands "$MAIN_STORED") secrets stored): $RSS_MAIN; at the end, after PUT and DELETE: $RSS_MAIN_END."
	absent=0
	for c in $CONNS_LIST; do
		n=${ABSENT["DELETE existing key|$c"]}
		absent=$((absent + n))
	done
	echo "- DELETE pools, written before each run:$POOLS requests past the pool (deleting an absent key): $absent."
	if [ "$SCALE" != 0 ]; then
		for c in $CONNS_LIST; do
			echo "- Flat cost, c$c: GET value with $(thousands "$SCALE_N") stored / with $(thousands "$MAIN_STORED") stored = **$(ratio "${RPS["$GET_SCALE|$c"]}" "${RPS["$GET_VALUE|$c"]}")**; random key over $(thousands "$SCALE_TENANTS") tenants / over 1 tenant of $(thousands "$LIST_KEYS") = $(ratio "${RPS["$RAND_SCALE|$c"]}" "${RPS["$RAND_MAIN|$c"]}")."
		done
		echo "- Seeding $(thousands "$((SCALE_N - 1))") secrets over HTTP took ${SEED_S}s; RSS after the GET load with them: $RSS_SCALE."
		echo "- Ready after a restart with $(thousands "$SCALE_N") secrets (process start to first 200 on GET, page cache warm): **$READY_MS ms** (median of $READY_ALL ms)."
	fi
	if [ "$SECRETS_FOR_RSS" != 0 ]; then
		echo "- RSS after writing $(thousands "$((RSS_N - 1))") secrets and serving the GET load: $RSS_RSS."
	fi
	if [ "$AUDIT_AB" = 1 ]; then
		echo
		echo "**Audit cost (same run, alternating).** Audit on: the service above; audit off: the same serve flags plus \`--audit-sink off\`, its runs alternating with the service's; req/s are the medians above. Issue 5's target: a cost of at most 20% at the default durability."
		echo
		echo "| case | conns | audit on req/s | audit off req/s | on/off ratio | cost |"
		echo "|---|---|---|---|---|---|"
		for pair in "$GET_VALUE|$GET_NOAUDIT" "$PUT_NEW|$PUT_NOAUDIT"; do
			on=${pair%%|*} off=${pair#*|}
			for c in $CONNS_LIST; do
				a=${RPS["$on|$c"]} b=${RPS["$off|$c"]}
				printf '| %s | %s | %s | %s | %s | %s |\n' "$on" "$c" "$(thousands "$a")" "$(thousands "$b")" "$(ratio "$a" "$b")" \
					"$(awk -v a="$a" -v b="$b" 'BEGIN{ if (b > 0) printf "%.1f%%", (1 - a / b) * 100; else print "-" }')"
			done
		done
	fi
	if [ "$WEBHOOK_AB" = 1 ]; then
		echo
		echo "**Webhook cost (same run, alternating).** None: the service above, no subscription; 1 webhook: the same serve flags plus \`--webhook-allow-private --webhook-allow-insecure\`, one subscription to the PUT tenant's secret.updated events delivering to \`seed receiver\` on loopback, its runs alternating with the service's; req/s are the medians above. Issue 14's target: a cost under 10%."
		echo
		echo "| case | conns | none req/s | 1 webhook req/s | webhook/none | cost |"
		echo "|---|---|---|---|---|---|"
		for c in $CONNS_LIST; do
			a=${RPS["$PUT_WEBHOOK|$c"]} b=${RPS["$PUT_NEW|$c"]}
			printf '| %s | %s | %s | %s | %s | %s |\n' "$PUT_NEW" "$c" "$(thousands "$b")" "$(thousands "$a")" "$(ratio "$a" "$b")" \
				"$(awk -v a="$a" -v b="$b" 'BEGIN{ if (b > 0) printf "%.1f%%", (1 - a / b) * 100; else print "-" }')"
		done
		echo
		if [ "$WEBHOOK_SEND" = off ]; then
			echo "- WEBHOOK_SEND=off: the webhook instance ran with \`--webhooks off\` after \`webhook add\`: its $WH_ACKED PUTs wrote their events to the outbox, and nothing sent them."
		else
			echo "- Delivery lag (the kit waits for every event after each webhook run):$WH_LAG"
			echo "- Receiver at the end: $WH_STATS (every attempt verified against the Standard Webhooks signature scheme)."
		fi
	fi
	if [ -n "$BEFORE" ]; then
		echo
		echo "**Before and after (same run, alternating).** Before: \`$BEFORE\` = \`$BEFORE_COMMIT\`, built from \`git archive\`; after: \`$COMMIT\`, the service above. Same serve flags and seeding, runs alternating; req/s and p99 are the medians above. A refactor's target: after/before at least 0.97."
		echo
		echo "| case | conns | before req/s | after req/s | after/before | p99 before | p99 after |"
		echo "|---|---|---|---|---|---|---|"
		for pair in "$GET_VALUE|$GET_BEFORE" "$GET_LIST|$GET_LIST_BEFORE" "$PUT_NEW|$PUT_BEFORE"; do
			after=${pair%%|*} before=${pair#*|}
			for c in $CONNS_LIST; do
				a=${RPS["$after|$c"]} b=${RPS["$before|$c"]}
				printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$after" "$c" "$(thousands "$b")" "$(thousands "$a")" \
					"$(awk -v a="$a" -v b="$b" 'BEGIN{ if (b > 0) printf "%.3f×", a / b; else print "-" }')" \
					"$(ms "${P99["$before|$c"]}")" "$(ms "${P99["$after|$c"]}")"
			done
		done
	fi
} >"$RESULTS/table.md"

echo
cat "$RESULTS/table.md"
echo
echo "Raw wrk outputs, logs and summary.tsv: $RESULTS"
