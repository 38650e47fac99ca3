#!/usr/bin/env python3
"""Validate crawled items, as served, against the STAC and extension schemas.

  crawled_items_check.py http://127.0.0.1:18080/ COLLECTION EXPECTED_COUNT

Reads the collection's items from the running server (which was not
restarted after the crawl) as plain JSON, following `next` links, and
validates each one with `jsonschema` against the core Item schema of its
`stac_version` and the schema of every extension it declares, exactly as
served: no client library rewrites the item first (pystac, for one, moves
`proj:epsg` to `proj:code` before validating, which hides what the
projection v2.0.0 schema forbids).

Schemas come from $STAC_SCHEMAS_DIR when set: a directory laid out like the
schema URLs without their scheme (`schemas.stacspec.org/v1.1.0/...`,
`stac-extensions.github.io/projection/v2.0.0/schema.json`). A schema
missing there is an error. Without $STAC_SCHEMAS_DIR they are fetched online.
"""
import json
import os
import sys
import urllib.parse
import urllib.request

import jsonschema
import referencing
import referencing.jsonschema

CORE = "https://schemas.stacspec.org/v{version}/item-spec/json-schema/item.json"


def check(cond, message):
    if not cond:
        print(f"FAIL: {message}", file=sys.stderr)
        sys.exit(1)


def get_json(url):
    req = urllib.request.Request(url, headers={"Accept": "application/geo+json, application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 (test URLs)
        return json.load(resp)


def schema_source():
    """A function from schema URL to the schema document."""
    root = os.environ.get("STAC_SCHEMAS_DIR")
    cache = {}

    def load(uri):
        uri = uri.split("#", 1)[0]
        if uri in cache:
            return cache[uri]
        if root:
            parsed = urllib.parse.urlparse(uri)
            path = os.path.join(root, parsed.netloc, parsed.path.lstrip("/"))
            check(os.path.isfile(path), f"schema {uri} is not in STAC_SCHEMAS_DIR ({path})")
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        else:
            doc = get_json(uri)
        cache[uri] = doc
        return doc

    return load


def validator_for(uri, load, registry):
    schema = load(uri)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    return cls(schema, registry=registry)


def main(url, collection, expected):
    load = schema_source()

    def retrieve(uri):
        doc = load(uri)
        return referencing.Resource.from_contents(doc, default_specification=referencing.jsonschema.DRAFT7)

    registry = referencing.Registry(retrieve=retrieve)
    base = url.rstrip("/")
    items = []
    page = f"{base}/search?{urllib.parse.urlencode({'collections': collection, 'limit': 100})}"
    while page and len(items) <= expected + 100:
        body = get_json(page)
        items.extend(body.get("features", []))
        page = next((ln["href"] for ln in body.get("links", []) if ln.get("rel") == "next"), None)
    check(len(items) == expected, f"{len(items)} crawled items served, expected {expected}")

    validators = {}
    kinds = set()
    for item in items:
        schemas = [CORE.format(version=item.get("stac_version", "1.1.0"))] + list(item.get("stac_extensions", []))
        for uri in schemas:
            if uri not in validators:
                validators[uri] = validator_for(uri, load, registry)
            errors = list(validators[uri].iter_errors(item))
            if errors:
                e = jsonschema.exceptions.best_match(errors)
                while e.context:
                    e = jsonschema.exceptions.best_match(e.context)
                where = "/".join(str(p) for p in e.absolute_path) or "(item)"
                check(False, f"item {item.get('id')} does not validate against {uri}: at {where}: "
                             f"{e.message[:300]} ({len(errors)} error(s))")
        for asset in item.get("assets", {}).values():
            kinds.add(asset.get("type"))
    for want in ("application/vnd+zarr", "application/vnd.apache.parquet", "application/vnd.pmtiles",
                 "application/flatgeobuf", "image/tiff; application=geotiff; profile=cloud-optimized"):
        check(want in kinds, f"no {want} asset among the crawled items")
    col = get_json(f"{base}/collections/{urllib.parse.quote(collection)}")
    bbox = col["extent"]["spatial"]["bbox"][0]
    check(bbox != [-180.0, -90.0, 180.0, 90.0] or any(
        i.get("bbox") and i["bbox"][0] <= -180 and i["bbox"][2] >= 180 for i in items),
        f"collection extent was not recomputed: {bbox}")
    print(f"{len(items)} crawled items validate against core and extension schemas "
          f"({len(validators)} schemas, {len(kinds)} media types)")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
