// Shared by the browser tests: the browser's flags, and the watch that fails a test file on
// any console error, CSP violation, page error or dialog on any page of any context it opens.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

export const URL = process.env.KEFU_URL;
export const SHOTS = process.env.SCREENSHOT_DIR;
export const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
// A site on another origin framing kefu on loopback: Chromium's local-network-access rules
// would block a pairing that never happens in production (kefu has a public address there).
export const SITE_ARGS = [...ARGS, "--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights"];
export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 375, height: 740 };

/** What went wrong on any watched page: console errors (CSP violations are console errors),
 * page errors and dialogs. Each test file ends by asserting it is empty. */
export const problems = [];
/** Errors a test provokes on purpose, by pattern (the sockets' errors while kefu is stopped). */
export const allowed = { serverDown: false };

export function launch(args = ARGS) {
  return chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true, args });
}

/** Watch `page`: any console error not matching `expected` (a RegExp), any CSP report, page
 * error or dialog is a problem. */
export function watch(page, who, expected = null) {
  if (page._kefuWatched) return page;
  page._kefuWatched = true;
  page.on("dialog", (d) => { problems.push(`${who} dialog: ${d.message()}`); d.dismiss().catch(() => {}); });
  page.on("pageerror", (e) => problems.push(`${who} pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    const text = m.text();
    if (/Content Security Policy|Refused to/i.test(text) && !(expected && expected.test(text))) return problems.push(`${who} csp: ${text}`);
    if (expected && expected.test(text)) return;
    if (allowed.serverDown && /WebSocket connection to .* failed|ERR_CONNECTION_REFUSED/.test(text)) return;
    problems.push(`${who} console.error: ${text}`);
  });
  return page;
}

/** A context whose every page (opened by the test or by a page) is watched. */
export async function context(browser, who, opts = {}, expected = null) {
  const ctx = await browser.newContext(opts);
  ctx.on("page", (p) => watch(p, who, expected));
  return ctx;
}

export function assertNoProblems() { assert.deepEqual(problems, []); }

export async function waitText(page, side, text, timeout = 15000) {
  await page.locator(`#msgList .msg-${side} .msg-text`, { hasText: text }).first().waitFor({ timeout });
}
export async function send(page, text) {
  await page.locator("#input").fill(text);
  await page.locator("#sendBtn").click();
}
export async function shot(page, name) {
  if (!SHOTS) return;
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, name) });
}
export async function noHorizontalScroll(page) {
  const r = await page.evaluate(() => ({ sw: document.documentElement.scrollWidth, iw: window.innerWidth, bw: document.body.scrollWidth }));
  assert.ok(r.sw <= r.iw && r.bw <= r.iw, `horizontal scroll: ${JSON.stringify(r)}`);
}
export async function agentLogin(page, bid, id, pass, base = URL) {
  await page.goto(`${base}/console`);
  await page.locator("#lBid").fill(bid);
  await page.locator("#lAgent").fill(id);
  await page.locator("#lPass").fill(pass);
  await page.locator("#loginBtn").click();
  await page.locator("#connPill[data-state=online]").waitFor();
  await page.locator(`#colleagues .colleague[data-id="${id}"]`).waitFor();
}
/** A host page on another origin (http://shop.example) embedding the widget. */
export async function routeSite(page, attrs, title = "Shop") {
  await page.route("http://shop.example/**", (route) => route.fulfill({
    contentType: "text/html; charset=utf-8",
    body: `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
      <title>${title}</title></head><body><h1>${title}</h1>
      <p>Lorem ipsum: a page of the shop.</p>
      <script src="${URL}/widget.js" ${attrs} async></script></body></html>`,
  }));
}

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

/** Run the kefu binary; it must succeed. */
export function kefuCli(args, input = "") {
  const r = spawnSync(process.env.KEFU_BIN, args, { input, encoding: "utf8" });
  assert.equal(r.status, 0, `kefu ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** A kefu of one test file's own (its data dir, port and `[kefu]` lines `kefuToml`), for
 * tests whose per-address counters or data must not meet the shared instance's; one worker,
 * so every request meets the same counters. `agents`: [bid, id, name, password, extra args].
 * Returns {url, stop}. */
export async function ownKefu(name, kefuToml, agents) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `kefu-e2e-${name}-`));
  const conf = path.join(dir, "kefu.toml");
  fs.writeFileSync(conf, ["[kefu]", ...kefuToml, ""].join("\n"));
  const common = ["-c", conf, "--data-dir", path.join(dir, "data")];
  for (const [bid, id, nm, pass, extra] of agents) {
    kefuCli(["agent", "add", "--bid", bid, "--id", id, "--name", nm, ...(extra || []), "--password-stdin", ...common], pass + "\n");
  }
  const port = await freePort();
  const pid = path.join(dir, "k.pid");
  kefuCli(["start", "-d", "--app", "kefu", "--workers", "1", "--listen", `http://127.0.0.1:${port}`,
    "--pid-file", pid, "--log-file", path.join(dir, "k.log"), ...common]);
  return {
    url: `http://127.0.0.1:${port}`,
    stop() {
      spawnSync(process.env.KEFU_BIN, ["stop", "--pid-file", pid]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
