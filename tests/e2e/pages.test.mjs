// Browser tests of the kefu visitor page and agent console (run by run.sh, which starts kefu).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import path from "node:path";
import { chromium } from "playwright-core";

import { problems, allowed, watch as watchPage, ARGS, DESKTOP, PHONE, noHorizontalScroll, waitText, send } from "./lib.mjs";

const run = promisify(execFile);
const URL = process.env.KEFU_URL;
const BID = process.env.KEFU_BID || "shop1";

let browser, visitorCtx, agentCtx, visitor, agent;
const dialogs = [];

// Every page fails the suite on any console error (CSP violations are console errors) unless
// `expected` matches it; the pages that should log an error say which (lib.mjs).
function watch(page, who, expected = null) {
  page.on("dialog", (d) => dialogs.push(`${who}: ${d.message()}`));
  return watchPage(page, who, expected);
}

async function newPage(ctx, who, expected) { return watch(await ctx.newPage(), who, expected); }

function texts(page, side) {
  return page.locator(`#msgList .msg-${side} .msg-text`).allTextContents();
}
async function agentLogin(page, id, pass, bid = BID) {
  await page.goto(`${URL}/console`);
  await page.locator("#lBid").fill(bid);
  await page.locator("#lAgent").fill(id);
  await page.locator("#lPass").fill(pass);
  await page.locator("#loginBtn").click();
  await page.locator("#connPill[data-state=online]").waitFor();
  await page.locator(`#colleagues .colleague[data-id="${id}"]`).waitFor();
}

before(async () => {
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true, args: ARGS });
  visitorCtx = await browser.newContext({ viewport: DESKTOP, locale: "zh-CN" });
  agentCtx = await browser.newContext({ viewport: DESKTOP, locale: "zh-CN" });
});

after(async () => {
  if (browser) await browser.close();
});

test("pages are served with a strict CSP", async () => {
  for (const [p, ct] of [["/", "text/html"], ["/console", "text/html"], [`/chat/${BID}`, "text/html"], ["/widget.js", "text/javascript"], ["/static/kefu.css", "text/css"]]) {
    const r = await fetch(URL + p);
    assert.equal(r.status, 200, p);
    assert.ok(r.headers.get("content-type").startsWith(ct), p);
    assert.match(r.headers.get("content-security-policy") || "", /script-src 'self'/, p);
  }
  assert.equal((await fetch(URL + "/static/nope.js")).status, 404);
  const page = await newPage(agentCtx, "index");
  await page.goto(URL + "/");
  assert.ok(await page.locator('a[href="/console"]').count());
  await page.close();
});

test("agent logs in; a colleague's presence is live", async () => {
  agent = await newPage(agentCtx, "agent");
  await agentLogin(agent, "alice", process.env.AGENT1_PASS);
  const bobCtx = await browser.newContext({ viewport: DESKTOP });
  const bob = await newPage(bobCtx, "bob");
  await agentLogin(bob, "bob", process.env.AGENT2_PASS);
  await agent.locator('#colleagues .colleague[data-id="bob"]').waitFor();     // login_push
  await bobCtx.close();
  await agent.locator('#colleagues .colleague[data-id="bob"]').waitFor({ state: "detached" }); // logout_push
});

