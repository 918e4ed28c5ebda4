// The widget's look and texts, and the routing policy, set by a business's admin in the
// console (issue 18, point 2). An admin sets the window title, colour, the launcher's side,
// welcome, offline text and leave-a-message heading in the settings dialog (markup in them
// stays text); a site's widget and the visitor page then wear them, and another business's
// pages do not. The admin area's routing control changes who the next visitor goes to.
// Businesses "wlook" (admin ann) and "rtg" (admin boss, agent pat) on run.sh's kefu.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import { URL, DESKTOP, SITE_ARGS, launch, context, assertNoProblems, waitText, send, agentLogin, routeSite } from "./lib.mjs";

const PASS = { ann: crypto.randomBytes(12).toString("hex"), boss: crypto.randomBytes(12).toString("hex"), pat: crypto.randomBytes(12).toString("hex") };
// Each would raise a dialog (a test problem) if it ever reached the page as markup.
const TITLE = "<img src=x onerror=alert(1)>帮助";
const PROMPT = "<script>alert(2)</script>请给我们留言";
const WELCOME = "Welcome to wlook!";
const OFFLINE = "We are closed; back at 9:00.";
const GREEN = "rgb(0, 168, 112)";
let browser, site;

function addAgent(bid, id, name, admin) {
  const extra = admin ? ["--admin"] : [];
  const r = spawnSync(process.env.KEFU_BIN, ["agent", "add", "--bid", bid, "--id", id, "--name", name, ...extra, "--password-stdin", "--data-dir", process.env.KEFU_DATA], { input: PASS[id] + "\n", encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
}

before(async () => {
  addAgent("wlook", "ann", "Ann", true);
  addAgent("rtg", "boss", "Boss", true);
  addAgent("rtg", "pat", "Pat", false);
  browser = await launch();
  site = await launch(SITE_ARGS);
});
after(async () => {
  if (browser) await browser.close();
  if (site) await site.close();
});

test("an admin sets the widget's look and texts; the widget and the visitor page wear them", async () => {
  const annCtx = await context(browser, "wlook-ann", { viewport: DESKTOP, locale: "zh-CN" });
  const ann = await annCtx.newPage();
  await agentLogin(ann, "wlook", "ann", PASS.ann);
  await ann.locator("#settingsBtn").click();
  await ann.locator("#settingsView").waitFor();
  // The dialog fills itself from the profile first.
  await ann.waitForFunction(() => document.getElementById("sAgentName").value !== "");
  assert.equal(await ann.locator("#sPosition").inputValue(), "right");
  await ann.locator("#sTitle").fill(TITLE);
  await ann.locator("#sColor").fill("#00A870");
  await ann.locator("#sPosition").selectOption("left");
  await ann.locator("#sWelcome").fill(WELCOME);
  await ann.locator("#sOffline").fill(OFFLINE);
  await ann.locator("#sLeavePrompt").fill(PROMPT);
  await ann.locator("#sSave").click();
  await ann.locator("#sMsg[data-kind=ok]").waitFor();
  await ann.locator("#sClose").click();
  // Read back after a reload of the console.
  await ann.reload();
  await ann.locator("#connPill[data-state=online]").waitFor();
  await ann.locator("#settingsBtn").click();
  await ann.waitForFunction(() => document.getElementById("sTitle").value !== "");
  assert.equal(await ann.locator("#sTitle").inputValue(), TITLE);
  assert.equal(await ann.locator("#sPosition").inputValue(), "left");
  assert.equal(await ann.locator("#sLeavePrompt").inputValue(), PROMPT);
  assert.equal(await ann.locator("#sColor").inputValue(), "#00a870");
  await ann.locator("#sClose").click();

  // A site's widget: on the left, in the business's colour, named by its title.
  const sctx = await context(site, "wlook-site", { viewport: DESKTOP, locale: "zh-CN" });
  const sp = await sctx.newPage();
  await routeSite(sp, `data-bid="wlook"`);
  await sp.goto("http://shop.example/page");
  const btn = sp.locator("button[data-kefu=button]");
  await sp.waitForFunction(() => {
    const b = document.querySelector("button[data-kefu=button]");
    return b && b.getAttribute("title");
  });
  assert.equal(await btn.getAttribute("title"), TITLE);
  assert.equal(await btn.getAttribute("aria-label"), TITLE);
  const box = await btn.boundingBox();
  assert.ok(box.x < DESKTOP.width / 2, `launcher at x=${box.x}`);
  assert.equal(await btn.evaluate((n) => getComputedStyle(n).backgroundColor), GREEN);
  await btn.click();
  const panel = await sp.locator("div[data-kefu=panel]").boundingBox();
  assert.ok(panel.x < DESKTOP.width / 2, `panel at x=${panel.x}`);
  const frame = sp.frameLocator("div[data-kefu=panel] iframe");
  await frame.locator("body[data-conn=online]").waitFor();
  // In the panel: the title as text, the colour, the welcome first.
  await frame.locator("#shopName", { hasText: "帮助" }).waitFor();
  assert.equal(await frame.locator("#shopName").textContent(), TITLE);
  assert.equal(await frame.locator("#shopName *").count(), 0);
  assert.equal(await frame.locator(".chat-header").evaluate((n) => getComputedStyle(n).backgroundColor), GREEN);
  assert.equal(await frame.locator("#msgList .msg-welcome .msg-text").textContent(), WELCOME);
  await sctx.close();

  // With nobody online: the offline text and the admin's heading over the form, as text.
  await annCtx.close();
  const vctx = await context(browser, "wlook-visitor", { viewport: DESKTOP, locale: "en-US" });
  const v = await vctx.newPage();
  await v.goto(`${URL}/chat/wlook`);
  await v.locator("#leaveForm").waitFor();
  await v.locator("#leaveTitle", { hasText: "请给我们留言" }).waitFor();
  assert.equal(await v.locator("#leaveTitle").textContent(), PROMPT);
  assert.equal(await v.locator("#leaveTitle *").count(), 0);
  assert.equal(await v.locator("#leaveHint").textContent(), OFFLINE);
  assert.equal(await v.locator("#shopName").textContent(), TITLE);
  assert.equal(await v.title(), TITLE);
  await vctx.close();

  // Another business's pages keep the defaults.
  const octx = await context(browser, "wlook-other", { viewport: DESKTOP, locale: "en-US" });
  const o = await octx.newPage();
  await o.goto(`${URL}/chat/rtg`);
  await o.locator("body[data-conn=online]").waitFor();
  await o.locator("#leaveTitle", { hasText: "No agent is online" }).waitFor();
  assert.notEqual(await o.locator("#shopName").textContent(), TITLE);
  assert.notEqual(await o.locator(".chat-header").evaluate((n) => getComputedStyle(n).backgroundColor), GREEN);
  await octx.close();
  assertNoProblems();
});

/** Which of `pages` (agents' consoles by name) lists the conversation whose last message is
 * `text`: the first to show it. */
function holder(pages, text) {
  return Promise.any(Object.entries(pages).map(([name, p]) =>
    p.locator("#convList .conv-item", { hasText: text }).waitFor({ timeout: 30000 }).then(() => name)));
}

test("the admin's routing control decides who the next visitor goes to", async () => {
  const bossCtx = await context(browser, "rtg-boss", { viewport: DESKTOP, locale: "en-US" });
  const boss = await bossCtx.newPage();
  await agentLogin(boss, "rtg", "boss", PASS.boss);
  const policy = async (p) => {
    await boss.locator("#adminBtn").click();
    await boss.locator("#adminView").waitFor();
    await boss.locator("#aRouting").selectOption(p);
    await boss.locator("#aMsg[data-kind=ok]").waitFor();
    await boss.locator("#aClose").click();
  };
  await policy("round_robin");
  // Read back after a reload.
  await boss.reload();
  await boss.locator("#connPill[data-state=online]").waitFor();
  await boss.locator("#adminBtn").click();
  await boss.locator("#adminView").waitFor();
  await boss.waitForFunction(() => document.getElementById("aRouting").options.length > 1);
  assert.equal(await boss.locator("#aRouting").inputValue(), "round_robin");
  await boss.locator("#aClose").click();

  const patCtx = await context(browser, "rtg-pat", { viewport: DESKTOP, locale: "en-US" });
  const pat = await patCtx.newPage();
  await agentLogin(pat, "rtg", "pat", PASS.pat);
  await boss.locator('#colleagues .colleague[data-id="pat"]').waitFor();
  const agents = { boss, pat };
  const visitors = [];
  const visit = async (text) => {
    const ctx = await context(browser, "rtg-v" + visitors.length, { viewport: DESKTOP, locale: "en-US" });
    visitors.push(ctx);
    const v = await ctx.newPage();
    await v.goto(`${URL}/chat/rtg`);
    await v.locator("body[data-conn=online]").waitFor();
    await send(v, text);
    return holder(agents, text);
  };
  // Two visitors: one each, whatever the policy.
  const x = await visit("first visitor");
  const y = await visit("second visitor");
  assert.notEqual(x, y);
  // Y closes its conversation: X has one open, Y none, and Y was given one last.
  const yp = agents[y];
  await yp.locator("#convList .conv-item", { hasText: "second visitor" }).click();
  await waitText(yp, "left", "second visitor");
  await yp.locator("#closeBtn").click();
  await yp.locator("#closeBtn").click();
  await yp.locator("#stateTag[data-state=closed]").waitFor();
  // Round robin: the one waiting longest since its last visitor (X), busy or not.
  assert.equal(await visit("third visitor"), x);
  // Least busy: the one with fewer open conversations (Y).
  await policy("least_busy");
  assert.equal(await visit("fourth visitor"), y);
  for (const c of visitors) await c.close();
  await bossCtx.close(); await patCtx.close();
  assertNoProblems();
});
