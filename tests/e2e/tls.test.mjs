// The visitor page and the agent console over TLS (run by run.sh, which serves them on an
// https:// listener with a throwaway CA's certificate): the pages take their WebSocket URL
// from their own origin, so they speak wss:// to the same port, and the CSP's
// `connect-src 'self'` allows it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const TLS_URL = process.env.KEFU_TLS_URL;
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"];
let browser;
const problems = [];

function watch(page, who, sockets) {
  page.on("pageerror", (e) => problems.push(`${who} pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`${who} console.error: ${m.text()}`);
  });
  page.on("websocket", (ws) => sockets.push(ws.url()));
  return page;
}

before(async () => {
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true, args: ARGS });
});
after(async () => { if (browser) await browser.close(); });

// The WebSocket handshake answers `page` receives, read through the DevTools protocol (the
// page's own sockets, as the browser saw them): each a map of lower-cased header names.
async function handshakes(ctx, page) {
  const seen = [];
  const cdp = await ctx.newCDPSession(page);
  await cdp.send("Network.enable");
  cdp.on("Network.webSocketHandshakeResponseReceived", (e) => {
    const h = {};
    for (const [k, v] of Object.entries(e.response.headers || {})) h[k.toLowerCase()] = v;
    seen.push({ status: e.response.status, headers: h });
  });
  return seen;
}

test("visitor and agent chat over https and wss", async () => {
  assert.ok(TLS_URL && TLS_URL.startsWith("https://"), "KEFU_TLS_URL unset");
  // The test CA is not in Chromium's store: certificate errors are ignored for this context
  // only (for the page and its WebSocket alike).
  const actx = await browser.newContext({ ignoreHTTPSErrors: true });
  const vctx = await browser.newContext({ ignoreHTTPSErrors: true });
  const aSockets = [], vSockets = [];
  const agent = watch(await actx.newPage(), "agent", aSockets);
  const aShakes = await handshakes(actx, agent);
  const resp = await agent.goto(`${TLS_URL}/console`);
  assert.equal(resp.status(), 200);
  assert.match(resp.headers()["content-security-policy"] || "", /connect-src 'self'/);
  await agent.locator("#lBid").fill("shop3");
  await agent.locator("#lAgent").fill("dave");
  await agent.locator("#lPass").fill(process.env.AGENT4_PASS);
  await agent.locator("#loginBtn").click();
  await agent.locator("#connPill[data-state=online]").waitFor();

  const visitor = watch(await vctx.newPage(), "visitor", vSockets);
  const vShakes = await handshakes(vctx, visitor);
  await visitor.goto(`${TLS_URL}/chat/shop3`);
  await visitor.locator("body[data-conn=online]").waitFor();
  await visitor.locator("#input").fill("hello over wss");
  await visitor.locator("#sendBtn").click();
  const item = agent.locator("#convList .conv-item").first();
  await item.waitFor();
  await item.click();
  await agent.locator("#msgList .msg-left .msg-text", { hasText: "hello over wss" }).first().waitFor();
  await agent.locator("#input").fill("reply over wss");
  await agent.locator("#sendBtn").click();
  await visitor.locator("#msgList .msg-left .msg-text", { hasText: "reply over wss" }).first().waitFor();

  const origin = new URL(TLS_URL);
  for (const url of [...aSockets, ...vSockets]) {
    const u = new URL(url);
    assert.equal(u.protocol, "wss:", url);
    assert.equal(u.host, origin.host, url);
  }
  assert.ok(aSockets.length && vSockets.length, "no WebSocket opened");
  // Chromium offers permessage-deflate by itself and kefu accepts it: every socket of both
  // pages runs compressed (kefu answers without context takeover on its side).
  assert.ok(aShakes.length && vShakes.length, "no handshake seen");
  for (const { status, headers } of [...aShakes, ...vShakes]) {
    assert.equal(status, 101);
    const ext = headers["sec-websocket-extensions"] || "";
    assert.match(ext, /^permessage-deflate\b/, `extensions: ${JSON.stringify(ext)}`);
    assert.match(ext, /server_no_context_takeover/, ext);
  }
  assert.deepEqual(problems, []);
  await actx.close();
  await vctx.close();
});
