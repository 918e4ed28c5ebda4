// Reports and webhooks in the console (issue 18): a visitor writes, the admin answers, then
// the admin's "报表" dialog draws the report chart (per day, agent and department, with the
// rating column), downloads the CSV, registers a webhook (its secret shown once) and removes
// it; a plain agent of the business has no such button and the server refuses it; another
// business's admin sees nothing of it (search, reports, webhooks).
// Business "rpt" (admin rita, agent ron) and "rpt2" (admin sam), added here with the CLI, on
// run.sh's kefu.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import { URL, DESKTOP, launch, context, assertNoProblems, waitText, send, shot, agentLogin } from "./lib.mjs";

const PASS = { rita: crypto.randomBytes(12).toString("hex"), sam: crypto.randomBytes(12).toString("hex"), ron: crypto.randomBytes(12).toString("hex") };
const WORD = "tracking-" + crypto.randomBytes(3).toString("hex");

let browser;

before(async () => {
  for (const [bid, id, name, admin] of [["rpt", "rita", "Rita", true], ["rpt2", "sam", "Sam", true], ["rpt", "ron", "Ron", false]]) {
    const args = ["agent", "add", "--bid", bid, "--id", id, "--name", name, "--password-stdin", "--data-dir", process.env.KEFU_DATA];
    if (admin) args.push("--admin");
    const r = spawnSync(process.env.KEFU_BIN, args, { input: PASS[id] + "\n", encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
  }
  browser = await launch();
});

after(async () => { if (browser) await browser.close(); });

test("the report draws, the CSV downloads, a webhook is added and removed", async () => {
  // The refused webhook URL (400) is expected.
  const agentCtx = await context(browser, "rita", { viewport: DESKTOP, locale: "zh-CN", acceptDownloads: true }, /status of 400/);
  const agent = await agentCtx.newPage();
  await agentLogin(agent, "rpt", "rita", PASS.rita);

  const visitorCtx = await context(browser, "visitor", { viewport: DESKTOP, locale: "zh-CN" });
  const visitor = await visitorCtx.newPage();
  await visitor.goto(`${URL}/chat/rpt`);
  await visitor.locator("body[data-conn=online]").waitFor();
  await send(visitor, `我的订单 ${WORD} 到哪了？`);
  await waitText(visitor, "right", WORD);
  const item = agent.locator("#convList .conv-item").first();
  await item.waitFor();
  await item.click();
  await waitText(agent, "left", WORD);
  await send(agent, "马上为您查询物流");
  await waitText(visitor, "left", "马上为您查询物流");

  // The message is in the business's search (the console's history dialog shows it).
  const found = await agent.evaluate(async (word) => {
    const a = JSON.parse(localStorage.getItem("kefu.agent.auth"));
    const s = await (await fetch("/api/search?q=" + encodeURIComponent(word), { headers: { Authorization: "Bearer " + a.token } })).json();
    return s.items.length;
  }, WORD);
  assert.equal(found, 1);

  await agent.locator("#reportsBtn").click();
  await agent.locator("#reportsView").waitFor();
  // The report: one conversation today, drawn as bars, with a table row.
  // Days without conversations are zero-height bars; today's is not.
  await agent.locator('#rChart svg.r-svg rect.r-bar[data-key]:not([height="0"])').first().waitFor();
  const heights = await agent.locator("#rChart rect.r-bar[data-key]").evaluateAll((rs) => rs.map((r) => Number(r.getAttribute("height"))));
  assert.equal(heights.filter((h) => h > 0).length, 1, `one day with conversations: ${heights}`);
  await agent.locator("#rTable tbody tr").first().waitFor();
  assert.equal(await agent.locator("#rTable tbody tr td").nth(1).textContent(), "1");
  const ths = await agent.locator("#rTable thead th").allTextContents();
  assert.equal(ths[ths.length - 1], "满意度");
  await agent.locator("#rGroup").selectOption("agent");
  await agent.locator("#rTable tbody tr td", { hasText: "Rita (rita)" }).waitFor();
  // Per department: the conversation had none.
  await agent.locator("#rGroup").selectOption("dept");
  await agent.locator("#rTable tbody tr td", { hasText: "（无部门）" }).waitFor();
  await agent.locator("#rGroup").selectOption("agent");
  await agent.locator("#rTable tbody tr td", { hasText: "Rita (rita)" }).waitFor();
  await shot(agent, "console-reports-zh.png");

  // CSV download.
  const [dl] = await Promise.all([agent.waitForEvent("download"), agent.locator("#rCsv").click()]);
  assert.equal(dl.suggestedFilename(), "kefu-report-agent.csv");
  const csv = fs.readFileSync(await dl.path(), "utf8");
  const lines = csv.split("\r\n").filter(Boolean);
  assert.equal(lines[0], "agent,name,conversations,missed,answered,first_response_s,resolved,resolution_s,rated,rating_avg");
  assert.ok(lines.some((l) => l.startsWith("rita,Rita,1,0,1,")), csv);

  // Webhooks: register one, its secret is shown once, the list has it; then remove it.
  const HOOK = "https://hooks.example.invalid/kefu-" + crypto.randomBytes(3).toString("hex");
  await agent.locator("#hUrl").fill(HOOK);
  await agent.locator("#hAdd").click();
  await agent.locator("#hSecret").waitFor();
  assert.match(await agent.locator("#hSecret").textContent(), /^[0-9a-f]{64}$/);
  const hookRow = agent.locator("#hList .r-hook", { hasText: HOOK });
  await hookRow.waitFor();
  await agent.locator("#hUrl").fill("ftp://nope/");
  await agent.locator("#hAdd").click();
  await agent.locator("#hMsg[data-kind=error]").waitFor();
  await shot(agent, "console-webhooks-zh.png");

  // A plain agent of the business: no button, and the server refuses its token.
  // Its refused calls (403) are expected.
  const ronCtx = await context(browser, "ron", { viewport: DESKTOP, locale: "zh-CN" }, /status of 403/);
  const ron = await ronCtx.newPage();
  await agentLogin(ron, "rpt", "ron", PASS.ron);
  await ron.locator("#convList").waitFor();
  assert.equal(await ron.locator("#reportsBtn").isVisible(), false);
  const ronStatus = await ron.evaluate(async () => {
    const a = JSON.parse(localStorage.getItem("kefu.agent.auth"));
    const h = { Authorization: "Bearer " + a.token };
    return [(await fetch("/api/reports?group=agent", { headers: h })).status, (await fetch("/api/webhooks", { headers: h })).status];
  });
  assert.deepEqual(ronStatus, [403, 403]);

  // Another business's agent finds nothing of it, and its report is empty.
  const samCtx = await context(browser, "sam", { viewport: DESKTOP, locale: "zh-CN" });
  const sam = await samCtx.newPage();
  await agentLogin(sam, "rpt2", "sam", PASS.sam);
  const seen = await sam.evaluate(async (word) => {
    const a = JSON.parse(localStorage.getItem("kefu.agent.auth"));
    const h = { Authorization: "Bearer " + a.token };
    const s = await (await fetch("/api/search?q=" + encodeURIComponent(word), { headers: h })).json();
    const r = await (await fetch("/api/reports?group=agent", { headers: h })).json();
    const w = await (await fetch("/api/webhooks", { headers: h })).json();
    return { hits: s.items.length, rows: r.rows.length, hooks: w.items.length };
  }, WORD);
  assert.deepEqual(seen, { hits: 0, rows: 0, hooks: 0 });

  // The admin removes the webhook.
  await hookRow.locator("button").click();
  await agent.locator("#hList .muted").waitFor();
  assert.equal(await agent.locator("#hList .r-hook").count(), 0);
  // Without the token the CSV is refused.
  assert.equal((await fetch(`${URL}/api/reports?format=csv`)).status, 401);

  await agent.locator("#rClose").click();
  await agent.locator("#reportsView").waitFor({ state: "hidden" });
  await Promise.all([agentCtx.close(), visitorCtx.close(), samCtx.close(), ronCtx.close()]);
  assertNoProblems();
});
