// Search and reports in the console (issue 18): a visitor writes, the agent answers, then
// the admin's "search & reports" dialog finds the message, draws the report chart (per day,
// agent and department, with the rating column) and downloads the CSV; a plain agent of the
// business gets the search but no reports; another business's admin finds nothing of it.
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

test("search finds a message, the report draws, the CSV downloads", async () => {
  const agentCtx = await context(browser, "rita", { viewport: DESKTOP, locale: "zh-CN", acceptDownloads: true });
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

  // Search.
  await agent.locator("#reportsBtn").click();
  await agent.locator("#reportsView").waitFor();
  await agent.locator("#rQ").fill(WORD);
  await agent.locator("#rGo").click();
  const hit = agent.locator("#rHits .r-hit", { hasText: WORD });
  await hit.waitFor();
  assert.equal(await agent.locator("#rHits .r-hit").count(), 1);
  // Two characters take the short-text path; both sides' messages match.
  await agent.locator("#rQ").fill("查询");
  await agent.locator("#rGo").click();
  await agent.locator("#rHits .r-hit", { hasText: "马上为您查询物流" }).waitFor();

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

  // A plain agent of the business: the search, no reports (and the server refuses them).
  const ronCtx = await context(browser, "ron", { viewport: DESKTOP, locale: "zh-CN" });
  const ron = await ronCtx.newPage();
  await agentLogin(ron, "rpt", "ron", PASS.ron);
  await ron.locator("#reportsBtn").click();
  await ron.locator("#reportsView").waitFor();
  await ron.locator("#rQ").fill(WORD);
  await ron.locator("#rGo").click();
  await ron.locator("#rHits .r-hit", { hasText: WORD }).waitFor();
  assert.equal(await ron.locator("#rReports").isVisible(), false);
  const ronStatus = await ron.evaluate(async () => {
    const a = JSON.parse(localStorage.getItem("kefu.agent.auth"));
    return (await fetch("/api/reports?group=agent", { headers: { Authorization: "Bearer " + a.token } })).status;
  });
  assert.equal(ronStatus, 403);

  // Another business's agent finds nothing of it, and its report is empty.
  const samCtx = await context(browser, "sam", { viewport: DESKTOP, locale: "zh-CN" });
  const sam = await samCtx.newPage();
  await agentLogin(sam, "rpt2", "sam", PASS.sam);
  const seen = await sam.evaluate(async (word) => {
    const a = JSON.parse(localStorage.getItem("kefu.agent.auth"));
    const h = { Authorization: "Bearer " + a.token };
    const s = await (await fetch("/api/search?q=" + encodeURIComponent(word), { headers: h })).json();
    const r = await (await fetch("/api/reports?group=agent", { headers: h })).json();
    return { hits: s.items.length, rows: r.rows.length };
  }, WORD);
  assert.deepEqual(seen, { hits: 0, rows: 0 });
  // Without the token the CSV is refused.
  assert.equal((await fetch(`${URL}/api/reports?format=csv`)).status, 401);

  await agent.locator("#rClose").click();
  await agent.locator("#reportsView").waitFor({ state: "hidden" });
  await Promise.all([agentCtx.close(), visitorCtx.close(), samCtx.close(), ronCtx.close()]);
  assertNoProblems();
});
