#!/usr/bin/env bash
# Benchmarks proctor and writes bench/RESULTS.md:
#   1. probe engine: the same N sequential requests and assertions as a proctor spec and as a .hurl file
#   2. whole catalog: `proctor demo` wall time, intrinsic waiting vs proctor's own overhead
#   3. start-up: `proctor validate challenges/` and `proctor list`
#   4. peak memory (max RSS) of proctor for 1 and 2
#   5. Docker: `proctor run --image` to the first probe, against a bare `docker run` of the same image
#   6. batch: `proctor grade` of BATCH_N submissions against a shell loop of `proctor run --path`, in one run
#      (BATCH_N=20 and BATCH_CHALLENGES=challenges is the issue's target; smaller values for a quick look)
#   7. one submission's whole catalog in Docker (`run --image`) against the same catalog in-process (`demo`),
#      side by side, DOCKER_RUNS times each
# Needs hyperfine (apt install hyperfine) and hurl (apt install libxml2-dev libclang-dev; cargo install hurl).
# SMOKE=1 runs everything once with few requests, to check the script still works.
set -euo pipefail
cd "$(dirname "$0")/.."

SMOKE=${SMOKE:-0}
RUNS=${RUNS:-15}
REQUESTS=${REQUESTS:-1000}
BATCH_N=${BATCH_N:-20}
BATCH_CHALLENGES=${BATCH_CHALLENGES:-challenges}
BATCH_JOBS=${BATCH_JOBS:-4}
DOCKER_RUNS=${DOCKER_RUNS:-5}
CATALOG=${CATALOG:-challenges}
if [ "$SMOKE" = 1 ]; then
  RUNS=2; REQUESTS=20; BATCH_N=2; BATCH_CHALLENGES=status-codes; DOCKER_RUNS=1; CATALOG=status-codes
fi
command -v hyperfine >/dev/null || { echo "bench: hyperfine is missing (apt install hyperfine)" >&2; exit 1; }
HAVE_HURL=1
command -v hurl >/dev/null || { HAVE_HURL=0; echo "bench: hurl is missing; item 1 measures proctor alone" >&2; }

cargo build --release -q
P="$PWD/target/release/proctor"
WORK=$(mktemp -d)
REF_PID=""
cleanup() {
  [ -n "$REF_PID" ] && kill "$REF_PID" 2>/dev/null || true
  docker rm -f proctor-bench-bare >/dev/null 2>&1 || true
  "$P" clean >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
median() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print(" ".join("%.4f" % x["median"] for x in r))' "$1"; }
max_rss_mib() { python3 - "$@" <<'PY'
import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print("%.1f" % (resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024))
PY
}

PORT=$(free_port)
"$P" reference --port "$PORT" >/dev/null &
REF_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.05; done
BASE="http://127.0.0.1:$PORT"

# 1. The same requests and assertions in both tools: create an item, then N reads checking status, a header and
#    a JSONPath value.
cat > "$WORK/engine.yaml" <<YAML
title: engine benchmark
question: { number: 1, text: benchmark }
brief: benchmark
rules: [{ id: reads, text: benchmark }]
probes:
  - id: reads
    title: reads
    category: bench
    rules: [reads]
    why: benchmark
    hint: benchmark
    steps:
      - request: { method: POST, path: /items, json: { name: bench, price: 1 } }
        expect: { status: 201 }
        capture: { id: { json: \$.id } }
      - request: { path: "/items/{{id}}" }
        repeat: $REQUESTS
        expect:
          status: 200
          headers: { Content-Type: { equals: application/json } }
          json: [ { path: \$.name, equals: bench } ]
YAML
{
  printf 'POST %s/items\nContent-Type: application/json\n{"name": "bench", "price": 1}\nHTTP 201\n[Captures]\nid: jsonpath "$.id"\n\n' "$BASE"
  for _ in $(seq "$REQUESTS"); do
    printf 'GET %s/items/{{id}}\nHTTP 200\n[Asserts]\nheader "Content-Type" == "application/json"\njsonpath "$.name" == "bench"\n\n' "$BASE"
  done
} > "$WORK/engine.hurl"
ENGINE_CMDS=(-n proctor "$P run $WORK/engine.yaml --url $BASE --color never")
[ "$HAVE_HURL" = 1 ] && ENGINE_CMDS+=(-n hurl "hurl --test $WORK/engine.hurl")
hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$WORK/engine.json" "${ENGINE_CMDS[@]}" >&2
read -r T_PROCTOR T_HURL <<<"$(median "$WORK/engine.json")"
T_HURL=${T_HURL:--}

# 2. The whole catalog against the in-process reference.
hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$WORK/demo.json" -n demo "$P demo --color never" >&2
T_DEMO=$(median "$WORK/demo.json")
"$P" demo --color never --report "json=$WORK/demo-report.json" >/dev/null
read -r LONGEST WAITING <<<"$(python3 - "$WORK/demo-report.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
longest = max(c["duration_ms"] for c in report["challenges"]) / 1000
waits = [sum(s["duration_ms"] for p in c["probes"] for s in p["steps"] if s["label"].startswith("wait"))
         for c in report["challenges"]]
print("%.4f %.4f" % (longest, max(waits) / 1000))
PY
)"