test("visitor and agent chat both ways; the agent sees an unread badge", async () => {
  visitor = await newPage(visitorCtx, "visitor");
  await visitor.goto(`${URL}/chat/${BID}?name=${encodeURIComponent("演示商店")}`);
  await visitor.locator("body[data-conn=online]").waitFor();
  await visitor.locator("#onlineDot.on").waitFor();
  await send(visitor, "你好，我想咨询一下 😀");
  await waitText(visitor, "right", "你好，我想咨询一下");
  // A new conversation fits on one page: no "No older messages" line.
  assert.equal(await visitor.locator("#noMore").isVisible(), false);
  // Its own avatar letter and the system lines follow the page's language.
  assert.equal(await visitor.locator("#msgList .msg-right .avatar").first().textContent(), "访");
  const joined = visitor.locator("#msgList .msg-event[data-event=assigned]").first();
  await joined.filter({ hasText: "Alice 已接入会话" }).waitFor();
  await visitor.locator("#langBtn").click();
  await joined.filter({ hasText: "Alice joined the conversation" }).waitFor();
  assert.equal(await visitor.locator("#msgList .msg-right .avatar").first().textContent(), "V");
  await visitor.locator("#langBtn").click();
  await joined.filter({ hasText: "Alice 已接入会话" }).waitFor();
  // The conversation is routed to alice: it appears in her list with an unread badge.
  const item = agent.locator("#convList .conv-item").first();
  await item.waitFor();
  await item.locator(".badge").waitFor();
  assert.match(await item.locator(".badge").textContent(), /^[1-9]/);
  assert.match(await item.locator(".conv-last").textContent(), /你好，我想咨询一下/);
  await item.click();
  await waitText(agent, "left", "你好，我想咨询一下");
  await item.locator(".badge").waitFor({ state: "detached" });
  assert.equal(await agent.locator("#noMore").isVisible(), false);
  await send(agent, "您好，请问有什么可以帮您？");
  await waitText(visitor, "left", "您好，请问有什么可以帮您");
  await waitText(agent, "right", "您好，请问有什么可以帮您");
  // The visitor read it: the agent's message turns "read".
  await agent.locator("#msgList .msg-right .msg-status.st-read").first().waitFor();
  // Visitor info is shown.
  assert.ok((await agent.locator('#infoList dd[data-field="info_ua"]').textContent()).includes("Mozilla"));
});

test("markup in a message is shown as text and never runs", async () => {
  const evil = "<img src=x onerror=alert(1)>";
  await send(visitor, evil);
  await waitText(agent, "left", evil);
  await waitText(visitor, "right", evil);
  await send(agent, `<b>bold?</b> ${evil}`);
  await waitText(visitor, "left", "<b>bold?</b>");
  await visitor.waitForTimeout(300);
  for (const p of [visitor, agent]) {
    assert.equal(await p.locator("#msgList img").count(), 0);
    assert.equal(await p.locator("#msgList b").count(), 0);
  }
  assert.deepEqual(dialogs, []);
});

