// The console's history (issue 18, points 5, 9 and 1): an agent pages through the business's
// closed conversations, searches by text, visitor, agent and dates, opens a closed
// conversation read-only and a visitor's profile (earlier conversations and visits) from the
// conversation's header; another business's agent finds none of it. Then messages left while
// nobody is online go to the department the visitor was given (the widget's
// ?dept=/data-department) or picked: that department's agent gets each, the other's does
// not, the visitor who comes back sees the reply, and a transfer to the other department
// reaches its agent. A kefu of this file's own (business
// "hist", admin hana, agents ivan and jane; "hist2" with olga), so the 22 conversations
// made here meet no other file's per-address counters.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { DESKTOP, launch, context, assertNoProblems, waitText, send, shot, agentLogin, ownKefu } from "./lib.mjs";

const PW = { hana: crypto.randomBytes(12).toString("hex"), ivan: crypto.randomBytes(12).toString("hex"), jane: crypto.randomBytes(12).toString("hex"), olga: crypto.randomBytes(12).toString("hex") };
const WORD = "parcel-" + crypto.randomBytes(3).toString("hex");
const CLOSED = 21;

let browser, kefu, url;

before(async () => {
  kefu = await ownKefu("console", ["rate_per_sec = 1000.0", "rate_burst = 1000.0", "conv_new_per_ip = { per_min = 0, burst = 0 }"], [
    ["hist", "hana", "Hana", PW.hana, ["--admin"]], ["hist", "ivan", "Ivan", PW.ivan], ["hist", "jane", "Jane", PW.jane],
    ["hist2", "olga", "Olga", PW.olga],
  ]);
  url = kefu.url;
  browser = await launch();
});
after(async () => {
  if (browser) await browser.close();
  if (kefu) kefu.stop();
});

/** In a page of kefu's origin: as the visitor whose token the page keeps, open and close
 * `n` conversations one after another over a WebSocket of its own; their ids, oldest first. */
function closedConversations(page, n, word) {
  return page.evaluate(async ([n, word]) => {
    const ws = new WebSocket(location.origin.replace(/^http/, "ws") + "/ws");
    let waiters = [];
    ws.onmessage = (e) => { const m = JSON.parse(e.data); waiters = waiters.filter((w) => !w(m)); };
    const until = (pred) => new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("timeout")), 10000);
      waiters.push((m) => { if (!pred(m)) return false; clearTimeout(t); resolve(m); return true; });
    });
    await new Promise((r) => { ws.onopen = r; });
    ws.send(JSON.stringify({ method: "visitor_login", bid: "hist", token: localStorage.getItem("kefu.v.token.hist") }));
    await until((m) => m.method === "visitor_login");
    const ids = [];
    for (let i = 1; i <= n; i++) {
      ws.send(JSON.stringify({ method: "send", client_msg_id: "old" + i, kind: "text", text: `order ${i}` + (i === 7 ? ` ${word}` : "") }));
      const a = await until((m) => m.code || (m.method === "ack" && m.client_msg_id === "old" + i));
      if (a.code) throw new Error(JSON.stringify(a));
      ids.push(a.conv_id);
      ws.send(JSON.stringify({ method: "close" }));
      await until((m) => m.method === "message" && m.conv_id === a.conv_id && m.event === "closed");
    }
    ws.close();
    return ids;
  }, [n, word]);
}

