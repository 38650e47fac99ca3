#!/usr/bin/env python3
"""Send a few thousand malformed requests to a running arcolake; fail on any 5xx
or any error answer that is not a JSON body.

  bad_input_check.py http://127.0.0.1:18080 [ADMIN_TOKEN]

Writes (with the token) go to scratch collections named `probe-*`, created
and deleted by this script; the demo data must be exactly as it was at the
end (checked).
"""
import json
import random
import sys
import urllib.parse
import urllib.request

random.seed(7)
base = sys.argv[1].rstrip("/") if len(sys.argv) > 1 else "http://127.0.0.1:8080"
token = sys.argv[2] if len(sys.argv) > 2 else "no-token"
vals = ["", "0", "-1", "1e309", "NaN", "nan", "inf", "999999999999999999999", "1,2,3,4", "-181,-91,181,91", "180,-90,-180,90",
        "../..", "..", "/", "2020-01-01", "2020-13-01T00:00:00Z", "9999-12-31T23:59:59Z/..", "0000-01-01T00:00:00Z",
        "\u0000", "%", "'; drop table items; --", "{}", "[]", '{"type":"Point","coordinates":[1e308,1e308]}',
        '{"type":"GeometryCollection","geometries":[]}', '{"type":"Polygon","coordinates":[]}', "a" * 5000, "ü", "🙂",
        '{"type":"MultiPolygon","coordinates":[[[[0,0],[1,0],[1,1],[0,0]]]]}', '{"type":"Point","coordinates":[0,0,0,0,0]}']
params = ["bbox", "datetime", "limit", "token", "ids", "collections", "intersects", "filter", "sortby", "x", "filter-lang", "fields",
          "query", "q", "aggregations", "datetime_frequency_interval", "grid_geohash_frequency_precision",
          "grid_geotile_frequency_precision", "context"]
vals += ["cql2-json", "cql2-text", "total_count,grid_geohash_frequency", "grid_geotile_frequency", "datetime_frequency", "fortnight",
         "13", "-3", "S_INTERSECTS(geometry, POINT(500000 5000000))", "S_CROSSES(geometry, GEOMETRYCOLLECTION(POLYGON((9 49, 11 51, 11 49, 9 51, 9 49))))",
         "t_meets(datetime, interval('2020-01-01', '..'))", "\"eo:cloud_cover\" / 0 > 1", "a_contained_by(instruments, ('msi'))",
         '{"op":"s_intersects","args":[{"property":"geometry"},{"type":"Point","coordinates":[1e308,0]}]}', "+datetime,-nope", "-geometry,x"]
paths = ["/search", "/collections/sentinel-2-l2a/items", "/collections", "/collections/sentinel-2-l2a", "/", "/api", "/conformance",
         "/collections/%C3%BC/items/x", "/collections/sentinel-2-l2a/items/" + "x" * 3000, "/collections/..%2F..", "/search/",
         "/aggregate", "/aggregations", "/collections/sentinel-2-l2a/aggregate", "/collections/nope/aggregate", "/queryables",
         "/collections/sentinel-2-l2a/queryables", "/collections/nope/queryables", "/sortables", "/collections/sentinel-2-l2a/sortables"]
post_paths = ["/search", "/aggregate", "/collections-search", "/collections/sentinel-2-l2a/aggregate"]
bad = 0; n = 0
def fetch(path):
    with urllib.request.urlopen(base + path, timeout=60) as r:
        return r.read()
def demo_state():
    """What the rest of the run relies on: the demo collections and their items."""
    cols = json.loads(fetch("/collections?limit=1000"))
    ids = sorted(c["id"] for c in cols["collections"] if not c["id"].startswith("probe-"))
    state = {}
    for cid in ids:
        col = json.loads(fetch(f"/collections/{urllib.parse.quote(cid)}"))
        items = json.loads(fetch(f"/collections/{urllib.parse.quote(cid)}/items?limit=10000"))
        state[cid] = (json.dumps(col.get("extent"), sort_keys=True), sorted(json.dumps(f, sort_keys=True) for f in items["features"]))
    return state
before = demo_state()
def admin(method, path, body=None):
    req = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": "application/json", "Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
