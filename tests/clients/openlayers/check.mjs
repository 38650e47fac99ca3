// Checks that the real OpenLayers library discovers and loads arcolake's
// OGC API vector tiles the way a web map using `ol/source/OGCVectorTile` does.
//
//   node check.mjs TILESET_URL Z X Y EXPECTED_ID
//
// TILESET_URL  e.g. http://127.0.0.1:PORT/collections/COLL/tiles/WebMercatorQuad
// Z X Y        OpenLayers tile coordinate [z, x, y]: x = tileCol, y = tileRow
//              counted from the top (WebMercatorQuad is cornerOfOrigin topLeft)
// EXPECTED_ID  value of the `id` property of a feature that must be in that tile
//
// Runs in Node >= 18 without a browser. OpenLayers' modules used here import
// without DOM globals; the only browser API they need is XMLHttpRequest (ol/net.js
// getJSON and ol/featureloader.js use it), which Node lacks. It is supplied through
// OpenLayers' own hook `overrideXHR` (ol/net.js) by a small fetch-backed class below.
//
// Steps, all with OpenLayers' code except the XHR transport:
//   1. getTileSetInfo (ol/source/ogcTileUtil.js), as OGCVectorTile calls it: fetches
//      the tileset JSON, picks the `item` link for application/vnd.mapbox-vector-tile,
//      follows the `.../rel/ogc/1.0/tiling-scheme` link to the tile matrix set and
//      builds the WMTS tile grid and tile URL function.
//   2. The tile grid's extent for [z, x, y] must equal OpenLayers' standard XYZ
//      (EPSG:3857) grid's, i.e. the served tile matrix set is WebMercatorQuad.
//   3. The URL OpenLayers builds for [z, x, y] is fetched and decoded with
//      ol/format/MVT.js (readFeatures with the tile extent and EPSG:3857, as
//      ol/featureloader.js does); a feature with id === EXPECTED_ID must be there
//      and lie within the tile.
//   4. An actual `new OGCVectorTile({url, format: new MVT()})` source (default
//      options, as in OpenLayers' OGC vector tiles example) must become 'ready',
//      build the same tile URL, and load the tile through its own tile loader
//      (XHR, arraybuffer) with the feature present.
//
// Exit status: 0 ok, 1 check failed, 2 usage error.

import {getTileSetInfo} from 'ol/source/ogcTileUtil.js';
import OGCVectorTile from 'ol/source/OGCVectorTile.js';
import MVT from 'ol/format/MVT.js';
import {overrideXHR} from 'ol/net.js';
import {get as getProjection} from 'ol/proj.js';
import {createXYZ} from 'ol/tilegrid.js';
import {intersects, getWidth} from 'ol/extent.js';
import TileState from 'ol/TileState.js';

const MVT_TYPE = 'application/vnd.mapbox-vector-tile';
const TIMEOUT_MS = 15000;

function usage(msg) {
  console.error(`error: ${msg}`);
  console.error('usage: node check.mjs TILESET_URL Z X Y EXPECTED_ID');
  process.exit(2);
}

function fail(msg) {
  console.error(`FAIL: ${msg}`);
  process.exit(1);
}

const args = process.argv.slice(2);
if (args.length !== 5) {
  usage(`expected 5 arguments, got ${args.length}`);
}
const [tilesetUrl, zArg, xArg, yArg, expectedId] = args;
try {
  new URL(tilesetUrl);
} catch {
  usage(`not an absolute URL: ${tilesetUrl}`);
}
const [z, x, y] = [zArg, xArg, yArg].map((s) => {
  if (!/^\d+$/.test(s)) {
    usage(`Z X Y must be non-negative integers, got ${s}`);
  }
  return Number(s);
});
if (x >= 2 ** z || y >= 2 ** z) {
  usage(`tile ${z}/${x}/${y} is outside WebMercatorQuad level ${z}`);
}
const tileCoord = [z, x, y];

// --- XMLHttpRequest for Node, on top of fetch -----------------------------
// Implements what ol/net.js (getJSON) and ol/featureloader.js (loadFeaturesXhr)
// use: open, setRequestHeader, send, responseType, status, responseText,
// response, addEventListener('load'|'error') and onload/onerror.
const requests = [];

