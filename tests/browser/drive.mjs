// drive.mjs: opens a page in Debian's headless Chromium through
// playwright-core (no browser download: executablePath), waits until the
// page's text matches a pattern, takes a screenshot, and prints the
// page's text as one JSON line.  Used by tests/integration/test_browser.py.
//
//   node drive.mjs --url URL --expect REGEX --screenshot FILE
//                  [--chromium PATH] [--timeout SECONDS]
//
// Exit 0 when the text matched, 1 when not in time (the text and the
// screenshot are still written), 2 on bad usage.  Page console lines and
// errors go to stderr, prefixed "page:".  Certificates are checked as
// usual: the caller trusts its CA through the NSS store under $HOME.
import { chromium } from "playwright-core";

function args(argv) {
  const out = { chromium: "/usr/lib/chromium/chromium", timeout: "60" };
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith("--") || i + 1 >= argv.length) return null;
    out[argv[i].slice(2)] = argv[i + 1];
  }
  return out.url && out.expect && out.screenshot ? out : null;
}

const a = args(process.argv.slice(2));
if (a === null) {
  console.error("usage: node drive.mjs --url URL --expect REGEX --screenshot FILE " +
                "[--chromium PATH] [--timeout SECONDS]");
  process.exit(2);
}
const want = new RegExp(a.expect);
const deadline = Date.now() + Number(a.timeout) * 1000;
const browser = await chromium.launch({ executablePath: a.chromium, headless: true,
                                        env: process.env });
let rc = 1;
let text = "";
try {
  const page = await browser.newPage({ viewport: { width: 900, height: 600 } });
  page.on("console", (m) => console.error("page: " + m.type() + ": " + m.text()));
  page.on("pageerror", (e) => console.error("page: error: " + e.message));
  await page.goto(a.url);
  while (Date.now() < deadline) {
    text = await page.evaluate(() => document.body.innerText);
    if (want.test(text)) {
      rc = 0;
      break;
    }
    await page.waitForTimeout(200);
  }
  await page.screenshot({ path: a.screenshot, fullPage: true });
} finally {
  await browser.close();
}
console.log(JSON.stringify({ matched: rc === 0, text }));
process.exit(rc);