test("http(s) links in messages are clickable, and nothing else is", async () => {
  await send(agent, "说明见 https://example.com/help?q=1&r=2。 也试试 javascript:alert(1) 和 <a href=\"https://evil.example/\">x</a>");
  await waitText(visitor, "left", "说明见");
  for (const p of [visitor, agent]) {
    const links = p.locator("#msgList a.msg-link");
    const row = p.locator("#msgList .msg-text", { hasText: "说明见" }).last();
    const a = row.locator("a");
    // The URL (without the full stop), and the https URL inside the typed tag as text-link.
    assert.equal(await a.first().getAttribute("href"), "https://example.com/help?q=1&r=2");
    assert.equal(await a.first().getAttribute("target"), "_blank");
    assert.equal(await a.first().getAttribute("rel"), "noopener noreferrer");
    for (const h of await a.evaluateAll((ns) => ns.map((n) => n.getAttribute("href")))) assert.match(h, /^https:\/\//);
    assert.ok(await links.count() >= 1);
    assert.match(await row.textContent(), /javascript:alert\(1\) 和 <a href="https:\/\/evil\.example\/">x<\/a>/);
  }
  assert.deepEqual(dialogs, []);
});

test("images: the visitor picks a file, the agent sees it (only /uploads/ URLs)", async () => {
  // A 1x1 PNG.
  const png = Buffer.from(await visitor.evaluate(() => {
    const c = document.createElement("canvas");
    c.width = 160; c.height = 100;
    const g = c.getContext("2d");
    g.fillStyle = "#ffd666"; g.fillRect(0, 0, 160, 100);
    g.fillStyle = "#1677ff"; g.font = "bold 30px sans-serif"; g.fillText("kefu", 46, 60);
    return c.toDataURL("image/png").split(",")[1];
  }), "base64");
  await visitor.locator("#fileInput").setInputFiles({ name: "dot.png", mimeType: "image/png", buffer: png });
  const img = agent.locator('#msgList .msg-left img.msg-img[src^="/uploads/"]');
  await img.first().waitFor();
  await visitor.locator('#msgList .msg-right img.msg-img[src^="/uploads/"]').first().waitFor();
  assert.ok(await img.first().evaluate((i) => i.complete && i.naturalWidth === 160));
});

test("emoji picker inserts into the input", async () => {
  await visitor.locator("#emojiBtn").click();
  await visitor.locator(".emoji-panel .emoji", { hasText: "👍" }).click();
  assert.equal(await visitor.locator("#input").inputValue(), "👍");
  await visitor.locator("#sendBtn").click();
  await waitText(agent, "left", "👍");
});

test("the visitor reloads and sees the history", async () => {
  await visitor.reload();
  await visitor.locator("body[data-conn=online]").waitFor();
  await waitText(visitor, "right", "你好，我想咨询一下");
  await waitText(visitor, "left", "您好，请问有什么可以帮您");
  await waitText(visitor, "right", "<img src=x onerror=alert(1)>");
  const mine = await texts(visitor, "right");
  assert.equal(mine.filter((t) => t.includes("你好，我想咨询一下")).length, 1, "no duplicates");
  await visitor.locator(".time-sep").first().waitFor();
  await send(agent, "刷新后还能收到吗？");
  await waitText(visitor, "left", "刷新后还能收到吗");
});

test("the console reopens the open conversation after a reload", async () => {
  const title = await agent.locator("#paneTitle").textContent();
  await agent.reload();
  await agent.locator("#connPill[data-state=online]").waitFor();
  await waitText(agent, "left", "你好，我想咨询一下");
  assert.equal(await agent.locator("#paneTitle").textContent(), title);
});

test("server restart: both pages reconnect and nothing is lost", async () => {
  const bin = process.env.KEFU_BIN;
  const pid = path.join(process.env.KEFU_DATA, "kefu.pid");
  allowed.serverDown = true;
  await run(bin, ["stop", "--pid-file", pid]);
  await visitor.locator("body:not([data-conn=online])").waitFor();
  await agent.locator("#connPill:not([data-state=online])").waitFor();
  // Disconnected, the visitor's header claims nothing about agents.
  assert.equal(await visitor.locator("#onlineText").textContent(), "");
  assert.equal(await visitor.locator("#onlineDot.on").count(), 0);
  // Written while the server is down: kept and sent after the reconnect.
  await send(visitor, "断线时发的消息");
  await send(agent, "agent wrote this while offline");
  await run(bin, process.env.KEFU_START_ARGS.split(" "));
  await visitor.locator("body[data-conn=online]").waitFor({ timeout: 30000 });
  await agent.locator("#connPill[data-state=online]").waitFor({ timeout: 30000 });
  allowed.serverDown = false;
  await waitText(agent, "left", "断线时发的消息", 20000);
  await waitText(visitor, "left", "agent wrote this while offline", 20000);
  await send(visitor, "重启之后");
  await waitText(agent, "left", "重启之后");
  await send(agent, "back after restart");
  await waitText(visitor, "left", "back after restart");
  // Every message exactly once, on both sides, and nothing left pending.
  for (const [p, side, want] of [[agent, "left", ["断线时发的消息", "重启之后", "你好，我想咨询一下"]], [visitor, "left", ["agent wrote this while offline", "back after restart", "刷新后还能收到吗"]]]) {
    const all = await texts(p, side);
    for (const w of want) assert.equal(all.filter((t) => t.includes(w)).length, 1, `${w} once: ${JSON.stringify(all)}`);
  }
  await visitor.locator("#msgList .st-sending").waitFor({ state: "detached" });
  await agent.locator("#msgList .st-sending").waitFor({ state: "detached" });
});

test("the embed snippet opens the chat in a floating panel on another site", async () => {
  // The host page is "public" (shop.example) and kefu listens on loopback: Chromium's
  // local-network-access rules would block that pairing, which never happens in production
  // (kefu has a public address there), so this browser alone turns those checks off.
  const siteBrowser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true,
    args: [...ARGS, "--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights"],
  });
  const ctx = await siteBrowser.newContext({ viewport: DESKTOP, locale: "en-US" });
  const page = await newPage(ctx, "shop-site");
  await page.route("http://shop.example/**", (route) => route.fulfill({
    contentType: "text/html",
    body: `<!doctype html><html><head><title>Shop</title></head><body><h1>A shop</h1>
      <script src="${URL}/widget.js" data-bid="${BID}" data-name="Embedded Shop" async></script></body></html>`,
  }));
  await page.goto("http://shop.example/item/42");
  await page.locator("button[data-kefu=button]").click();
  const frame = page.frameLocator("div[data-kefu=panel] iframe");
  await frame.locator("body[data-conn=online]").waitFor();
  assert.equal(await frame.locator("#shopName").textContent(), "Embedded Shop");
  await frame.locator("#input").fill("hello from the widget");
  await frame.locator("#sendBtn").click();
  await frame.locator("#msgList .msg-right .msg-text", { hasText: "hello from the widget" }).waitFor();
  // A second conversation for alice, with the host page as the visitor's page.
  const item = agent.locator("#convList .conv-item", { hasText: "hello from the widget" });
  await item.waitFor();
  await item.click();
  await waitText(agent, "left", "hello from the widget");
  assert.equal(await agent.locator('#infoList dd[data-field="info_page"]').textContent(), "http://shop.example/item/42");
  await send(agent, "hi widget");
  await frame.locator("#msgList .msg-left .msg-text", { hasText: "hi widget" }).waitFor();
  await agent.locator("#msgList .msg-right", { hasText: "hi widget" }).locator(".st-read").waitFor();
  // Panel closed: a reply is not read (the page is still visible) and the badge counts it.
  await page.evaluate(() => window.KefuWidget.close());
  await send(agent, "while the panel is closed");
  await frame.locator("#msgList .msg-left .msg-text", { hasText: "while the panel is closed" }).waitFor({ state: "attached" });
  const badge = page.locator("span[data-kefu=badge]");
  await badge.waitFor();
  assert.equal(await badge.textContent(), "1");
  await page.waitForTimeout(500);
  const closedRow = agent.locator("#msgList .msg-right", { hasText: "while the panel is closed" });
  // Delivered (the visitor is connected), not read.
  assert.equal(await closedRow.locator(".st-delivered").count(), 1, "not read while the panel is closed");
  // Opened: read, and the badge goes away.
  await page.locator("button[data-kefu=button]").click();
  await closedRow.locator(".st-read").waitFor();
  await badge.waitFor({ state: "hidden" });
  // Transfer to bob, who answers and then closes the conversation.
  const bobCtx = await browser.newContext({ viewport: DESKTOP, locale: "en-US" });
  const bob = await newPage(bobCtx, "bob2");
  await agentLogin(bob, "bob", process.env.AGENT2_PASS);
  await agent.locator('#transferSel option[value="bob"]').waitFor({ state: "attached" });
  await agent.locator("#transferSel").selectOption("bob");
  await agent.locator("#transferBtn").click();
  // The agent who transferred sees where it went, not "closed".
  await agent.locator("#stateTag[data-state=transferred]", { hasText: "Bob" }).waitFor();
  const bItem = bob.locator("#convList .conv-item").first();
  await bItem.waitFor();
  await bItem.click();
  await waitText(bob, "left", "hello from the widget");
  await frame.locator("#msgList .msg-event[data-event=transferred]", { hasText: "Alice transferred the conversation to Bob" }).waitFor();
  await send(bob, "Bob here");
  await frame.locator("#msgList .msg-left .msg-text", { hasText: "Bob here" }).waitFor();
  await bob.locator("#closeBtn").click();
  await bob.locator("#closeBtn").click(); // second click confirms
  await bob.locator("#stateTag[data-state=closed]").waitFor();
  await frame.locator("#banner", { hasText: "closed" }).waitFor();
  await frame.locator("#msgList .msg-event[data-event=closed]", { hasText: "Conversation closed by Bob" }).waitFor();
  await bobCtx.close();
  // The panel's close button hides it again.
  await frame.locator("#closeBtn").click();
  await page.locator("div[data-kefu=panel]").waitFor({ state: "hidden" });
  await siteBrowser.close();
  // Back to the first conversation for the screenshots.
  await agent.locator("#convList .conv-item", { hasText: "这是" }).or(agent.locator("#convList .conv-item").last()).first().click();
});

