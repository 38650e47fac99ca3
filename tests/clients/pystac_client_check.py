#!/usr/bin/env python3
"""Check a running arcolake with pystac-client, the way a notebook user would.

  pystac_client_check.py http://127.0.0.1:18080/

Exits non-zero with a message on the first thing that does not work.
"""
import json
import os
import sys
from urllib.parse import urlparse

import pystac.validation.stac_validator as stac_validator
from pystac_client import Client


def use_local_schemas(root):
    """Answer schema URLs from a local mirror laid out as host/path (no internet needed)."""
    original = stac_validator.JsonSchemaSTACValidator._get_schema

    def get_schema(self, uri):
        parsed = urlparse(uri)
        path = os.path.join(root, parsed.netloc, parsed.path.lstrip("/"))
        if uri not in self.schema_cache and os.path.isfile(path):
            with open(path) as f:
                self.schema_cache[uri] = json.load(f)
        return original(self, uri)

    stac_validator.JsonSchemaSTACValidator._get_schema = get_schema


def check(cond, message):
    if not cond:
        print(f"FAIL: {message}", file=sys.stderr)
        sys.exit(1)


def main(url):
    if os.environ.get("STAC_SCHEMAS_DIR"):
        use_local_schemas(os.environ["STAC_SCHEMAS_DIR"])
    client = Client.open(url)
    for conformance in ("CORE", "ITEM_SEARCH", "COLLECTIONS", "FEATURES"):
        check(client.conforms_to(conformance), f"does not conform to {conformance}")

    collections = {c.id: c for c in client.get_collections()}
    check({"sentinel-2-l2a", "landsat-c2-l2"} <= set(collections), f"collections: {sorted(collections)}")
    s2 = client.get_collection("sentinel-2-l2a")
    check(s2.extent.spatial.bboxes, "collection without extent")

    # The demo catalog's two collections (the demo also crawls its data lake).
    everything = list(client.search(collections=["sentinel-2-l2a", "landsat-c2-l2"], max_items=None, limit=7).items())
    check(len(everything) == 40, f"paging all items with limit=7 gave {len(everything)}, want 40")
    check(len({(i.collection_id, i.id) for i in everything}) == 40, "an item was repeated while paging")

    first = everything[0]
    lon = (first.bbox[0] + first.bbox[2]) / 2 if first.bbox[0] <= first.bbox[2] else first.bbox[0]
    lat = (first.bbox[1] + first.bbox[3]) / 2
    in_box = list(client.search(bbox=[lon - 0.01, lat - 0.01, lon + 0.01, lat + 0.01], max_items=100).items())
    check(any(i.id == first.id for i in in_box), "bbox search misses the item it was built around")

    ds = list(client.search(collections=["sentinel-2-l2a"], datetime="2017-01-01/2019-12-31", max_items=None).items())
    check(ds and all(i.datetime.year <= 2019 for i in ds), "datetime search returned items outside the interval")
    check(all(i.collection_id == "sentinel-2-l2a" for i in ds), "collections filter ignored")

    point = {"type": "Point", "coordinates": [lon, lat]}
    hits = list(client.search(intersects=point, max_items=100).items())
    check(any(i.id == first.id for i in hits), "intersects search misses the item")

    search = client.search(collections=["landsat-c2-l2"], limit=5)
    matched = search.matched()
    check(matched == 20, f"numberMatched for landsat is {matched}, want 20")

    post = list(client.search(collections=["sentinel-2-l2a"], limit=3, max_items=None, method="POST").items())
    check(len(post) == 20, f"POST paging gave {len(post)} items, want 20")

    item = s2.get_item(first.id) if first.collection_id == "sentinel-2-l2a" else client.get_collection(first.collection_id).get_item(first.id)
    check(item is not None and item.id == first.id, "get_item failed")
    check(item.assets, "item without assets")
    item.validate()
    print(f"pystac-client: OK ({len(everything)} items, {len(collections)} collections)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080/")
