#!/usr/bin/env python3
"""Read an `arcolake export` with the ecosystem's readers and compare it with
the API that served the same catalog.

  export_check.py http://127.0.0.1:18080/ EXPORT_DIR

- the static catalog: pystac walks catalog.json → collections → items;
  every item equals the API's (links apart), and catalog, collections and
  items validate against the core STAC schemas ($STAC_SCHEMAS_DIR when set,
  else online);
- stac-geoparquet: `stac_geoparquet.arrow.stac_table_to_items` gives back
  every item (dates compared as instants, numbers as numbers); the `geo`
  metadata names the WKB geometry; DuckDB counts every collection's items
  across the parts (`union_by_name`); geopandas reads each part in CRS84.
"""
import datetime
import glob
import json
import os
import sys
import urllib.parse

import duckdb
import geopandas
import jsonschema
import pyarrow.parquet as pq
import pystac
import stac_geoparquet

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crawled_items_check import check, get_json, schema_source  # noqa: E402


SERVED_ONLY = ("https://stac-extensions.github.io/authentication/", "https://stac-extensions.github.io/alternate-assets/")


def as_stored(item):
    """The API's item without what the server adds to lake items as it
    serves them (its streaming `alternate` hrefs and their `auth:` scheme):
    an export holds the items as stored."""
    item["properties"].pop("auth:schemes", None)
    for asset in item.get("assets", {}).values():
        asset.pop("alternate", None)
        asset.pop("auth:refs", None)
    item["stac_extensions"] = [e for e in item.get("stac_extensions", []) if not e.startswith(SERVED_ONLY)]
    return item


def api_items(base, collection):
    items, page = {}, f"{base}/collections/{urllib.parse.quote(collection)}/items?limit=500"
    while page:
        body = get_json(page)
        for f in body["features"]:
            items[f["id"]] = as_stored(f)
        page = next((ln["href"] for ln in body.get("links", []) if ln.get("rel") == "next"), None)
    return items


def normal(value):
    """A JSON value with RFC 3339 strings as instants to the millisecond
    (stac-geoparquet's timestamps hold milliseconds), numbers as floats,
    and null members as absent (a stac-geoparquet column is null where an
    item lacks the field)."""
    if isinstance(value, dict):
        return {k: normal(v) for k, v in value.items() if k != "links" and v is not None}
    if isinstance(value, list):
        return [normal(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and len(value) >= 20 and value[4] == "-" and value[10] in "Tt":
        try:
            t = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            return t.replace(microsecond=t.microsecond // 1000 * 1000)
        except ValueError:
            return value
    return value


def main(base, out):
    base = base.rstrip("/")
    load = schema_source()
    validators = {}

    def validate(doc, kind):
        uri = f"https://schemas.stacspec.org/v{doc['stac_version']}/{kind}-spec/json-schema/{kind}.json"
        if uri not in validators:
            import referencing
            import referencing.jsonschema

            registry = referencing.Registry(retrieve=lambda u: referencing.Resource.from_contents(
                load(u), default_specification=referencing.jsonschema.DRAFT7))
            schema = load(uri)
            cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
            validators[uri] = cls(schema, registry=registry)
        errors = list(validators[uri].iter_errors(doc))
        check(not errors, f"{kind} {doc.get('id')}: {errors[:1]}")

    catalog = pystac.Catalog.from_file(os.path.join(out, "catalog.json"))
    validate(catalog.to_dict(include_self_link=False), "catalog")
    collections = {c.id: c for c in catalog.get_children()}
    served = {c["id"] for c in get_json(f"{base}/collections")["collections"]}
    check(set(collections) == served, f"collections {sorted(collections)} != served {sorted(served)}")
    total = 0
    for cid, collection in collections.items():
        with open(os.path.join(out, os.path.basename(os.path.dirname(collection.get_self_href())), "collection.json")) as f:
            validate(json.load(f), "collection")
        want = api_items(base, cid)
        got = {i.id: i for i in collection.get_items()}
        check(set(got) == set(want), f"{cid}: static items differ from the API's")
        for iid, item in got.items():
            # The file as written: pystac migrates what it reads (1.0.0
            # items to 1.1.0, proj:epsg to proj:code).
            with open(item.get_self_href()) as f:
                raw = json.load(f)
            validate(raw, "item")
            rels = {ln["rel"] for ln in raw["links"]}
            check({"root", "parent", "collection"} <= rels, f"{iid}: links {rels}")
            check(all(not ln["href"].startswith(("http://127.", "/")) for ln in raw["links"]), f"{iid}: absolute links")
            check(normal(raw) == normal(want[iid]), f"{cid}/{iid}: the static item differs from the API's")
        total += len(got)

        parts = sorted(glob.glob(os.path.join(out, "geoparquet", "*", "*.parquet")))
        mine = [p for p in parts if pq.read_table(p, columns=["collection"]).column(0).to_pylist()[:1] == [cid]]
        check(mine, f"{cid}: no stac-geoparquet part")
        back = {}
        for p in mine:
            meta = pq.ParquetFile(p).metadata.metadata
            geo = json.loads(meta[b"geo"])
            check(geo["primary_column"] == "geometry" and geo["columns"]["geometry"]["encoding"] == "WKB", f"{p}: {geo}")
            check(b"stac-geoparquet" in meta, f"{p}: no stac-geoparquet metadata")
            for it in stac_geoparquet.arrow.stac_table_to_items(pq.read_table(p)):
                back[it["id"]] = it
            frame = geopandas.read_parquet(p)
            check(frame.crs is not None and frame.crs.to_string() in ("OGC:CRS84", "EPSG:4326"), f"{p}: crs {frame.crs}")
        check(set(back) == set(want), f"{cid}: parquet items differ from the API's")
        for iid, it in back.items():
            a, b = normal(it), normal(want[iid])
            # The writer states the STAC version it writes.
            a.pop("stac_version", None)
            b.pop("stac_version", None)
            check(a == b, f"{cid}/{iid}: the parquet item differs from the API's:\n{a}\n{b}")
        n = duckdb.sql(
            f"SELECT count(*) FROM read_parquet({json.dumps(mine)}, union_by_name=true) WHERE collection = '{cid}'"
        ).fetchone()[0]
        check(n == len(want), f"{cid}: DuckDB counts {n}, the API {len(want)}")
    print(f"export: {len(collections)} collections, {total} items; pystac, stac-geoparquet, DuckDB and "
          "geopandas read them as the API serves them")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