test("phone-width layout: no horizontal scroll on the visitor page, console and login", async () => {
  await send(agent, "这是一条比较长的消息，用来检查在手机宽度下气泡是否会正确换行，而不会出现横向滚动条。https://example.com/a/very/long/url/without/any/spaces/at/all/to/break");
  await waitText(visitor, "left", "这是一条比较长的消息");

  const vState = await visitorCtx.storageState();
  const aState = await agentCtx.storageState();
  const vPhoneCtx = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true, storageState: vState, locale: "zh-CN" });
  const aPhoneCtx = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true, storageState: aState, locale: "zh-CN" });
  const vp = await newPage(vPhoneCtx, "visitor-phone");
  await vp.goto(`${URL}/chat/${BID}?name=${encodeURIComponent("演示商店")}`);
  await vp.locator("body[data-conn=online]").waitFor();
  await waitText(vp, "left", "这是一条比较长的消息");
  await noHorizontalScroll(vp);

  const ap = await newPage(aPhoneCtx, "console-phone");
  await ap.goto(`${URL}/console`);
  await ap.locator("#connPill[data-state=online]").waitFor();
  // The conversation open on the desktop (same storage) is reopened.
  await waitText(ap, "right", "这是一条比较长的消息");
  await noHorizontalScroll(ap);
  await ap.locator("#backBtn").click();
  await ap.locator("#convList .conv-item").first().waitFor();
  await noHorizontalScroll(ap);

  const lp = await newPage(await browser.newContext({ viewport: PHONE, isMobile: true, locale: "en-US" }), "login-phone");
  await lp.goto(`${URL}/console`);
  await lp.locator("#loginForm").waitFor();
  assert.equal(await lp.locator("#loginBtn").textContent(), "Sign in");
  await noHorizontalScroll(lp);
  await vPhoneCtx.close(); await aPhoneCtx.close();
  assert.deepEqual(problems, []);
});