function ymd(d) { return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`; }

test("an agent pages through closed conversations, searches, opens one read-only and a visitor's profile", async () => {
  const ivanCtx = await context(browser, "hist-ivan", { viewport: DESKTOP, locale: "zh-CN" });
  const ivan = await ivanCtx.newPage();
  await agentLogin(ivan, "hist", "ivan", PW.ivan, url);

  // A visitor with 21 closed conversations (order 7 says WORD), then a 22nd, open, from its page.
  const vCtx = await context(browser, "hist-visitor", { viewport: DESKTOP, locale: "zh-CN" });
  const v = await vCtx.newPage();
  await v.goto(`${url}/chat/hist`);
  await v.waitForFunction(() => window.kefuVisitor.loggedIn && window.kefuVisitor.visitorId);
  const vid = await v.evaluate(() => window.kefuVisitor.visitorId);
  assert.match(vid, /^v_/);
  const ids = await closedConversations(v, CLOSED, WORD);
  assert.equal(new Set(ids).size, CLOSED);
  await send(v, "where is my parcel now?");
  await waitText(v, "right", "where is my parcel now?");
  const item = ivan.locator("#convList .conv-item", { hasText: "where is my parcel now?" });
  await item.click();
  await waitText(ivan, "left", "where is my parcel now?");
  await send(ivan, "Let me look at your earlier orders");
  await waitText(v, "left", "Let me look at your earlier orders");

  // The visitor's profile from the conversation's header: every conversation, the visit.
  await ivan.locator("#profileBtn").click();
  await ivan.locator("#arProfilePane").waitFor();
  await ivan.locator('#arProfileInfo dd[data-field="info_id"]', { hasText: vid }).waitFor();
  assert.match(await ivan.locator('#arProfileInfo dd[data-field="info_page"]').textContent(), /\/chat\/hist$/);
  await ivan.locator("#arProfileConvs .ar-row").nth(CLOSED).waitFor();
  assert.equal(await ivan.locator("#arProfileConvs .ar-row").count(), CLOSED + 1);
  assert.ok(await ivan.locator("#arProfileVisits .ar-visit").count() >= 1);
  assert.equal(await ivan.locator("#arBack").isVisible(), false);
  // One of them, read-only: its messages and events, nothing to write with.
  await ivan.locator(`#arProfileConvs .ar-row[data-conv="${ids[6]}"]`).click();
  await ivan.locator("#arConvPane").waitFor();
  await ivan.locator("#arMsgs .msg-left .msg-text", { hasText: `order 7 ${WORD}` }).waitFor();
  await ivan.locator('#arMsgs .msg-event[data-event="closed"]').waitFor();
  assert.equal(await ivan.locator("#arConvPane textarea, #arConvPane input").count(), 0);
  await shot(ivan, "console-history-conv-zh.png");
  await ivan.locator("#arBack").click();
  await ivan.locator("#arProfilePane").waitFor();
  await ivan.locator("#arClose").click();
  await ivan.locator("#archiveView").waitFor({ state: "hidden" });

  // The closed list from the closed tab: newest closed first, 20 a page, then the rest.
  await ivan.locator("#tabClosed").click();
  await ivan.locator("#allClosedBtn").click();
  await ivan.locator("#arListPane").waitFor();
  await ivan.locator("#arList .ar-row").nth(19).waitFor();
  assert.equal(await ivan.locator("#arList .ar-row").count(), 20);
  assert.equal(await ivan.locator("#arList .ar-row").first().getAttribute("data-conv"), String(ids[CLOSED - 1]));
  await ivan.locator("#arMore").click();
  await ivan.locator("#arList .ar-row").nth(CLOSED - 1).waitFor();
  assert.equal(await ivan.locator("#arList .ar-row").count(), CLOSED);
  assert.equal(await ivan.locator("#arList .ar-row").last().getAttribute("data-conv"), String(ids[0]));
  await ivan.locator("#arMore").waitFor({ state: "hidden" });
  await shot(ivan, "console-history-zh.png");

  // Search: the word finds order 7; opening the hit shows it marked in its conversation.
  await ivan.locator("#arQ").fill(WORD);
  await ivan.locator("#arGo").click();
  await ivan.locator("#arList .ar-hit-row").first().waitFor();
  assert.equal(await ivan.locator("#arList .ar-hit-row").count(), 1);
  await ivan.locator("#arList .ar-hit-row").click();
  await ivan.locator("#arMsgs .msg.ar-hit .msg-text", { hasText: WORD }).waitFor();
  await ivan.locator("#arBack").click();
  await ivan.locator("#arListPane").waitFor();
  // Narrowed by visitor, agent and dates.
  const hits = async () => {
    await ivan.locator("#arGo").click();
    await ivan.locator("#arList .ar-hit-row, #arList .ar-none").first().waitFor();
    await ivan.locator("#arListMsg:empty").waitFor({ state: "attached" });
    return ivan.locator("#arList .ar-hit-row").count();
  };
  await ivan.locator("#arVisitor").fill(vid);
  assert.equal(await hits(), 1);
  await ivan.locator("#arVisitor").fill("v_someone_else");
  assert.equal(await hits(), 0);
  await ivan.locator("#arVisitor").fill("");
  await ivan.locator("#arAgent").fill("jane");
  assert.equal(await hits(), 0);
  await ivan.locator("#arAgent").fill("ivan");
  assert.equal(await hits(), 1);
  const today = new Date(), tomorrow = new Date(today.getFullYear(), today.getMonth(), today.getDate() + 1);
  await ivan.locator("#arFrom").fill(ymd(tomorrow));
  assert.equal(await hits(), 0);
  await ivan.locator("#arFrom").fill(ymd(today));
  await ivan.locator("#arTo").fill(ymd(today));
  assert.equal(await hits(), 1);
  await ivan.locator("#arClose").click();

  // Another business's agent: an empty list, no hit, and the profile is not found.
  const olgaCtx = await context(browser, "hist-olga", { viewport: DESKTOP, locale: "en-US" }, /status of 404/);
  const olga = await olgaCtx.newPage();
  await agentLogin(olga, "hist2", "olga", PW.olga, url);
  await olga.locator("#historyBtn").click();
  await olga.locator("#arList .ar-none").waitFor();
  assert.equal(await olga.locator("#arList .ar-row").count(), 0);
  await olga.locator("#arQ").fill(WORD);
  await olga.locator("#arGo").click();
  await olga.locator("#arList .ar-none").waitFor();
  const status = await olga.evaluate(async (vid) => {
    const a = JSON.parse(localStorage.getItem("kefu.agent.auth"));
    return (await fetch("/api/visitor/profile?visitor_id=" + vid, { headers: { Authorization: "Bearer " + a.token } })).status;
  }, vid);
  assert.equal(status, 404);
  // Without a token: refused.
  assert.equal((await fetch(`${url}/api/conversations/closed`)).status, 401);
  await Promise.all([ivanCtx.close(), vCtx.close(), olgaCtx.close()]);
});