# 3. Start-up.
hyperfine -N --warmup 3 --runs "$((RUNS * 2))" --export-json "$WORK/startup.json" \
  -n validate "$P validate challenges/" -n list "$P list" >&2
read -r T_VALIDATE T_LIST <<<"$(median "$WORK/startup.json")"

# 4. Peak memory.
RSS_ENGINE=$(max_rss_mib "$P" run "$WORK/engine.yaml" --url "$BASE" --color never)
RSS_DEMO=$(max_rss_mib "$P" demo --color never)

# 5. Docker: time to the first probe, against a bare docker run that polls until the service answers.
T_DOCKER="-"; T_BARE="-"; T_LOOP="-"; T_BATCH="-"; RSS_BATCH="-"; T_CAT_DOCKER="-"; T_CAT_INPROC="-"
if docker version >/dev/null 2>&1; then
  RUSTFLAGS="-C target-feature=+crt-static" cargo build --release -q --target x86_64-unknown-linux-gnu \
    -p proctor-reference --target-dir target/static
  # The reference as a sound image (as the Docker tests build it): a non-root user, a health check, and a /data
  # folder that user owns, so that every challenge of the catalog can pass in Docker.
  mkdir -p "$WORK/image/data"
  touch "$WORK/image/data/.keep"
  cp target/static/x86_64-unknown-linux-gnu/release/proctor-reference "$WORK/image/app"
  printf '%s\n' 'FROM scratch' 'COPY app /app' 'COPY --chown=65534:65534 data /data' 'USER 65534:65534' \
    'HEALTHCHECK --interval=5m CMD ["/app", "healthcheck"]' 'ENTRYPOINT ["/app"]' > "$WORK/image/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t proctor-bench-reference "$WORK/image" >/dev/null
  cat > "$WORK/first.yaml" <<'YAML'
title: first probe
question: { number: 21, text: benchmark }
brief: benchmark
rules: [{ id: first, text: benchmark }]
probes:
  - { id: first, title: first, category: bench, rules: [first], why: benchmark, hint: benchmark, steps: [ { request: { path: /items }, expect: { status: 200 } } ] }
YAML
  cat > "$WORK/bare.sh" <<'SH'
#!/usr/bin/env bash
set -e
id=$(docker run -d --name proctor-bench-bare -p 127.0.0.1::8080 proctor-bench-reference)
port=$(docker port "$id" 8080/tcp | head -1 | cut -d: -f2)
until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do sleep 0.01; done
curl -sf "http://127.0.0.1:$port/items" >/dev/null
SH
  chmod +x "$WORK/bare.sh"
  # Both leave their container running (proctor with --keep), so teardown is outside the timing.
  hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$WORK/docker.json" \
    --prepare "$P clean" -n proctor "$P run $WORK/first.yaml --image proctor-bench-reference --keep --color never" \
    --prepare "docker rm -f proctor-bench-bare" -n bare "$WORK/bare.sh" >&2
  read -r T_DOCKER T_BARE <<<"$(median "$WORK/docker.json")"
  docker rm -f proctor-bench-bare >/dev/null 2>&1 || true
  "$P" clean >/dev/null

  # 6. The same BATCH_N submissions (the reference, as a non-root scratch image), graded by a shell loop of
  #    `proctor run --path` and by one `proctor grade --submissions`, one after the other.
  mkdir -p "$WORK/subs"
  for i in $(seq -w "$BATCH_N"); do
    cp -r "$WORK/image" "$WORK/subs/s$i"
  done
  cat > "$WORK/loop.sh" <<SH