test("加载更多 loads older pages without duplicates", async () => {
  for (let i = 1; i <= 25; i++) await send(agent, `filler ${i}`);
  await waitText(visitor, "left", "filler 25");
  const ctx = await browser.newContext({ viewport: PHONE, isMobile: true, storageState: await visitorCtx.storageState(), locale: "zh-CN" });
  const p = await newPage(ctx, "visitor-more");
  await p.goto(`${URL}/chat/${BID}`);
  await p.locator("body[data-conn=online]").waitFor();
  await waitText(p, "left", "filler 25");
  // The newest page (30) does not reach back to the first message.
  assert.equal(await p.locator("#msgList .msg-text", { hasText: "你好，我想咨询一下" }).count(), 0);
  assert.equal(await p.locator("#moreBtn").textContent(), "加载更多");
  await p.locator("#moreBtn").click();
  await waitText(p, "right", "你好，我想咨询一下");
  await p.locator("#noMore").waitFor();
  const seqs = await p.locator("#msgList [data-seq]").evaluateAll((ns) => ns.map((n) => Number(n.dataset.seq)));
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), "in seq order");
  assert.equal(new Set(seqs).size, seqs.length, "no duplicates");
  assert.equal(seqs[0], 1);
  await ctx.close();
  assert.deepEqual(problems, []);
});

