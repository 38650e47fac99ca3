// The distribution's Chromium, headless, as the browse page's check and
// its benchmark (scripts/bench-browse.mjs) launch it.
import {existsSync} from 'node:fs';

import {chromium} from 'playwright-core';

/** The Chromium binary: $CHROMIUM, else Debian's or Ubuntu's. */
export function chromiumPath() {
  const candidates = [process.env.CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser'];
  const found = candidates.find((p) => p && existsSync(p));
  if (!found) {
    throw new Error(`no Chromium: none of ${candidates.filter(Boolean).join(', ')} exists (set CHROMIUM)`);
  }
  return found;
}

/** Chromium, headless, without GPU, sandbox or any background traffic. */
export function launchChromium({timeout} = {}) {
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    timeout,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}