class FetchXHR {
  constructor() {
    this.status = 0;
    this.responseType = '';
    this.responseText = '';
    this.response = null;
    this.withCredentials = false;
    this.onload = null;
    this.onerror = null;
    this.listeners_ = {load: [], error: []};
    this.headers_ = {};
  }
  addEventListener(type, fn) {
    (this.listeners_[type] ||= []).push(fn);
  }
  open(method, url) {
    this.method_ = method;
    this.url_ = url;
  }
  setRequestHeader(name, value) {
    this.headers_[name] = value;
  }
  dispatch_(type) {
    const event = {type, target: this};
    if (typeof this['on' + type] === 'function') {
      this['on' + type](event);
    }
    for (const fn of this.listeners_[type] || []) {
      fn(event);
    }
  }
  send() {
    const record = {method: this.method_, url: this.url_};
    requests.push(record);
    fetch(this.url_, {
      method: this.method_,
      headers: this.headers_,
      signal: AbortSignal.timeout(TIMEOUT_MS),
    })
      .then(async (res) => {
        this.status = res.status;
        record.status = res.status;
        record.contentType = res.headers.get('content-type');
        const buf = await res.arrayBuffer();
        if (this.responseType === 'arraybuffer') {
          this.response = buf;
        } else {
          this.responseText = new TextDecoder().decode(buf);
          this.response = this.responseText;
        }
        this.dispatch_('load');
      })
      .catch((err) => {
        record.error = String(err?.cause ?? err);
        this.dispatch_('error');
      });
  }
}
overrideXHR(/** @type {any} */ (FetchXHR));

function describeRequests() {
  return requests
    .map(
      (r) =>
        `  GET ${r.url} -> ${r.error ?? r.status}` +
        (r.contentType ? ` (${r.contentType})` : ''),
    )
    .join('\n');
}

