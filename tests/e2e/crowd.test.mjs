// Two agents and three visitors at once (issue 13, Tests): availability is pushed to every
// visitor within a second as agents come and go, conversations spread over both agents and
// every message gets through, and no page logs an error. Business "crowd" (agents cat and
// dan, added here with the CLI) on run.sh's kefu.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import { URL, DESKTOP, PHONE, launch, context, assertNoProblems, waitText, send, agentLogin } from "./lib.mjs";

const BID = "crowd";
const PASS = { cat: crypto.randomBytes(12).toString("hex"), dan: crypto.randomBytes(12).toString("hex") };
let browser;

before(async () => {
  for (const [id, name] of [["cat", "Cat"], ["dan", "Dan"]]) {
    const r = spawnSync(process.env.KEFU_BIN, ["agent", "add", "--bid", BID, "--id", id, "--name", name, "--max", "2", "--password-stdin", "--data-dir", process.env.KEFU_DATA], { input: PASS[id] + "\n", encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
  }
  browser = await launch();
});
after(async () => { if (browser) await browser.close(); });

const online = (v) => v.locator("#onlineDot.on").waitFor({ timeout: 1000 });
const offline = (v) => v.locator("#leaveForm").waitFor({ timeout: 1000 });

test("two agents and three visitors: presence within a second, every message through", async () => {
  // Three visitors, nobody online: each is offered the form.
  const visitors = [];
  for (let i = 0; i < 3; i++) {
    const ctx = await context(browser, `crowd-v${i}`, { viewport: i === 1 ? DESKTOP : PHONE, isMobile: i !== 1, locale: i === 2 ? "en-US" : "zh-CN" });
    const v = await ctx.newPage();
    await v.goto(`${URL}/chat/${BID}`);
    await v.locator("body[data-conn=online]").waitFor();
    visitors.push({ ctx, v });
  }
  await Promise.all(visitors.map(({ v }) => v.locator("#leaveForm").waitFor()));

  // Cat signs in: every visitor can chat within a second.
  const catCtx = await context(browser, "crowd-cat", { viewport: DESKTOP, locale: "zh-CN" });
  const cat = await catCtx.newPage();
  await agentLogin(cat, BID, "cat", PASS.cat);
  await Promise.all(visitors.map(({ v }) => online(v)));
  const danCtx = await context(browser, "crowd-dan", { viewport: DESKTOP, locale: "en-US" });
  const dan = await danCtx.newPage();
  await agentLogin(dan, BID, "dan", PASS.dan);
  await cat.locator('#colleagues .colleague[data-id="dan"]').waitFor({ timeout: 1000 });

  // All three write at once; both agents get conversations, each answers its own.
  await Promise.all(visitors.map(({ v }, i) => send(v, `crowd visitor ${i} asks`)));
  const owner = [];
  for (let i = 0; i < 3; i++) {
    const who = await Promise.any([
      cat.locator("#convList .conv-item", { hasText: `crowd visitor ${i} asks` }).waitFor().then(() => "cat"),
      dan.locator("#convList .conv-item", { hasText: `crowd visitor ${i} asks` }).waitFor().then(() => "dan"),
    ]);
    owner.push(who);
  }
  assert.ok(owner.includes("cat") && owner.includes("dan"), `both agents get work: ${owner}`);
  for (let i = 0; i < 3; i++) {
    const a = owner[i] === "cat" ? cat : dan;
    await a.locator("#convList .conv-item", { hasText: `crowd visitor ${i} asks` }).click();
    await waitText(a, "left", `crowd visitor ${i} asks`);
    await send(a, `answer to ${i} from ${owner[i]}`);
  }
  await Promise.all(visitors.map(({ v }, i) => waitText(v, "left", `answer to ${i} from ${owner[i]}`)));
  // Each visitor saw only its own answer.
  for (let i = 0; i < 3; i++) {
    const all = await visitors[i].v.locator("#msgList .msg-left .msg-text").allTextContents();
    assert.deepEqual(all.filter((t) => t.startsWith("answer to")), [`answer to ${i} from ${owner[i]}`]);
  }

  // Cat leaves: her visitors are told she stepped away within a second; Dan's see him online.
  await catCtx.close();
  await Promise.all(visitors.map(async ({ v }, i) => {
    if (owner[i] === "cat") await v.locator("#banner", { hasText: /Cat (暂时离开了|stepped away)/ }).waitFor({ timeout: 1000 });
    else assert.equal(await v.locator("#onlineDot.on").count(), 1);
  }));
  // Dan leaves too: a new visitor and the ones without a conversation with him see offline.
  await danCtx.close();
  const vctx = await context(browser, "crowd-late", { viewport: PHONE, isMobile: true, locale: "zh-CN" });
  const late = await vctx.newPage();
  await late.goto(`${URL}/chat/${BID}`);
  await offline(late);
  await Promise.all(visitors.map(({ v }) => v.locator("#onlineDot.on").waitFor({ state: "detached", timeout: 1000 })));
  // Cat is back: her visitors and the newcomer see an agent within a second; Dan's still
  // hear that Dan stepped away (their conversation is his until the grace period ends).
  const cat2Ctx = await context(browser, "crowd-cat2", { viewport: DESKTOP, locale: "zh-CN" });
  const cat2 = await cat2Ctx.newPage();
  await agentLogin(cat2, BID, "cat", PASS.cat);
  await Promise.all([...visitors.filter((_, i) => owner[i] === "cat").map(({ v }) => v), late].map((v) => online(v)));
  await late.locator("#leaveForm").waitFor({ state: "hidden", timeout: 1000 });
  for (let i = 0; i < 3; i++) {
    if (owner[i] === "dan") await visitors[i].v.locator("#banner", { hasText: /Dan (暂时离开了|stepped away)/ }).waitFor();
  }
  await cat2Ctx.close();
  await vctx.close();
  for (const { ctx } of visitors) await ctx.close();
  assertNoProblems();
});
