// Roles and departments in the browser (issue 18, points 1 and 2): the business's admin
// (added with `kefu agent add --admin`) creates a department and an agent in it from the
// console's admin area; a visitor picks that department on the visitor page, and a site's
// widget names it with data-department; that agent gets both conversations, not the admin
// who is online and idle too. A plain agent's console has no admin area and the server
// refuses its admin call. Business "adm" on run.sh's kefu.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import { URL, DESKTOP, SITE_ARGS, launch, context, assertNoProblems, waitText, send, agentLogin, routeSite } from "./lib.mjs";

const BID = "adm";
const PASS = { boss: crypto.randomBytes(12).toString("hex"), pat: crypto.randomBytes(12).toString("hex"), sam: crypto.randomBytes(12).toString("hex") };
let browser, site;

before(async () => {
  for (const [id, name, extra] of [["boss", "Boss", ["--admin"]], ["pat", "Pat", []]]) {
    const r = spawnSync(process.env.KEFU_BIN, ["agent", "add", "--bid", BID, "--id", id, "--name", name, ...extra, "--password-stdin", "--data-dir", process.env.KEFU_DATA], { input: PASS[id] + "\n", encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
  }
  browser = await launch();
  site = await launch(SITE_ARGS);
});
after(async () => {
  if (browser) await browser.close();
  if (site) await site.close();
});

test("an admin configures a department and an agent; visitors of that department reach that agent", async () => {
  const bossCtx = await context(browser, "adm-boss", { viewport: DESKTOP, locale: "zh-CN" });
  const boss = await bossCtx.newPage();
  await agentLogin(boss, BID, "boss", PASS.boss);
  await boss.locator("#adminBtn").click();
  await boss.locator("#adminView").waitFor();
  // A department, then an agent in it (the new department's box in the add form).
  await boss.locator("#aDeptId").fill("sales");
  await boss.locator("#aDeptName").fill("销售部 <b>");
  await boss.locator("#aDeptForm button[type=submit]").click();
  await boss.locator('.a-dept[data-dept="sales"]').waitFor();
  await boss.locator("#aAgentId").fill("sam");
  await boss.locator("#aAgentName").fill("Sam");
  await boss.locator("#aAgentPw").fill(PASS.sam);
  await boss.locator('#aNewDepts input[value="sales"]').check();
  await boss.locator("#aAgentForm button[type=submit]").click();
  const row = boss.locator('.a-agent[data-agent="sam"]');
  await row.waitFor();
  assert.equal(await row.locator('.a-depts input[value="sales"]').isChecked(), true);
  // Typed text stays text.
  assert.equal(await boss.locator(".a-dept b + input").inputValue(), "销售部 <b>");
  await boss.locator("#aClose").click();
  await boss.locator("#adminView").waitFor({ state: "hidden" });

  // Sam signs in with the password the admin gave.
  const samCtx = await context(browser, "adm-sam", { viewport: DESKTOP, locale: "en-US" });
  const sam = await samCtx.newPage();
  await agentLogin(sam, BID, "sam", PASS.sam);
  assert.equal(await sam.locator("#adminBtn").count(), 0, "a plain agent has no admin button");

  // A visitor picks the department and writes: Sam gets it, not the idle admin.
  const vCtx = await context(browser, "adm-visitor", { viewport: DESKTOP, locale: "zh-CN" });
  const v = await vCtx.newPage();
  await v.goto(`${URL}/chat/${BID}`);
  await v.locator("body[data-conn=online]").waitFor();
  await v.locator("#deptSel").waitFor();
  await v.locator("#deptSel").selectOption("sales");
  await send(v, "I want to buy 3 boxes");
  const item = sam.locator("#convList .conv-item", { hasText: "I want to buy 3 boxes" });
  await item.waitFor();
  await item.click();
  await waitText(sam, "left", "I want to buy 3 boxes");
  await send(sam, "Sam from sales here");
  await waitText(v, "left", "Sam from sales here");
  // With the conversation open, the picker is gone.
  await v.locator("#deptPick").waitFor({ state: "hidden" });
  assert.equal(await boss.locator("#convList .conv-item", { hasText: "I want to buy 3 boxes" }).count(), 0);

  // A shop's widget names the department: that visitor goes to Sam too, without a picker.
  const sctx = await context(site, "adm-site", { viewport: DESKTOP, locale: "en-US" });
  const sp = await sctx.newPage();
  await routeSite(sp, `data-bid="${BID}" data-department="sales"`);
  await sp.goto("http://shop.example/sales-page");
  await sp.locator("button[data-kefu=button]").click();
  const frame = sp.frameLocator("div[data-kefu=panel] iframe");
  await frame.locator("body[data-conn=online]").waitFor();
  assert.equal(await frame.locator("#deptSel").count(), 0);
  await frame.locator("#input").fill("widget visitor for sales");
  await frame.locator("#sendBtn").click();
  await sam.locator("#convList .conv-item", { hasText: "widget visitor for sales" }).waitFor();
  assert.equal(await boss.locator("#convList .conv-item", { hasText: "widget visitor for sales" }).count(), 0);
  await sctx.close();

  // The plain agent Pat: no admin area, and the server says no to its admin call.
  const patCtx = await context(browser, "adm-pat", { viewport: DESKTOP, locale: "en-US" }, /status of 403/);
  const pat = await patCtx.newPage();
  await agentLogin(pat, BID, "pat", PASS.pat);
  assert.equal(await pat.locator("#adminBtn").count(), 0);
  const status = await pat.evaluate(async () => {
    const a = JSON.parse(localStorage.getItem("kefu.agent.auth"));
    const r = await fetch("/api/admin", { method: "POST", headers: { "Content-Type": "application/json", Authorization: "Bearer " + a.token }, body: JSON.stringify({ op: "state" }) });
    return r.status;
  });
  assert.equal(status, 403);
  // The settings dialog shows a plain agent only its own name and avatar.
  await pat.locator("#settingsBtn").click();
  await pat.locator("#settingsView").waitFor();
  assert.equal(await pat.locator("#sName").isVisible(), false);
  assert.equal(await pat.locator("#sAgentName").isVisible(), true);
  await bossCtx.close(); await samCtx.close(); await vCtx.close(); await patCtx.close();
  assertNoProblems();
});