test("leave a message while nobody is online; queue position and claim", async () => {
  const v1ctx = await browser.newContext({ viewport: PHONE, isMobile: true, locale: "zh-CN" });
  const v1 = await newPage(v1ctx, "v1");
  await v1.goto(`${URL}/chat/shop2`);
  await v1.locator("body[data-conn=online]").waitFor();
  await v1.locator("#leaveForm").waitFor();
  assert.equal(await v1.locator("#onlineText").textContent(), "客服离线");
  // One way to write at a time: the form replaces the composer.
  assert.equal(await v1.locator("#input").isVisible(), false);
  await v1.locator("#leaveContact").fill("13800000000");
  await v1.locator("#leaveText").fill("我想留言：什么时候发货？");
  await v1.locator("#leaveSubmit").click();
  await waitText(v1, "right", "我想留言：什么时候发货？");
  await v1.locator("#leaveForm").waitFor({ state: "hidden" });
  // A confirmation that stays (pushes re-render the banner).
  await v1.locator("#banner", { hasText: "留言已提交" }).waitFor();
  await v1.waitForTimeout(500);
  assert.match(await v1.locator("#banner").textContent(), /留言已提交/);

  // Carol (at most 1 conversation) comes online: the left message is routed to her.
  const cctx = await browser.newContext({ viewport: DESKTOP, locale: "zh-CN" });
  const carol = await newPage(cctx, "carol");
  await agentLogin(carol, "carol", process.env.AGENT3_PASS, "shop2");
  const first = carol.locator("#convList .conv-item").first();
  await first.locator(".badge").waitFor();
  await first.click();
  await waitText(carol, "left", "我想留言：什么时候发货？");
  // The contact is the visitor's, shown beside the conversation (not pasted into the message).
  await carol.locator('#infoList dd[data-field="info_contact"]', { hasText: "13800000000" }).waitFor();
  await v1.locator("#banner", { hasText: "Carol" }).waitFor();

  // A second visitor waits in the queue (Carol is at her maximum) ...
  const v2ctx = await browser.newContext({ viewport: PHONE, isMobile: true, locale: "zh-CN" });
  const v2 = await newPage(v2ctx, "v2");
  await v2.goto(`${URL}/chat/shop2`);
  await v2.locator("body[data-conn=online]").waitFor();
  await send(v2, "排队中的访客");
  await v2.locator("#banner[data-kind=queue]").waitFor();
  // ... until Carol claims it from the queue tab.
  await carol.locator("#cntQueue", { hasText: "1" }).waitFor();
  await carol.locator("#tabQueue").click();
  await carol.locator("#convList .conv-item").first().click();
  await waitText(carol, "left", "排队中的访客");
  await carol.locator("#claimBtn").click();
  await carol.locator("#stateTag[data-state=active]").waitFor();
  await v2.locator("#banner", { hasText: "Carol" }).waitFor();
  await send(carol, "您好，已为您接入");
  await waitText(v2, "left", "您好，已为您接入");
  // The visitor's presence reaches the agent: v2 leaves, its info says offline.
  await v2ctx.close();
  await carol.locator('#infoList dd[data-field="info_online"]', { hasText: "否" }).waitFor({ timeout: 2000 });
  // The agent's presence reaches the visitor: Carol leaves, v1 is told she stepped away.
  await cctx.close();
  await v1.locator("#banner", { hasText: "Carol 暂时离开了" }).waitFor({ timeout: 2000 });
  assert.equal(await v1.locator("#onlineText").textContent(), "客服离线");
  await v1ctx.close();
  assert.deepEqual(problems, []);
});

