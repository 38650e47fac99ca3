#!/usr/bin/env python3
"""Validate crawled items, as served, against the STAC and extension schemas.

  crawled_items_check.py http://127.0.0.1:18080/ COLLECTION EXPECTED_COUNT

Uses pystac-client to read the collection's items from the running server
(which was not restarted after the crawl) and pystac's JSON-schema
validation of core and every declared extension (schemas from
$STAC_SCHEMAS_DIR when set, else fetched online).
"""
import os
import sys

from pystac_client import Client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pystac_client_check import check, use_local_schemas  # noqa: E402


def main(url, collection, expected):
    if os.environ.get("STAC_SCHEMAS_DIR"):
        use_local_schemas(os.environ["STAC_SCHEMAS_DIR"])
    client = Client.open(url)
    items = list(client.search(collections=[collection], limit=100).items())
    check(len(items) == expected, f"{len(items)} crawled items served, expected {expected}")
    kinds = set()
    for item in items:
        try:
            item.validate()
        except Exception as e:  # noqa: BLE001  (report which item and why)
            check(False, f"item {item.id} does not validate: {e}")
        for asset in item.assets.values():
            kinds.add(asset.media_type)
    for want in ("application/vnd+zarr", "application/vnd.apache.parquet", "application/vnd.pmtiles",
                 "application/flatgeobuf", "image/tiff; application=geotiff; profile=cloud-optimized"):
        check(want in kinds, f"no {want} asset among the crawled items")
    col = client.get_collection(collection)
    bbox = col.extent.spatial.bboxes[0]
    check(bbox != [-180.0, -90.0, 180.0, 90.0], f"collection extent was not recomputed: {bbox}")
    print(f"{len(items)} crawled items validate against core and extension schemas ({len(kinds)} media types)")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
