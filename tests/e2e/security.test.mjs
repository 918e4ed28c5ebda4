// Browser security checks (issue 11, item 2): the pages talk to their own origin only, whatever
// the URL says. Run by run.sh after pages.test.mjs, against the same kefu instance.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { launch, context, assertNoProblems } from "./lib.mjs";

const URL = process.env.KEFU_URL;
const BID = process.env.KEFU_BID || "shop1";

let browser, trap, trapUrl;
let trapHits = 0;

before(async () => {
  browser = await launch();
  // The "attacker's" server: any TCP connection at all counts.
  trap = net.createServer((s) => { trapHits++; s.destroy(); });
  await new Promise((r) => trap.listen(0, "127.0.0.1", r));
  trapUrl = `ws://127.0.0.1:${trap.address().port}/`;
});

after(async () => {
  if (browser) await browser.close();
  if (trap) trap.close();
});

/** Every WebSocket URL `page` opens. */
function recordSockets(page) {
  const urls = [];
  page.on("websocket", (ws) => urls.push(ws.url()));
  return urls;
}

const own = URL.replace(/^http/, "ws") + "/";

test("?ws= in the URL is ignored: the console's stored token goes nowhere else", async () => {
  const ctx = await context(browser, "ws-param");
  const page = await ctx.newPage();
  const urls = recordSockets(page);
  // A normal login leaves the token in localStorage...
  await page.goto(`${URL}/console`);
  await page.locator("#lBid").fill(BID);
  await page.locator("#lAgent").fill("alice");
  await page.locator("#lPass").fill(process.env.AGENT1_PASS);
  await page.locator("#loginBtn").click();
  await page.locator("#connPill[data-state=online]").waitFor();
  // ...and a link naming another server makes the console log in again by itself.
  await page.goto(`${URL}/console?ws=${encodeURIComponent(trapUrl)}`);
  await page.locator("#connPill[data-state=online]").waitFor({ timeout: 10000 });
  assert.ok(urls.length >= 2, `sockets: ${urls}`);
  assert.deepEqual(urls.filter((u) => !u.startsWith(own)), [], "a socket left the page's origin");

  const visitor = await ctx.newPage();
  const vurls = recordSockets(visitor);
  await visitor.goto(`${URL}/chat/${BID}?ws=${encodeURIComponent(trapUrl)}`);
  // Online, the state line is empty and hidden: wait for it to be in the DOM with that state.
  await visitor.locator("#connState[data-state=online]").waitFor({ state: "attached", timeout: 10000 });
  assert.deepEqual(vurls.filter((u) => !u.startsWith(own)), [], "the visitor page left its origin");
  assert.equal(trapHits, 0, "the other server was contacted");
  await ctx.close();
});

test("the CSP refuses a WebSocket to another origin even from script on the page", async () => {
  // The one violation this test provokes is expected; any other still fails the file.
  const ctx = await context(browser, "csp-probe", {}, /Connecting to 'ws:\/\/127\.0\.0\.1:\d+\/' violates the following Content Security Policy directive: "connect-src 'self'"/);
  const page = await ctx.newPage();
  await page.goto(`${URL}/console`);
  // The violation is reported while the connection is checked, before the socket's error
  // event is queued, so by the time either event runs the list says whether CSP refused it.
  const outcome = await page.evaluate((u) => new Promise((resolve) => {
    const seen = [];
    document.addEventListener("securitypolicyviolation", (e) => {
      seen.push(e.effectiveDirective);
      resolve(`csp ${e.effectiveDirective}`);
    });
    try {
      const ws = new WebSocket(u);
      ws.onerror = () => resolve(seen.length ? `csp ${seen[0]}` : "socket error");
      ws.onopen = () => resolve("socket open");
    } catch (e) {
      resolve(`threw ${e.name}`);
    }
  }), trapUrl);
  assert.match(outcome, /^csp connect-src|^threw SecurityError/);
  assert.equal(trapHits, 0, "the other server was contacted");
  await ctx.close();
});

test("no console error or CSP violation on any page", () => assertNoProblems());
