#!/usr/bin/env python3
"""Read assets through signed URLs and the streaming route with real clients.

  stream_check.py http://127.0.0.1:18080/ API_KEY FIXTURES_DIR

The server crawled and serves tests/servers/sources.toml (filled in for
FIXTURES_DIR and the S3 test server): `lake-local` (public, local disk),
`lake-s3` (public, S3, presigned) and `lake-secret` (restricted, the Zarr
stores of FIXTURES_DIR). API_KEY is a key made by
`arcolake keys create --collection lake-secret`. Checks:

- access: anonymous callers neither see nor list `lake-secret`; the key
  lists it;
- gdalinfo opens the largest COG fixture through the public `alternate`
  href, a proxy-signed URL from /sign and the S3 presigned URL from /sign,
  finds its size, and reads it with range requests only: every GET carries
  a `Range` header, and far fewer bytes than the file come down. (GDAL
  learns the size of an S3-signed URL with a whole-object GET, as HEAD is
  not signed for; that one request is GDAL's own and is only reported);
- xarray opens a Zarr v2 store of `lake-secret` from the item signed with
  `?sign=true` (proxy href plus `xarray:storage_options`) and reads the
  same values as from the fixture on disk; a prefix token from
  /token/lake-secret reads `.zmetadata`, and nothing else does.

Prints one line per check passed, and every failure at the end (exit 1).
"""
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import xarray as xr


class Failed(Exception):
    """A check that did not hold."""


def check(cond, message):
    if not cond:
        raise Failed(message)


def passed(message):
    print(f"ok  {message}", flush=True)


def fetch(url, headers=None, method="GET"):
    """(status, headers, body) of a request; HTTP errors are answers too."""
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 (test URLs)
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def get_json(url, headers=None):
    status, _, body = fetch(url, headers)
    check(status == 200, f"GET {url}: {status} {body[:300]!r}")
    return json.loads(body)


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def with_query(url, **params):
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query) + list(params.items())
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def pages(url, headers=None, api_key=None):
    """Every document of a paged list, following `next` links."""
    while url:
        if api_key and "api_key=" not in url:
            url = with_query(url, api_key=api_key)
        doc = get_json(url, headers)
        yield doc
        url = next((link["href"] for link in doc.get("links", []) if link.get("rel") == "next"), None)


def find_asset(root, collection, suffix, headers=None):
    """(item, asset key) of the item whose asset href ends with `/suffix`."""
    for page in pages(f"{root}collections/{collection}/items?limit=100", headers):
        for item in page["features"]:
            for key, asset in item.get("assets", {}).items():
                if asset.get("href", "").rstrip("/").endswith("/" + suffix):
                    return item, key
    raise Failed(f"no item of {collection} has an asset ending with /{suffix}")


# --- access ----------------------------------------------------------------


def check_access(root, key):
    status, _, body = fetch(f"{root}collections/lake-secret")
    check(status == 404, f"anonymous GET /collections/lake-secret: expected 404, got {status} {body[:200]!r}")
    check(json.loads(body).get("code") == "NotFound", f"the 404 is not a NotFound exception: {body[:200]!r}")
    passed("anonymous GET /collections/lake-secret is 404 NotFound")

    anonymous = {c["id"] for p in pages(f"{root}collections") for c in p["collections"]}
    check({"lake-local", "lake-s3"} <= anonymous, f"/collections lacks the public collections: {sorted(anonymous)}")
    check("lake-secret" not in anonymous, f"anonymous /collections lists lake-secret: {sorted(anonymous)}")
    passed("anonymous /collections lists lake-local and lake-s3, not lake-secret")

    granted = {c["id"] for p in pages(f"{root}collections", api_key=key) for c in p["collections"]}
    check("lake-secret" in granted, f"/collections?api_key=<key> does not list lake-secret: {sorted(granted)}")
    passed("/collections?api_key=<key> lists lake-secret")


# --- gdalinfo over HTTP ----------------------------------------------------


