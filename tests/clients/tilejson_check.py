#!/usr/bin/env python3
"""Check TileJSON documents served by a running arcolake, as a map client would.

  tilejson_check.py [--layer NAME]... BASE_URL URL_PATH...

  tilejson_check.py --layer footprints http://127.0.0.1:18080 \
      /collections/demo/tiles/WebMercatorQuad/tilejson.json \
      '/search/tiles/WebMercatorQuad/tilejson.json?collections=demo'

Each URL_PATH is joined to BASE_URL, fetched with urllib and validated
against tests/schemas/tilejson-3.0.0.schema.json (written from the TileJSON
3.0.0 specification) with the `jsonschema` package. Then it checks what
consumers (MapLibre, QGIS, ...) need beyond the schema: every `tiles` entry is
an absolute http(s) URL holding {z}, {x} and {y}; each vector layer id is
non-empty and unique; zoom ranges and bounds/center are consistent. With
--layer NAME, `vector_layers` must exist and hold a layer of that id (the
spec requires `vector_layers` for vector tiles).

Exits non-zero with a message naming the document and the problem.
"""
import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from urllib.parse import urljoin, urlparse

import jsonschema

SCHEMA = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "schemas", "tilejson-3.0.0.schema.json"
)


def fetch(url):
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = resp.read()
            ctype = resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        raise Problem(f"GET answered HTTP {e.code}: {e.read()[:300]!r}")
    except urllib.error.URLError as e:
        raise Problem(f"GET failed: {e.reason}")
    if "json" not in ctype:
        raise Problem(f"Content-Type is {ctype!r}, not JSON")
    try:
        return json.loads(body)
    except ValueError as e:
        raise Problem(f"body is not JSON ({e}): {body[:200]!r}")


class Problem(Exception):
    pass


def schema_errors(validator, doc):
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors]


def consumer_errors(doc, layers_wanted):
    """What TileJSON consumers need beyond the schema (document already schema-valid)."""
    errs = []
    for i, url in enumerate(doc["tiles"]):
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            errs.append(f"tiles/{i}: {url!r} is not an absolute http(s) URL")
        for part in ("{z}", "{x}", "{y}"):
            if part not in url:
                errs.append(f"tiles/{i}: {url!r} has no {part}")

    minzoom, maxzoom = doc.get("minzoom", 0), doc.get("maxzoom", 30)
    if minzoom > maxzoom:
        errs.append(f"minzoom {minzoom} > maxzoom {maxzoom}")

    layers = doc.get("vector_layers")
    if layers is None:
        if layers_wanted:
            errs.append("vector_layers is missing (required for vector tiles)")
    else:
        if layers_wanted and not layers:
            errs.append("vector_layers is empty")
        seen = set()
        for i, layer in enumerate(layers):
            lid = layer["id"]
            if not lid.strip():
                errs.append(f"vector_layers/{i}: id is empty")
            elif lid in seen:
                errs.append(f"vector_layers/{i}: id {lid!r} appears twice")
            seen.add(lid)
            lmin, lmax = layer.get("minzoom"), layer.get("maxzoom")
            if lmin is not None and lmin < minzoom:
                errs.append(f"vector_layers/{i}: minzoom {lmin} < the tileset's minzoom {minzoom}")
            if lmax is not None and lmax > maxzoom:
                errs.append(f"vector_layers/{i}: maxzoom {lmax} > the tileset's maxzoom {maxzoom}")
            if lmin is not None and lmax is not None and lmin > lmax:
                errs.append(f"vector_layers/{i}: minzoom {lmin} > maxzoom {lmax}")
        for name in layers_wanted:
            if name not in seen:
                errs.append(f"vector_layers has no layer {name!r} (ids: {sorted(seen)})")

    bounds = doc.get("bounds")
    if bounds is not None:
        left, bottom, right, top = bounds
        if left > right:
            errs.append(f"bounds {bounds}: left > right (bounds MUST NOT wrap the antimeridian)")
        if bottom > top:
            errs.append(f"bounds {bounds}: bottom > top")
    center = doc.get("center")
    if center is not None:
        lon, lat, zoom = center
        if bounds is not None and not (bounds[0] <= lon <= bounds[2] and bounds[1] <= lat <= bounds[3]):
            errs.append(f"center {center} is outside bounds {bounds}")
        if not minzoom <= zoom <= maxzoom:
            errs.append(f"center zoom {zoom} is outside {minzoom}..{maxzoom}")
    return errs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("base_url")
    ap.add_argument("paths", nargs="+", metavar="URL_PATH")
    ap.add_argument("--layer", action="append", default=[],
                    help="require vector_layers with a layer of this id (repeatable)")
    args = ap.parse_args()

    with open(SCHEMA) as f:
        schema = json.load(f)
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)

    failed = 0
    for path in args.paths:
        url = urljoin(args.base_url.rstrip("/") + "/", path.lstrip("/"))
        try:
            doc = fetch(url)
            errs = schema_errors(validator, doc)
            if errs:
                errs = ["against the TileJSON 3.0.0 schema: " + e for e in errs]
            else:
                errs = consumer_errors(doc, args.layer)
        except Problem as e:
            errs = [str(e)]
        if errs:
            failed += 1
            print(f"FAIL: {url}", file=sys.stderr)
            for e in errs:
                print(f"  - {e}", file=sys.stderr)
        else:
            print(f"ok: {url} (tiles: {doc['tiles'][0]})")
    if failed:
        print(f"FAIL: {failed} of {len(args.paths)} TileJSON documents are not valid", file=sys.stderr)
        sys.exit(1)
    print(f"tilejson_check: {len(args.paths)} TileJSON documents valid")


if __name__ == "__main__":
    main()