#!/usr/bin/env bash
for d in "$WORK"/subs/*; do "$P" run $BATCH_CHALLENGES --path "\$d" -q; done
exit 0
SH
  chmod +x "$WORK/loop.sh"
  hyperfine -N --runs 1 --export-json "$WORK/batch.json" -n loop "$WORK/loop.sh" \
    -n grade "$P grade $BATCH_CHALLENGES --submissions $WORK/subs --out $WORK/out --force --jobs $BATCH_JOBS -q" >&2
  read -r T_LOOP T_BATCH <<<"$(median "$WORK/batch.json")"
  RSS_BATCH=$(max_rss_mib "$P" grade $BATCH_CHALLENGES --submissions "$WORK/subs" --out "$WORK/out" --force \
    --jobs "$BATCH_JOBS" -q)
  "$P" clean >/dev/null

  # 7. One submission's catalog in Docker against the same catalog in-process, side by side.
  hyperfine -N --warmup 1 --runs "$DOCKER_RUNS" --export-json "$WORK/catalog.json" \
    -n docker "$P run $CATALOG --image proctor-bench-reference -q" -n in-process "$P demo $CATALOG -q" >&2
  read -r T_CAT_DOCKER T_CAT_INPROC <<<"$(median "$WORK/catalog.json")"
  # Containers first, so removing the image removes its layers too instead of leaving them dangling.
  "$P" clean >/dev/null
  docker rmi proctor-bench-reference >/dev/null
fi

python3 - "$T_PROCTOR" "$T_HURL" "$T_DEMO" "$LONGEST" "$WAITING" "$T_VALIDATE" "$T_LIST" "$RSS_ENGINE" "$RSS_DEMO" \
  "$T_DOCKER" "$T_BARE" "$REQUESTS" "$RUNS" "$SMOKE" "$T_LOOP" "$T_BATCH" "$RSS_BATCH" "$BATCH_N" \
  "$BATCH_CHALLENGES" "$BATCH_JOBS" "$T_CAT_DOCKER" "$T_CAT_INPROC" "$DOCKER_RUNS" <<'PY' > bench/RESULTS.new.md
import datetime, os, platform, subprocess, sys
(t_proctor, t_hurl, t_demo, longest, waiting, t_validate, t_list, rss_engine, rss_demo, t_docker, t_bare,
 requests, runs, smoke, t_loop, t_batch, rss_batch, batch_n, batch_challenges, batch_jobs, t_cat_docker,
 t_cat_inproc, docker_runs) = sys.argv[1:]
num = lambda x: None if x == "-" else float(x)
ms = lambda x: "-" if x is None else "%.1f ms" % (x * 1000)
ok = lambda c: "✓" if c else "✗"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
t_proctor, t_hurl, t_demo, longest, waiting = map(num, (t_proctor, t_hurl, t_demo, longest, waiting))
t_validate, t_list, t_docker, t_bare = map(num, (t_validate, t_list, t_docker, t_bare))
overhead = max(t_demo - max(longest, waiting), 0.0)
rows = []
if t_hurl:
    rows.append(("1. probe engine, %s requests" % requests, "proctor %s · hurl %s · ratio %.2f" % (ms(t_proctor), ms(t_hurl), t_proctor / t_hurl), "≤ 0.7 × hurl", ok(t_proctor / t_hurl <= 0.7)))
else:
    rows.append(("1. probe engine, %s requests" % requests, "proctor %s (hurl not installed)" % ms(t_proctor), "≤ 0.7 × hurl", "?"))
rows.append(("2. whole catalog (`proctor demo`)", "total %s · longest challenge %s · intrinsic waiting %s · overhead beyond the longest challenge %s (%.0f%%)" % (ms(t_demo), ms(longest), ms(waiting), ms(overhead), 100 * overhead / t_demo), "overhead < 10% of total", ok(overhead < 0.1 * t_demo)))
rows.append(("3. start-up", "validate %s · list %s" % (ms(t_validate), ms(t_list)), "< 50 ms", ok(max(t_validate, t_list) < 0.05)))
rows.append(("4. peak memory (max RSS)", "item 1: %s MiB · item 2: %s MiB" % (rss_engine, rss_demo), "< 50 MiB", ok(max(float(rss_engine), float(rss_demo)) < 50)))
if t_docker is not None:
    rows.append(("5. `run --image` to first probe", "proctor %s · bare docker run %s · difference %s" % (ms(t_docker), ms(t_bare), ms(t_docker - t_bare)), "≤ bare + 300 ms", ok(t_docker - t_bare <= 0.3)))
else:
    rows.append(("5. `run --image` to first probe", "no Docker engine", "≤ bare + 300 ms", "?"))
t_loop, t_batch = num(t_loop), num(t_batch)
if t_batch is not None:
    rows.append(("6. batch: %s submissions × `%s`, --jobs %s" % (batch_n, batch_challenges, batch_jobs), "grade %.1f s · shell loop of `run` %.1f s · ratio %.2f · grade's max RSS %s MiB" % (t_batch, t_loop, t_batch / t_loop, rss_batch), "≤ 0.5 × loop, < 150 MiB", ok(t_batch <= 0.5 * t_loop and float(rss_batch) < 150)))
else:
    rows.append(("6. batch grading", "no Docker engine", "≤ 0.5 × loop, < 150 MiB", "?"))
t_cat_docker, t_cat_inproc = num(t_cat_docker), num(t_cat_inproc)
if t_cat_docker is not None:
    rows.append(("7. catalog in Docker vs in-process (%s runs each)" % docker_runs, "`run --image` %.1f s · `demo` %.1f s · ratio %.2f" % (t_cat_docker, t_cat_inproc, t_cat_docker / t_cat_inproc), "≤ 1.1 × in-process", ok(t_cat_docker <= 1.1 * t_cat_inproc)))
else:
    rows.append(("7. catalog in Docker vs in-process", "no Docker engine", "≤ 1.1 × in-process", "?"))
kernel = platform.release()
print("# Benchmark results\n")
print("Measured by `bench/run.sh` on %s (UTC)%s." % (datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M"), " — SMOKE RUN, not representative" if smoke == "1" else ""))
print("Machine: %d cores (%s), Linux %s. Medians of %s runs (hyperfine), release build.\n" % (os.cpu_count(), cpu, kernel, runs))
print("| item | measured | target | met |")
print("|---|---|---|---|")
for r in rows:
    print("| %s |" % " | ".join(r))
PY
mv bench/RESULTS.new.md bench/RESULTS.md
cat bench/RESULTS.md