def largest_cog(fixtures):
    with open(os.path.join(fixtures, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    cogs = [name for name, m in manifest.items() if m.get("format") == "geotiff" and m.get("cog")]
    check(cogs, "manifest.json lists no COG")
    return max(cogs, key=lambda name: os.path.getsize(os.path.join(fixtures, name)))


def exchanges(verbose):
    """The HTTP exchanges of curl's verbose log (CPL_CURL_VERBOSE): method,
    target, request headers, final status, response headers."""
    found, current, in_request = [], None, False
    for line in verbose.splitlines():
        line = line.rstrip("\r")
        start = re.match(r"> ([A-Z]+) (\S+) HTTP/", line)
        if start:
            current = {"method": start[1], "target": start[2], "request": {}, "status": None, "response": {}}
            found.append(current)
            in_request = True
            continue
        if in_request:
            # curl prints the request head as one block: "> " on its first line only.
            if line and not line.startswith(("*", "<")):
                name, _, value = line.partition(":")
                current["request"][name.strip().lower()] = value.strip()
                continue
            in_request = False
        if line.startswith("< ") and current is not None:
            head = line[2:]
            status = re.match(r"HTTP/\S+ (\d{3})", head)
            if status:
                current["status"], current["response"] = int(status[1]), {}
            elif ":" in head:
                name, _, value = head.partition(":")
                current["response"][name.strip().lower()] = value.strip()
    return found


def gdal_size(target):
    env = dict(os.environ, CPL_CURL_VERBOSE="YES", GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR", GDAL_HTTP_MAX_RETRY="0")
    proc = subprocess.run(["gdalinfo", target], env=env, capture_output=True, text=True, errors="replace", timeout=300)
    size = re.search(r"^Size is (\d+), (\d+)$", proc.stdout, re.M)
    check(proc.returncode == 0 and size, f"gdalinfo {target} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return (int(size[1]), int(size[2])), proc.stderr


def check_gdal(what, url, local, expected):
    """gdalinfo of `url` reports the local file's size, with range requests only."""
    size, verbose = gdal_size("/vsicurl/" + url)
    check(size == expected, f"{what}: gdalinfo says Size is {size}, the local file {expected}")
    log = exchanges(verbose)
    gets = [e for e in log if e["method"] == "GET"]
    check(gets, f"{what}: curl's verbose log shows no GET:\n{verbose[-2000:]}")
    probe = None
    if "X-Amz-Signature=" in url and "range" not in gets[0]["request"]:
        # GDAL asks an S3-signed URL for its size with a GET (HEAD would not
        # match the signature) and reads that answer to its end.
        probe = gets.pop(0)
    file_size = os.path.getsize(local)
    transferred = 0
    for e in gets:
        check("range" in e["request"], f"{what}: a GET without Range: {e['target'][:120]} ({e['request']})")
        check(e["status"] == 206, f"{what}: ranged GET answered {e['status']}, not 206: {e['target'][:120]}")
        check("content-range" in e["response"], f"{what}: 206 without Content-Range: {e['response']}")
        transferred += int(e["response"].get("content-length", 0))
    note = f"{len(gets)} ranged GETs, {transferred} of {file_size} bytes"
    if file_size >= 256 * 1024:
        check(transferred * 10 <= file_size, f"{what}: {note}: not far below the file's size")
    if probe is not None:
        note += f"; plus GDAL's own size probe (a GET of {probe['response'].get('content-length', '?')} bytes)"
    passed(f"gdalinfo {what}: Size is {size[0]}, {size[1]}, {note}")


def check_range_bytes(what, url, local):
    """A ranged GET of `url` returns the local file's bytes."""
    with open(local, "rb") as f:
        f.seek(100)
        want = f.read(1000)
    status, headers, body = fetch(url, {"Range": "bytes=100-1099"})
    check(status == 206, f"{what}: Range GET answered {status}, not 206: {body[:200]!r}")
    check(body == want, f"{what}: bytes 100-1099 differ from the local file")
    total = os.path.getsize(local)
    check(headers.get("Content-Range") == f"bytes 100-1099/{total}", f"{what}: Content-Range {headers.get('Content-Range')}")


def check_cogs(root, fixtures):
    name = largest_cog(fixtures)
    local = os.path.join(fixtures, name)
    expected, _ = gdal_size(local)
    assets = f"{root}assets/"

    item, key = find_asset(root, "lake-local", name)
    asset = item["assets"][key]
    public = asset.get("alternate", {}).get("https", {}).get("href")
    check(public and public.startswith(assets + "lake-local/"),
          f"lake-local item {item['id']}: no alternate.https href to the streaming route: {json.dumps(asset)[:400]}")
    check("?" not in public, f"the public alternate href carries a query: {public}")
    check_range_bytes("public alternate href", public, local)
    check_gdal(f"of {name} through the public alternate href", public, local, expected)

    signed = get_json(f"{root}sign?" + urllib.parse.urlencode({"href": asset["href"]}))
    proxied = signed.get("href", "")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(proxied).query))
    check(proxied.startswith(assets + "lake-local/") and {"exp", "kid", "sig"} <= query.keys() and signed.get("msft:expiry"),
          f"/sign of {asset['href']}: not a signed streaming URL with an expiry: {signed}")
    check_range_bytes("proxy-signed href", proxied, local)
    check_gdal(f"of {name} through a proxy-signed href", proxied, local, expected)
    forged = proxied.replace(f"sig={query['sig']}", "sig=" + ("0" * len(query["sig"])))
    status, _, body = fetch(forged, {"Range": "bytes=0-15"})
    check(status == 403, f"a forged signature answered {status}, not 403: {body[:200]!r}")
    passed("a forged signature on the streaming route is 403")

    item, key = find_asset(root, "lake-s3", name)
    href = item["assets"][key]["href"]
    check(href.startswith("s3://"), f"lake-s3 item {item['id']}: asset href {href} is not s3://")
    signed = get_json(f"{root}sign?" + urllib.parse.urlencode({"href": href}))
    presigned = signed.get("href", "")
    check("X-Amz-Signature=" in presigned and not presigned.startswith(root) and signed.get("msft:expiry"),
          f"/sign of {href}: not an S3 presigned URL with an expiry: {signed}")
    check_range_bytes("S3 presigned URL", presigned, local)
    check_gdal(f"of {name} through the S3 presigned URL", presigned, local, expected)


# --- xarray over the streaming route ----------------------------------------


def zarr_v2_fixture(fixtures):
    with open(os.path.join(fixtures, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    stores = sorted(
        name for name, m in manifest.items()
        if m.get("format") == "zarr" and m.get("zarr_format") == 2
        and os.path.isfile(os.path.join(fixtures, name, ".zmetadata"))
    )
    check(stores, "manifest.json lists no consolidated Zarr v2 store")
    return "era_v2.zarr" if "era_v2.zarr" in stores else stores[0]


def first_chunk(var):
    chunks = var.encoding.get("chunks") or var.shape
    return var.isel({dim: slice(0, n) for dim, n in zip(var.dims, chunks)}).values


def check_zarr(root, key, fixtures):
    name = zarr_v2_fixture(fixtures)
    local = os.path.join(fixtures, name)
    item, asset_key = find_asset(root, "lake-secret", name, bearer(key))
    url = f"{root}collections/lake-secret/items/{urllib.parse.quote(item['id'])}?sign=true"
    asset = get_json(url, bearer(key))["assets"][asset_key]
    href = asset["href"]
    check(href == f"{root}assets/lake-secret/{name}",
          f"signed Zarr asset of lake-secret: href {href}, expected {root}assets/lake-secret/{name}")
    options = asset.get("xarray:storage_options", {})
    auth = options.get("headers", {}).get("Authorization", "")
    check(auth.startswith("Bearer ") and "col=lake-secret&" in auth and asset.get("arcolake:expiry"),
          f"signed Zarr asset: no lake-secret token in xarray:storage_options: {json.dumps(asset)[:500]}")
    passed(f"?sign=true gives {name} a proxy href and a lake-secret token in xarray:storage_options")

    remote = xr.open_zarr(href, storage_options=options, consolidated=True, chunks=None)
    disk = xr.open_zarr(local, consolidated=True, chunks=None)
    check(sorted(remote.data_vars) == sorted(disk.data_vars),
          f"variables differ: {sorted(remote.data_vars)} vs {sorted(disk.data_vars)}")
    var = sorted(disk.data_vars)[0]
    got, want = first_chunk(remote[var]), first_chunk(disk[var])
    check(got.shape == want.shape and got.size > 0, f"{var}: first chunk shapes {got.shape} vs {want.shape}")
    np.testing.assert_array_equal(got, want, err_msg=f"{var}: first chunk differs from the fixture")
    for coord in disk.coords:
        np.testing.assert_array_equal(remote[coord].values, disk[coord].values, err_msg=f"coordinate {coord} differs")
    passed(f"xarray reads {name}/{var} (first chunk {want.shape}) and its coordinates through the streaming route, "
           "equal to the fixture")

    try:
        xr.open_zarr(href, consolidated=True, chunks=None)
    except Exception:  # noqa: BLE001 (any failure to open is the point)
        passed(f"xarray cannot open {name} without the storage options")
    else:
        raise Failed(f"xarray opened {href} without credentials")

    status, _, body = fetch(f"{root}token/lake-secret")
    check(status == 404, f"anonymous GET /token/lake-secret: expected 404, got {status} {body[:200]!r}")
    token = get_json(f"{root}token/lake-secret", bearer(key))
    query = dict(urllib.parse.parse_qsl(token.get("token", "")))
    check(query.get("col") == "lake-secret" and {"exp", "kid", "sig"} <= query.keys() and token.get("msft:expiry"),
          f"/token/lake-secret: not a prefix token with an expiry: {token}")
    metadata = f"{href}/.zmetadata"
    status, headers, body = fetch(f"{metadata}?{token['token']}")
    check(status == 200, f"GET {metadata}?<token>: {status} {body[:200]!r}")
    check(headers.get_content_type() == "application/json" and "metadata" in json.loads(body),
          f"{metadata}?<token> is not the consolidated metadata: {headers.get('Content-Type')} {body[:200]!r}")
    passed(f"{name}/.zmetadata with the /token/lake-secret token is 200 JSON")
    status, _, body = fetch(metadata)
    check(status == 404, f"GET {metadata} without token or key: expected 404, got {status} {body[:200]!r}")
    passed(f"{name}/.zmetadata without token or key is 404")


def main(root, key, fixtures):
    root = root.rstrip("/") + "/"
    fixtures = os.path.abspath(fixtures)
    failures = []
    for name, run in [
        ("access", lambda: check_access(root, key)),
        ("gdalinfo", lambda: check_cogs(root, fixtures)),
        ("xarray", lambda: check_zarr(root, key, fixtures)),
    ]:
        try:
            run()
        except Failed as e:
            failures.append(f"{name}: {e}")
            print(f"FAIL {name}: {e}", file=sys.stderr, flush=True)
        except Exception as e:  # noqa: BLE001 (a client library's error is a failure too)
            failures.append(f"{name}: {type(e).__name__}: {e}")
            print(f"FAIL {name}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
    if failures:
        print(f"{len(failures)} of the stream checks failed", file=sys.stderr)
        sys.exit(1)
    print("all stream checks passed")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