function withTimeout(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${TIMEOUT_MS} ms: ${what}`)),
      TIMEOUT_MS,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function featureSummary(features) {
  const byLayer = {};
  for (const f of features) {
    const layer = f.get('layer');
    byLayer[layer] = (byLayer[layer] ?? 0) + 1;
  }
  return JSON.stringify(byLayer);
}

function findExpected(features, tileExtent, where) {
  const found = features.filter(
    (f) => f.get('id') !== undefined && String(f.get('id')) === expectedId,
  );
  if (found.length === 0) {
    const ids = features.slice(0, 20).map((f) => f.get('id'));
    fail(
      `${where}: no feature with property id === ${JSON.stringify(expectedId)} ` +
        `among ${features.length} features ${featureSummary(features)}; ` +
        `first ids: ${JSON.stringify(ids)}`,
    );
  }
  const feature = found[0];
  // Geometry is in EPSG:3857 after readFeatures; it must touch the tile.
  const fExtent = feature.getExtent();
  if (!intersects(fExtent, tileExtent)) {
    fail(
      `${where}: feature ${expectedId} extent ${JSON.stringify(fExtent)} ` +
        `does not intersect tile extent ${JSON.stringify(tileExtent)}`,
    );
  }
  return feature;
}

const projection = getProjection('EPSG:3857');
const format = new MVT();

// --- 1. discovery with getTileSetInfo ---------------------------------------
let info;
try {
  info = await withTimeout(
    getTileSetInfo({
      url: tilesetUrl,
      projection,
      mediaType: MVT_TYPE,
      supportedMediaTypes: format.supportedMediaTypes,
    }),
    'getTileSetInfo',
  );
} catch (err) {
  fail(
    `OpenLayers getTileSetInfo failed: ${err?.message ?? err}\n` +
      describeRequests(),
  );
}
const tmsRequest = requests.find((r) => r.url !== tilesetUrl);
if (!tmsRequest) {
  fail(
    'OpenLayers did not fetch a tile matrix set (tiling-scheme link not followed?)\n' +
      describeRequests(),
  );
}
console.log('discovery requests made by OpenLayers:\n' + describeRequests());
console.log(`tile URL template: ${info.urlTemplate}`);
if (!info.urlFunction) {
  fail('OpenLayers found no tile URL template');
}

// --- 2. the tile grid must be WebMercatorQuad -------------------------------
const grid = info.grid;
if (z < grid.getMinZoom() || z > grid.getMaxZoom()) {
  fail(
    `zoom ${z} outside the discovered grid ${grid.getMinZoom()}..${grid.getMaxZoom()}`,
  );
}
const tileExtent = grid.getTileCoordExtent(tileCoord);
const xyzExtent = createXYZ({tileSize: 256, maxZoom: 30}).getTileCoordExtent(
  tileCoord,
);
const tolerance = getWidth(xyzExtent) * 1e-9;
if (tileExtent.some((v, i) => !(Math.abs(v - xyzExtent[i]) <= tolerance))) {
  fail(
    `tile ${z}/${x}/${y}: discovered grid gives extent ${JSON.stringify(tileExtent)}, ` +
      `standard WebMercator XYZ gives ${JSON.stringify(xyzExtent)}`,
  );
}
console.log(
  `tile [${tileCoord}] matrix ${grid.getMatrixId(z)} extent ${JSON.stringify(tileExtent)}`,
);

// --- 3. the tile OpenLayers would request -----------------------------------
const tileUrl = info.urlFunction(tileCoord, 1, projection);
if (!tileUrl) {
  fail(`OpenLayers builds no URL for tile [${tileCoord}] (outside tileMatrixSetLimits?)`);
}
console.log(`tile URL: ${tileUrl}`);
let res;
try {
  res = await fetch(tileUrl, {signal: AbortSignal.timeout(TIMEOUT_MS)});
} catch (err) {
  fail(`fetching ${tileUrl}: ${err?.cause ?? err}`);
}
if (res.status !== 200) {
  fail(`GET ${tileUrl} -> ${res.status}: ${(await res.text()).slice(0, 300)}`);
}
const contentType = res.headers.get('content-type') ?? '';
if (!contentType.startsWith(MVT_TYPE)) {
  console.warn(`warning: tile content-type is ${JSON.stringify(contentType)}`);
}
const body = await res.arrayBuffer();
let features;
try {
  features = format.readFeatures(body, {
    extent: tileExtent,
    featureProjection: projection,
  });
} catch (err) {
  fail(`ol/format/MVT could not decode the tile (${body.byteLength} bytes): ${err}`);
}
const feature = findExpected(features, tileExtent, 'ol/format/MVT');
console.log(
  `decoded ${body.byteLength} bytes: ${features.length} features ${featureSummary(features)}; ` +
    `id ${expectedId} is a ${feature.getType()} in layer ${feature.get('layer')}`,
);

// --- 4. the same through an OGCVectorTile source ----------------------------
const source = new OGCVectorTile({url: tilesetUrl, format: new MVT()});
try {
  await withTimeout(
    new Promise((resolve, reject) => {
      const check = () => {
        const state = source.getState();
        if (state === 'ready') {
          resolve();
        } else if (state === 'error') {
          reject(new Error('source state is "error"'));
        }
      };
      source.on('change', check);
      check();
    }),
    'OGCVectorTile source ready',
  );
} catch (err) {
  fail(`OGCVectorTile: ${err.message}`);
}
const sourceUrl = source.getTileUrlFunction()(tileCoord, 1, projection);
if (sourceUrl !== tileUrl) {
  fail(`OGCVectorTile builds tile URL ${sourceUrl}, getTileSetInfo built ${tileUrl}`);
}
const tile = source.getTile(z, x, y, 1, projection);
try {
  await withTimeout(
    new Promise((resolve, reject) => {
      const check = () => {
        const state = tile.getState();
        if (state === TileState.LOADED) {
          resolve();
        } else if (state === TileState.ERROR || state === TileState.EMPTY) {
          reject(new Error(`tile state ${state}`));
        }
      };
      tile.addEventListener('change', check);
      tile.load();
      check();
    }),
    'OGCVectorTile tile load',
  );
} catch (err) {
  fail(`OGCVectorTile could not load tile [${tileCoord}]: ${err.message}`);
}
const sourceFeatures = tile
  .getSourceTiles()
  .flatMap((sourceTile) => sourceTile.getFeatures() ?? []);
findExpected(sourceFeatures, tileExtent, 'OGCVectorTile');
console.log(
  `OGCVectorTile source: ready, same tile URL, tile loaded with ${sourceFeatures.length} features`,
);

console.log(`OK: OpenLayers found feature ${expectedId} in tile ${z}/${x}/${y}`);