def scratch():
    admin("POST", "/collections", {"type": "Collection", "stac_version": "1.0.0", "id": "probe-scratch", "description": "bad-input probe",
                                   "license": "CC0-1.0", "links": [],
                                   "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]}, "temporal": {"interval": [[None, None]]}}})
scratch()
def send(req):
    global bad, n
    n += 1
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        body = e.read()
        if e.code >= 500:
            bad += 1; print("5xx", e.code, req.full_url[:150], (req.data or b"")[:150], body[:200])
        else:
            try: json.loads(body)
            except Exception: print("non-JSON error body", e.code, req.full_url[:100], body[:100]); bad += 1
        return e.code
# Known-hard inputs first, each on its own so no other error masks it: these
# once made the server answer 500 (NUL characters reach PostgreSQL text).
fixed_get = ["/search?ids=a%00b", "/search?collections=s%00", "/search?ids=" + "%00" * 3,
             "/search?bbox=0,0,1e309,1", "/search?datetime=9999-12-31T23:59:59Z", "/search?limit=99999999999999999999",
             "/collections/sentinel-2-l2a/items?datetime=0001-01-01T00:00:00Z/..", "/search?token=" + "A" * 5000]
for path in fixed_get:
    send(urllib.request.Request(base + path))
fixed_post = [{"ids": ["a\u0000b"]}, {"collections": ["\u0000"]}, {"intersects": {"type": "Point", "coordinates": [1e308, 1e308]}},
              {"intersects": {"type": "Polygon", "coordinates": [[[0, 0], [10, 10], [10, 0], [0, 10], [0, 0]]]}}]
for body in fixed_post:
    send(urllib.request.Request(base + "/search", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}))
nul_item = {"type": "Feature", "stac_version": "1.0.0", "id": "nul", "geometry": None, "assets": {},
            "properties": {"datetime": "2020-01-01T00:00:00Z", "note": "a\u0000b"}}
send(urllib.request.Request(base + "/collections/probe-scratch/items", data=json.dumps(nul_item).encode(), method="POST",
                            headers={"Content-Type": "application/json", "Authorization": "Bearer " + token}))

for _ in range(1500):
    q = {random.choice(params): random.choice(vals) for _ in range(random.randint(0, 3))}
    url = base + random.choice(paths) + "?" + urllib.parse.urlencode(q)
    send(urllib.request.Request(url))
for _ in range(800):
    body = {random.choice(params): random.choice([json.loads(v) if v.startswith(("{", "[")) else v for v in vals] + [1, -5, 1e300, None, [1, 2, 3, 4], [None], {"a": 1}, ["a"] * 3]) for _ in range(random.randint(0, 4))}
    send(urllib.request.Request(base + random.choice(post_paths), data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}))
for i in range(400):
    if i % 50 == 0:
        scratch()
    doc = {"type": random.choice(["Feature", "Collection", "FeatureCollection", 1]), "id": random.choice(["probe-a", "", "probe-" + "x" * 2000, 5, "probe-\u0000"]),
           "stac_version": "1.0.0", "geometry": random.choice([None, {"type": "Point", "coordinates": [1, 2]}, {"type": "Point"}, "x", {"type": "Polygon", "coordinates": [[[0, 0], [1e308, 0], [1, 1], [0, 0]]]}]),
           "properties": random.choice([{}, {"datetime": "2020-01-01T00:00:00Z"}, {"datetime": None, "start_datetime": "2020-01-01T00:00:00Z", "end_datetime": "2019-01-01T00:00:00Z"}, None, []]),
           "assets": random.choice([{}, {"a": {}}, {"a": {"href": 1}}, []]), "links": random.choice([[], [{}], None, [{"rel": "x", "href": "y"}]]),
           "description": "d", "license": "l", "extent": random.choice([{}, {"spatial": {"bbox": [[0, 0, 1, 1]]}, "temporal": {"interval": [[None, None]]}}])}
    if doc["type"] == "FeatureCollection": doc["features"] = [doc.copy(), 5]
    path = random.choice(["/collections", "/collections/probe-scratch/items", "/collections/probe-scratch/items/probe-a", "/collections/probe-scratch"])
    method = random.choice(["POST", "PUT", "PATCH", "DELETE"])
    send(urllib.request.Request(base + path, data=json.dumps(doc).encode(), method=method, headers={"Content-Type": "application/json", "Authorization": "Bearer " + token}))
# The hostile writes stayed in their scratch collections, which go now.
for c in json.loads(fetch("/collections?limit=1000"))["collections"]:
    if c["id"].startswith("probe-"):
        admin("DELETE", "/collections/" + urllib.parse.quote(c["id"], safe=""))
after = demo_state()
if after != before:
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    print("the probe changed the demo catalog:", changed); bad += 1
print(f"bad input: {n} requests, {bad} answered with a 5xx or a non-JSON error")
sys.exit(1 if bad else 0)