test("messages left offline go to the visitor's department; the visitor sees the reply on coming back", async () => {
  // The admin makes two departments: ivan sells, jane supports. Then nobody is online.
  const hanaCtx = await context(browser, "hist-hana", { viewport: DESKTOP, locale: "zh-CN" });
  const hana = await hanaCtx.newPage();
  await agentLogin(hana, "hist", "hana", PW.hana, url);
  const codes = await hana.evaluate(async () => {
    const a = JSON.parse(localStorage.getItem("kefu.agent.auth"));
    const call = async (b) => (await fetch("/api/admin", { method: "POST", headers: { "Content-Type": "application/json", Authorization: "Bearer " + a.token }, body: JSON.stringify(b) })).status;
    return [
      await call({ op: "dept_save", dept_id: "sales", name: "销售" }),
      await call({ op: "dept_save", dept_id: "support", name: "售后" }),
      await call({ op: "agent_update", agent_id: "ivan", depts: ["sales"] }),
      await call({ op: "agent_update", agent_id: "jane", depts: ["support"] }),
    ];
  });
  assert.deepEqual(codes, [200, 200, 200, 200]);
  await hanaCtx.close();

  // Three visitors leave messages: one given sales by the site (?dept=, as the widget's
  // data-department passes it), one given support, one who picks support itself.
  const leave = async (who, path, name, text, pick) => {
    const ctx = await context(browser, who, { viewport: DESKTOP, locale: "zh-CN" });
    const page = await ctx.newPage();
    await page.goto(`${url}${path}`);
    await page.locator("#leaveForm").waitFor();
    if (pick) await page.locator("#deptSel").selectOption(pick);
    else assert.equal(await page.locator("#deptSel").count(), 0);
    await page.locator("#leaveName").fill(name);
    await page.locator("#leaveContact").fill("+86 138 0013 8000");
    await page.locator("#leaveText").fill(text);
    await page.locator("#leaveSubmit").click();
    await page.locator("#leaveForm").waitFor({ state: "hidden" });
    await waitText(page, "right", text);
    return { ctx, page };
  };
  const b = await leave("hist-sales-visitor", "/chat/hist?dept=sales", "韩梅梅", "sales question: 300 boxes?");
  const c = await leave("hist-support-visitor", "/chat/hist?dept=support", "李雷", "support question: broken lid");
  const d = await leave("hist-picker-visitor", "/chat/hist", "王芳", "picked support: refund", "support");

  // Ivan (sales) comes online: the sales message is his, with the contact; the others are not.
  const ivanCtx = await context(browser, "hist-ivan2", { viewport: DESKTOP, locale: "zh-CN" });
  const ivan = await ivanCtx.newPage();
  await agentLogin(ivan, "hist", "ivan", PW.ivan, url);
  await ivan.locator("#convList .conv-item", { hasText: "韩梅梅" }).click();
  await waitText(ivan, "left", "sales question: 300 boxes?");
  await ivan.locator('#infoList dd[data-field="info_contact"]', { hasText: "+86 138 0013 8000" }).waitFor();
  // Jane (support) gets both support messages, none of sales.
  const janeCtx = await context(browser, "hist-jane", { viewport: DESKTOP, locale: "zh-CN" });
  const jane = await janeCtx.newPage();
  await agentLogin(jane, "hist", "jane", PW.jane, url);
  await jane.locator("#convList .conv-item", { hasText: "李雷" }).waitFor();
  await jane.locator("#convList .conv-item", { hasText: "王芳" }).waitFor();
  for (const tab of ["#tabActive", "#tabQueue"]) {
    await ivan.locator(tab).click();
    await jane.locator(tab).click();
    assert.equal(await ivan.locator("#convList .conv-item", { hasText: /李雷|王芳/ }).count(), 0, tab);
    assert.equal(await jane.locator("#convList .conv-item", { hasText: "韩梅梅" }).count(), 0, tab);
  }

  // Ivan answers; the visitor, gone meanwhile, comes back to the site and finds the answer.
  await ivan.locator("#tabActive").click();
  await jane.locator("#tabActive").click();
  await ivan.locator("#convList .conv-item", { hasText: "韩梅梅" }).click();
  await b.page.close();
  await send(ivan, "Yes: we will call you about the 300 boxes");
  const again = await b.ctx.newPage();
  await again.goto(`${url}/chat/hist?dept=sales`);
  await waitText(again, "left", "Yes: we will call you about the 300 boxes");
  await waitText(again, "right", "sales question: 300 boxes?");

  // Ivan hands it to the support line: Jane, free there, gets it; the visitor is told.
  await ivan.locator("#transferSel").selectOption("dept:support");
  await ivan.locator("#transferBtn").click();
  await jane.locator("#convList .conv-item", { hasText: "韩梅梅" }).waitFor();
  await again.locator('#msgList .msg-event[data-event="transferred"]').waitFor();
  await ivan.locator("#stateTag[data-state=transferred]").waitFor();
  await Promise.all([ivanCtx.close(), janeCtx.close(), b.ctx.close(), c.ctx.close(), d.ctx.close()]);
  assertNoProblems();
});
