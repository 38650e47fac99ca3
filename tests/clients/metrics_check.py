"""Read arcolake's /metrics with the Prometheus Python client's OpenMetrics
parser (strict: a malformed line, a histogram without +Inf or a missing
# EOF fails), after the other clients have used the server.

  python metrics_check.py BASE_URL
"""
import sys
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def main():
    base = sys.argv[1].rstrip("/")
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as r:
        media = r.headers.get("Content-Type", "")
        text = r.read().decode()
    if not media.startswith("application/openmetrics-text"):
        fail(f"/metrics is {media!r}, not application/openmetrics-text")
    try:
        families = {f.name: f for f in text_string_to_metric_families(text)}
    except Exception as e:  # the parser's own message says what is wrong
        fail(f"/metrics is not valid OpenMetrics: {e}")
    want = {
        "arcolake_http_requests": "counter",
        "arcolake_http_request_duration_seconds": "histogram",
        "arcolake_http_requests_in_flight": "gauge",
        "arcolake_db_pool_connections": "gauge",
        "arcolake_db_pool_idle_connections": "gauge",
        "arcolake_db_pool_max_connections": "gauge",
    }
    for name, kind in want.items():
        if name not in families:
            fail(f"/metrics has no {name}: {sorted(families)}")
        if families[name].type != kind:
            fail(f"{name} is a {families[name].type}, not a {kind}")
    requests = families["arcolake_http_requests"].samples
    routes = {s.labels["route"] for s in requests}
    for route in ("/search", "/collections", "/collections/{collectionId}/items"):
        if route not in routes:
            fail(f"no requests counted for {route}: {sorted(routes)}")
    if any("/collections/sentinel" in r for r in routes):
        fail(f"a path became a route label: {sorted(routes)}")
    statuses = {s.labels["status"] for s in requests}
    if not {"200", "400"} <= statuses:
        fail(f"expected 200 and 400 answers to be counted, got {sorted(statuses)}")
    total = sum(s.value for s in requests if s.name.endswith("_total"))
    counts = sum(s.value for s in families["arcolake_http_request_duration_seconds"].samples
                 if s.name.endswith("_count"))
    if total != counts:
        fail(f"{total} requests counted but {counts} timed")
    print(f"ok  /metrics parses as OpenMetrics: {len(families)} families, {int(total)} requests "
          f"over {len(routes)} routes, statuses {sorted(statuses)}")


if __name__ == "__main__":
    main()
