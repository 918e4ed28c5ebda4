// The agents' desk (issue 18: canned replies, internal notes, ratings, working hours, offline
// messages) in the browser: an agent adds a canned reply and uses it with "/", writes a note
// the visitor never sees (not on its page, not in any WebSocket frame it gets, not after a
// reload), closes; the visitor rates; the agent sees the rating. Then the business closes its
// hours and a visitor leaves a message with its contact. Business "desk" (agent dora, added
// here with the CLI) on run.sh's kefu.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import { URL, DESKTOP, launch, context, assertNoProblems, waitText, send, shot, agentLogin } from "./lib.mjs";

const BID = "desk";
const PASS = crypto.randomBytes(12).toString("hex");
const NOTE = "VIP-9c1e: refund approved by finance";

let browser, agentCtx, agent;

before(async () => {
  const r = spawnSync(process.env.KEFU_BIN, ["agent", "add", "--bid", BID, "--id", "dora", "--name", "Dora", "--admin", "--password-stdin", "--data-dir", process.env.KEFU_DATA], { input: PASS + "\n", encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  browser = await launch();
  agentCtx = await context(browser, "dora", { viewport: DESKTOP, locale: "zh-CN" });
  agent = await agentCtx.newPage();
  await agentLogin(agent, BID, "dora", PASS);
});

after(async () => {
  if (browser) await browser.close();
});

/** A visitor page whose every WebSocket frame received is kept. */
async function visitor(who) {
  const ctx = await context(browser, who, { viewport: DESKTOP, locale: "zh-CN" });
  const page = await ctx.newPage();
  const frames = [];
  page.on("websocket", (ws) => ws.on("framereceived", (f) => frames.push(String(f.payload))));
  await page.goto(`${URL}/chat/${BID}`);
  await page.locator("#connState").waitFor({ state: "attached" });
  return { ctx, page, frames };
}

test("a canned reply, a note the visitor never sees, a rating after close", async () => {
  // The canned reply, for everyone in the business.
  await agent.locator("#cannedBtn").click();
  await agent.locator("#deskView").waitFor();
  await agent.locator("#cScope").selectOption("business");
  await agent.locator("#cShortcut").fill("hi");
  await agent.locator("#cText").fill("您好 {visitor_name}，我是 {agent_name}，很高兴为您服务。");
  await agent.locator("#cAdd").click();
  await agent.locator("#cList .canned-row", { hasText: "/hi" }).waitFor();
  await agent.locator("#cClose").click();

  const v = await visitor("visitor");
  await send(v.page, "我的订单还没到");
  await agent.locator("#convList .conv-item").first().click();
  await waitText(agent, "left", "我的订单还没到");

  // "/h" opens the picker; Enter puts the reply in with its variables filled in.
  await agent.locator("#input").fill("/h");
  await agent.locator("#cannedPick .canned-opt", { hasText: "/hi" }).waitFor();
  await agent.locator("#input").press("Enter");
  const filled = await agent.locator("#input").inputValue();
  assert.equal(filled, "您好 访客，我是 Dora，很高兴为您服务。");
  await agent.locator("#sendBtn").click();
  await waitText(v.page, "left", "您好 访客，我是 Dora");

  // A note: shown to the agent, never to the visitor.
  await agent.locator("#noteText").fill(NOTE);
  await agent.locator("#noteAdd").click();
  await agent.locator("#noteList .note-text", { hasText: NOTE }).waitFor();
  await send(agent, "已为您加急处理");
  await waitText(v.page, "left", "已为您加急处理");
  await shot(agent, "desk-console-note.png");
  assert.ok(!(await v.page.locator("body").innerText()).includes("VIP-9c1e"));
  await v.page.reload();
  await waitText(v.page, "left", "已为您加急处理");
  assert.ok(!(await v.page.locator("body").innerText()).includes("VIP-9c1e"));
  assert.ok(v.frames.length > 3, "frames were watched");
  assert.ok(!v.frames.some((f) => f.includes("VIP-9c1e")), "a note in a visitor's frame");
  // The note is still there for the agent after a reload of the console.
  await agent.reload();
  await agent.locator("#noteList .note-text", { hasText: NOTE }).waitFor();

  // Close (click twice); the visitor rates 4 with a comment; the agent sees it live.
  await agent.locator("#closeBtn").click();
  await agent.locator("#closeBtn").click();
  await v.page.locator("#rateCard").waitFor();
  await v.page.locator('.rate-star[data-score="4"]').click();
  await v.page.locator("#rateComment").fill("很耐心 <b>谢谢</b>");
  await shot(v.page, "desk-visitor-rating.png");
  await v.page.locator("#rateSubmit").click();
  await v.page.locator("#rateThanks").waitFor();
  await agent.locator("#ratingLine", { hasText: "★★★★☆ 很耐心 <b>谢谢</b>" }).waitFor();
  await agent.locator("#tabClosed").click();
  await agent.locator("#convList .conv-item .rating-badge", { hasText: "★4" }).waitFor();
  // Rated once: a reload of the visitor page does not ask again.
  await v.page.reload();
  await v.page.locator("#connState").waitFor({ state: "attached" });
  await waitText(v.page, "left", "已为您加急处理");
  assert.ok(await v.page.locator("#rateCard").isHidden());
  assert.ok(!v.frames.some((f) => f.includes("VIP-9c1e")));
  await v.ctx.close();
  assertNoProblems();
});

test("outside working hours the visitor leaves a message with its contact", async () => {
  await agent.locator("#cannedBtn").click();
  await agent.locator("#deskView").waitFor();
  await agent.locator("#hTz").fill("Asia/Shanghai");
  for (let i = 0; i < 7; i++) await agent.locator(`#hDay${i}`).fill("");
  await agent.locator("#hSave").click();
  await agent.locator("#hNow", { hasText: "非工作时间" }).waitFor();
  await agent.locator("#cClose").click();

  // Dora is online, but the business is closed: the page offers the form.
  const v = await visitor("offline visitor");
  await v.page.locator("#leaveForm").waitFor();
  await v.page.locator("#leaveName").fill("韩梅梅");
  await v.page.locator("#leaveContact").fill("meimei@example.com");
  await v.page.locator("#leaveText").fill("明天请联系我");
  await v.page.locator("#leaveSubmit").click();
  await v.page.locator("#leaveForm").waitFor({ state: "hidden" });
  await waitText(v.page, "right", "明天请联系我");

  // The console: the conversation with the name and contact.
  await agent.locator("#tabActive").click();
  await agent.locator("#convList .conv-item", { hasText: "韩梅梅" }).click();
  await agent.locator('#infoList dd[data-field="info_contact"]', { hasText: "meimei@example.com" }).waitFor();
  await send(agent, "好的，明天联系您");
  await waitText(v.page, "left", "好的，明天联系您");

  // Always open again (the business's other tests expect it so).
  await agent.locator("#cannedBtn").click();
  await agent.locator("#hClear").click();
  await agent.locator("#hNow", { hasText: "未设置" }).waitFor();
  await agent.locator("#cClose").click();
  await v.ctx.close();
  assertNoProblems();
});
