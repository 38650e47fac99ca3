#!/usr/bin/env python3
"""Check the search extensions of a running arcolake (demo catalog) the way
notebook users reach them: pystac-client with filter (text and JSON),
sortby, fields, query and collection search, and big inputs over plain HTTP.

  search_extensions_check.py http://127.0.0.1:18080/

Expected answers are computed here from what the server returns for the
unfiltered search, so the check holds for any demo data.
"""
import json
import math
import sys
import urllib.error
import urllib.request

from pystac_client import Client


def check(cond, message):
    if not cond:
        print(f"FAIL: {message}", file=sys.stderr)
        sys.exit(1)


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def main(url):
    client = Client.open(url)
    for c in ("FILTER", "SORT", "FIELDS", "QUERY", "COLLECTION_SEARCH", "COLLECTION_SEARCH_FREE_TEXT"):
        check(client.conforms_to(c), f"does not conform to {c}")
    everything = [i.to_dict() for i in client.search(collections=["sentinel-2-l2a"], max_items=None).items()]
    check(len(everything) == 20, f"{len(everything)} sentinel-2 items, want 20")
    cloudy = sorted(i["id"] for i in everything if i["properties"]["eo:cloud_cover"] < 20)
    check(cloudy, "demo data has no item under 20 % cloud")

    text = client.search(collections=["sentinel-2-l2a"], filter="eo:cloud_cover < 20", filter_lang="cql2-text", max_items=None)
    check(sorted(i.id for i in text.items()) == cloudy, "cql2-text filter")
    as_json = {"op": "<", "args": [{"property": "eo:cloud_cover"}, 20]}
    j = client.search(collections=["sentinel-2-l2a"], filter=as_json, max_items=None, method="POST")
    check(sorted(i.id for i in j.items()) == cloudy, "cql2-json filter by POST")
    j = client.search(collections=["sentinel-2-l2a"], filter=as_json, filter_lang="cql2-json", max_items=None, method="GET")
    check(sorted(i.id for i in j.items()) == cloudy, "cql2-json filter by GET")

    q = client.search(collections=["sentinel-2-l2a"], query=["eo:cloud_cover<20"], max_items=None)
    check(sorted(i.id for i in q.items()) == cloudy, "query extension in pystac-client's string form")

    by_cloud = [i.properties["eo:cloud_cover"] for i in client.search(collections=["sentinel-2-l2a"], sortby="-eo:cloud_cover", limit=3, max_items=None).items()]
    check(by_cloud == sorted((i["properties"]["eo:cloud_cover"] for i in everything), reverse=True), f"sortby -eo:cloud_cover: {by_cloud}")
    by_cloud = [i.properties["eo:cloud_cover"] for i in client.search(collections=["sentinel-2-l2a"], sortby=[{"field": "properties.eo:cloud_cover", "direction": "asc"}], limit=4, max_items=None, method="POST").items()]
    check(by_cloud == sorted(i["properties"]["eo:cloud_cover"] for i in everything), "POST sortby ascending")

    slim = next(client.search(collections=["sentinel-2-l2a"], fields=["id", "properties.eo:cloud_cover"], max_items=1).items_as_dicts())
    check(set(slim["properties"]) == {"eo:cloud_cover"} and "assets" not in slim, f"fields include: {sorted(slim)}")
    slim = next(client.search(collections=["sentinel-2-l2a"], fields=["-assets"], max_items=1).items_as_dicts())
    check("assets" not in slim and "geometry" in slim, "fields exclude")

    found = [c.id for c in client.collection_search(q="landsat").collections()]
    check(found == ["landsat-c2-l2"], f"collection search q=landsat: {found}")
    found = [c.id for c in client.collection_search(bbox=[-180, -90, 180, 90], sortby="-id").collections()]
    check(found[:2] == sorted(found, reverse=True)[:2], f"collection search sortby: {found}")

    search = f"{url.rstrip('/')}/search"
    # What STAC Browser reads: sortables, inline geometry, counts and a
    # first link on every later page.
    status, sortables = get(f"{url.rstrip('/')}/sortables")
    check(status == 200 and "eo:cloud_cover" in sortables["properties"] and "geometry" not in sortables["properties"], f"sortables: {status}")
    status, queryables = get(f"{url.rstrip('/')}/queryables")
    check(status == 200 and "$ref" not in json.dumps(queryables), "queryables refer to no external schema")
    status, page = get(f"{search}?collections=sentinel-2-l2a&limit=5")
    pages = 1
    while True:
        check(page.get("numberMatched") == 20, f"page {pages}: numberMatched {page.get('numberMatched')}")
        links = {l["rel"]: l for l in page["links"]}
        check(pages == 1 or "first" in links, f"page {pages} has no first link")
        if "next" not in links:
            break
        status, page = get(links["next"]["href"])
        pages += 1
    check(pages == 4, f"{pages} pages of 5 for 20 items")
    # A string where the spec has an array is read as the GET form (what
    # stac-api-validator sends); another type is a 400 naming the member.
    status, r = post(search, {"collections": "sentinel-2-l2a", "limit": 1})
    check(status == 200 and r["features"] and r["features"][0]["collection"] == "sentinel-2-l2a",
          f"collections as a string: {status}")
    status, r = post(search, {"collections": 5})
    check(status == 400 and "collections" in r.get("description", ""), f"collections as a number: {status}")
    # 100,000-vertex polygon
    n = 100_000
    ring = [[150 * math.cos(2 * math.pi * k / n), 80 * math.sin(2 * math.pi * k / n)] for k in range(n)]
    ring.append(ring[0])
    status, body = post(search, {"intersects": {"type": "Polygon", "coordinates": [ring]}, "limit": 1})
    check(status == 200, f"100k-vertex polygon: {status} {str(body)[:200]}")
    # 200 levels of nesting, text and JSON
    expr = "eo:cloud_cover < 20"
    nested = {"op": "<", "args": [{"property": "eo:cloud_cover"}, 20]}
    for _ in range(100):
        expr = f"NOT (NOT ({expr}))"
        nested = {"op": "not", "args": [{"op": "not", "args": [nested]}]}
    for body in ({"filter": expr, "filter-lang": "cql2-text"}, {"filter": nested}):
        status, r = post(search, {**body, "collections": ["sentinel-2-l2a"], "limit": 100})
        check(status == 200 and sorted(f["id"] for f in r["features"]) == cloudy, f"200-level filter: {status}")
    # 10,000-value in list
    ids = [f"nope-{k}" for k in range(10_000)] + [cloudy[0]]
    status, r = post(search, {"filter": {"op": "in", "args": [{"property": "id"}, ids]}})
    check(status == 200 and [f["id"] for f in r["features"]] == [cloudy[0]], f"10,000-value in list: {status}")
    # Far too deep: a 400 that names the limit
    deep = "eo:cloud_cover < 20"
    for _ in range(2_000):
        deep = f"({deep})"
    status, r = post(search, {"filter": deep, "filter-lang": "cql2-text"})
    check(status == 400 and "at most" in r.get("description", ""), f"2,000-level filter: {status} {r}")
    print("search extensions: OK")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080/")
