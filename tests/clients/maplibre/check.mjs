// Validates arcolake's MapLibre style.json documents with MapLibre's own
// style-spec validator (@maplibre/maplibre-gl-style-spec), then follows each
// style's vector/raster sources the way MapLibre would: TileJSON, source-layers
// against `vector_layers`, and one tile at the TileJSON's minzoom.
//
//   npm ci && node check.mjs STYLE_URL...
//
// Prints one `ok:` line per style; on any problem prints `FAIL:` lines (the
// validator's messages verbatim) and exits 1.

// The package has no "exports" map; Node loads its "main" (dist/index.cjs) and
// exposes the named export. `validateStyleMin` takes a parsed style object; the
// package's `validate` is the low-level per-value validator, not for styles.
import { validateStyleMin } from '@maplibre/maplibre-gl-style-spec';

const TIMEOUT_MS = 30_000;

async function get(url) {
  return fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS), redirect: 'follow' });
}

async function getJson(url, what, fail) {
  let res;
  try {
    res = await get(url);
  } catch (e) {
    fail(`${what} ${url}: request failed: ${e.cause?.message ?? e.message}`);
    return null;
  }
  const body = await res.text();
  if (res.status !== 200) {
    fail(`${what} ${url}: HTTP ${res.status} (want 200): ${body.slice(0, 200)}`);
    return null;
  }
  try {
    return JSON.parse(body);
  } catch (e) {
    fail(`${what} ${url}: not JSON (${res.headers.get('content-type')}): ${e.message}`);
    return null;
  }
}

// MapLibre does not resolve source/tile URLs against the style's URL, so a
// relative URL here would break in a browser that is not on the same page.
function absolute(url, what, fail) {
  try {
    return new URL(url).href;
  } catch {
    fail(`${what}: not an absolute URL: ${JSON.stringify(url)}`);
    return null;
  }
}

async function checkSource(id, src, layers, fail) {
  const tjUrl = absolute(src.url, `source "${id}" url`, fail);
  if (!tjUrl) return;
  const tj = await getJson(tjUrl, `source "${id}" TileJSON`, fail);
  if (!tj) return;
  if (!Array.isArray(tj.tiles) || tj.tiles.length === 0 || !tj.tiles.every((t) => typeof t === 'string')) {
    fail(`source "${id}" TileJSON ${tjUrl}: "tiles" must be a non-empty array of URL templates, got ${JSON.stringify(tj.tiles)}`);
    return;
  }
  const used = layers.filter((l) => l.source === id && l['source-layer'] !== undefined);
  if (used.length > 0) {
    if (!Array.isArray(tj.vector_layers)) {
      fail(`source "${id}" TileJSON ${tjUrl}: no "vector_layers" array, but layers use source-layers`);
    } else {
      const ids = new Set(tj.vector_layers.map((v) => v?.id));
      for (const l of used) {
        if (!ids.has(l['source-layer'])) {
          fail(`layer "${l.id}": source-layer "${l['source-layer']}" is not in source "${id}" vector_layers [${[...ids].join(', ')}]`);
        }
      }
    }
  }
  const z = Number.isInteger(tj.minzoom) ? tj.minzoom : 0;
  const template = tj.tiles[0];
  const tileUrl = absolute(template.replaceAll('{z}', z).replaceAll('{x}', 0).replaceAll('{y}', 0), `source "${id}" tile template ${template}`, fail);
  if (!tileUrl) return;
  if (/[{}]/.test(tileUrl)) fail(`source "${id}" tile ${tileUrl}: unreplaced placeholder in template ${template}`);
  let res;
  try {
    res = await get(tileUrl);
    await res.arrayBuffer();
  } catch (e) {
    fail(`source "${id}" tile ${tileUrl}: request failed: ${e.cause?.message ?? e.message}`);
    return;
  }
  if (res.status !== 200 && res.status !== 204) {
    fail(`source "${id}" tile ${tileUrl}: HTTP ${res.status} (want 200 or 204)`);
  }
}

async function checkStyle(styleUrl) {
  const problems = [];
  const fail = (msg) => problems.push(msg);
  const style = await getJson(styleUrl, 'style', fail);
  if (style === null) return problems;
  for (const e of validateStyleMin(style)) fail(`style-spec: ${e.message}`);
  const sources = style && typeof style.sources === 'object' && style.sources ? style.sources : {};
  const layers = Array.isArray(style?.layers) ? style.layers.filter((l) => l && typeof l === 'object') : [];
  let followed = 0;
  for (const [id, src] of Object.entries(sources)) {
    if ((src?.type === 'vector' || src?.type === 'raster') && src.url !== undefined) {
      followed += 1;
      await checkSource(id, src, layers, fail);
    }
  }
  if (problems.length === 0) {
    console.log(`ok: ${styleUrl}: valid style-spec v${style.version}, ${layers.length} layers, ${followed} TileJSON sources with tiles`);
  }
  return problems;
}

const urls = process.argv.slice(2);
if (urls.length === 0) {
  console.error('usage: node check.mjs STYLE_URL...');
  process.exit(2);
}
let failed = false;
for (const url of urls) {
  for (const p of await checkStyle(url)) {
    console.log(`FAIL: ${url}: ${p}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