test("presence is live: the visitor page follows agents coming and going", async () => {
  // shop2 has only Carol, now offline.
  const vctx = await browser.newContext({ viewport: PHONE, isMobile: true, locale: "zh-CN" });
  const v = await newPage(vctx, "presence-visitor");
  await v.goto(`${URL}/chat/shop2`);
  await v.locator("body[data-conn=online]").waitFor();
  await v.locator("#leaveForm").waitFor();
  const cctx = await browser.newContext({ viewport: DESKTOP, locale: "zh-CN" });
  const carol = await newPage(cctx, "carol-presence");
  await agentLogin(carol, "carol", process.env.AGENT3_PASS, "shop2");
  // Within a second of the agent being online, the visitor can chat.
  await v.locator("#onlineDot.on").waitFor({ timeout: 1000 });
  await v.locator("#leaveForm").waitFor({ state: "hidden", timeout: 1000 });
  assert.equal(await v.locator("#onlineText").textContent(), "客服在线");
  assert.equal(await v.locator("#input").isVisible(), true);
  // The last agent leaves: offline again, within a second.
  await cctx.close();
  await v.locator("#leaveForm").waitFor({ timeout: 1000 });
  assert.equal(await v.locator("#onlineText").textContent(), "客服离线");
  await vctx.close();
  assert.deepEqual(problems, []);
});

test("a wrong business id fails visibly (page and widget)", async () => {
  const ctx = await browser.newContext({ viewport: PHONE, isMobile: true, locale: "en-US" });
  const p = await newPage(ctx, "bad-bid", /kefu: cannot start a chat with business "nosuchshop"/);
  const logged = [];
  p.on("console", (m) => { if (m.type() === "error") logged.push(m.text()); });
  await p.goto(`${URL}/chat/nosuchshop`);
  await p.locator("#banner[data-kind=error]", { hasText: "nosuchshop" }).waitFor();
  assert.equal(await p.locator("#input").isVisible(), false, "no composer to type into");
  assert.ok(logged.some((t) => t.includes("nosuchshop")), JSON.stringify(logged));
  await ctx.close();

  const siteBrowser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true,
    args: [...ARGS, "--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights"],
  });
  const sctx = await siteBrowser.newContext({ viewport: DESKTOP, locale: "zh-CN" });
  // The widget's look request for the unknown business fails too (404), in the site's console.
  const site = await newPage(sctx, "bad-bid-site", /kefu widget: .*nosuchshop|kefu: cannot start a chat|Failed to load resource: the server responded with a status of 404/);
  const siteLog = [];
  site.on("console", (m) => { if (m.type() === "error") siteLog.push(m.text()); });
  await site.route("http://shop.example/**", (route) => route.fulfill({
    contentType: "text/html",
    body: `<!doctype html><html><head><title>Shop</title></head><body><h1>A shop</h1>
      <script src="${URL}/widget.js" data-bid="nosuchshop" async></script></body></html>`,
  }));
  await site.goto("http://shop.example/");
  await site.locator("button[data-kefu=button]").click();
  const frame = site.frameLocator("div[data-kefu=panel] iframe");
  await frame.locator("#banner[data-kind=error]", { hasText: "nosuchshop" }).waitFor();
  await site.waitForFunction(() => true);
  for (let i = 0; i < 50 && !siteLog.some((t) => t.startsWith("kefu widget:")); i++) await site.waitForTimeout(100);
  assert.ok(siteLog.some((t) => t.startsWith("kefu widget:") && t.includes("nosuchshop")), JSON.stringify(siteLog));
  await siteBrowser.close();
  assert.deepEqual(problems, []);
});

test("no console error or CSP violation on any page", () => {
  assert.deepEqual(problems, []);
  assert.deepEqual(dialogs, []);
});
