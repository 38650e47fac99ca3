// Copies the third-party files the browse page embeds out of their npm
// packages (installed by `npm ci` from package-lock.json) into vendor/.
// `node vendor.mjs --check` changes nothing and fails when vendor/ differs
// from what the locked packages give, so the committed copy never drifts.
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, "node_modules");
const vendor = join(here, "vendor");

// The source map is not shipped, so its comment goes: a browser's developer
// tools would otherwise ask the server for a file it does not have.
const withoutSourceMap = (text) => text.replace(/\n\/\/# sourceMappingURL=\S+\s*$/, "\n");

const files = [
  ["ol/dist/ol.js", "ol.js", withoutSourceMap],
  ["ol/ol.css", "ol.css", (t) => t],
  ["ol/LICENSE.md", "LICENSE-ol.md", (t) => t],
  ["world-atlas/countries-110m.json", "countries-110m.json", (t) => t],
  ["world-atlas/LICENSE", "LICENSE-world-atlas.txt", (t) => t],
];

const check = process.argv.includes("--check");
let stale = 0;
mkdirSync(vendor, { recursive: true });
for (const [from, to, transform] of files) {
  const want = transform(readFileSync(join(modules, from), "utf8"));
  const target = join(vendor, to);
  let have = null;
  try {
    have = readFileSync(target, "utf8");
  } catch {
    // missing: stale
  }
  if (have === want) continue;
  if (check) {
    console.error(`vendor/${to} differs from node_modules/${from}: run \`npm ci && node vendor.mjs\` in api/browse`);
    stale += 1;
  } else {
    writeFileSync(target, want);
    console.log(`vendor/${to} <- node_modules/${from}`);
  }
}
if (stale) process.exit(1);
if (check) console.log(`vendor/ matches the locked packages (${files.length} files)`);
