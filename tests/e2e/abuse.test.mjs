// What the pages show when kefu's abuse limits refuse something (issue 11, items 6, 7, 16):
// the console's login back-off, the visitor page's per-address message limit, and an image
// before any message. Runs its own kefu with tight limits (one worker, so every request
// meets the same counters), leaving the shared instance's counters alone.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launch, context, assertNoProblems, ownKefu } from "./lib.mjs";

// The refusals these tests provoke on purpose, as the browser logs them.
const REFUSED = (codes) => new RegExp(`Failed to load resource: the server responded with a status of (${codes})`);
const PASS = "pw-abuse-e2e-1";

let browser, kefu, url;

before(async () => {
  // Bob stays online for the visitor tests (with no agent online the page offers the
  // leave-a-message form instead of the composer); alice's logins are the back-off test's.
  kefu = await ownKefu("abuse", ["login_account_free_failures = 1", "visitor_msg_per_ip = { per_min = 1, burst = 3 }"],
    [["shop9", "alice", "Alice", PASS], ["shop9", "bob", "Bob", PASS]]);
  url = kefu.url;
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
  if (kefu) kefu.stop();
});

test("console: repeated wrong passwords show the back-off and how long to wait", async () => {
  const ctx = await context(browser, "backoff", { locale: "en-US" }, REFUSED("401|429"));
  const page = await ctx.newPage();
  await page.goto(`${url}/console`);
  await page.locator("#lBid").fill("shop9");
  await page.locator("#lAgent").fill("alice");
  let msg = "";
  for (let i = 0; i < 6 && !/Too many|过多/.test(msg); i++) {
    await page.locator("#lPass").fill("wrong-password");
    await page.locator("#loginBtn:not([disabled])").click();
    await page.waitForFunction(() => document.getElementById("loginErr").textContent !== "");
    msg = await page.locator("#loginErr").textContent();
    if (!/Too many|过多/.test(msg)) await page.evaluate(() => { document.getElementById("loginErr").textContent = ""; });
  }
  assert.match(msg, /(Too many failed sign-ins: try again in \d+ s)|(请 \d+ 秒后再试)/);
  // The button stays off while the server would refuse anyway.
  assert.ok(await page.locator("#loginBtn").isDisabled());
  await ctx.close();
});

test("visitor page: an image before any message says to write first", async () => {
  const ctx = await context(browser, "early-image", { locale: "en-US" }, REFUSED("403"));
  const page = await ctx.newPage();
  await page.goto(`${url}/chat/shop9`);
  await page.locator("#connState[data-state=online]").waitFor({ state: "attached" });
  const png = Buffer.from(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
    "base64");
  await page.locator("#fileInput").setInputFiles({ name: "a.png", mimeType: "image/png", buffer: png });
  await page.waitForFunction(() => /message first|先发送/.test(document.getElementById("banner").textContent));
  await ctx.close();
});

test("visitor page: messages over the per-address limit show an error and are retried", async () => {
  const agentCtx = await context(browser, "abuse-agent", { locale: "en-US" });
  const agent = await agentCtx.newPage();
  await agent.goto(`${url}/console`);
  await agent.locator("#lBid").fill("shop9");
  await agent.locator("#lAgent").fill("bob");
  await agent.locator("#lPass").fill(PASS);
  await agent.locator("#loginBtn").click();
  await agent.locator("#connPill[data-state=online]").waitFor();
  const ctx = await context(browser, "msg-limit", { locale: "en-US" });
  const page = await ctx.newPage();
  await page.goto(`${url}/chat/shop9`);
  await page.locator("#connState[data-state=online]").waitFor({ state: "attached" });
  for (let i = 0; i < 5; i++) {
    await page.locator("#input").fill(`message ${i}`);
    await page.locator("#sendBtn").click();
  }
  await page.waitForFunction(() => /Too many requests: try again in \d+ s/.test(document.getElementById("banner").textContent));
  assert.ok(await page.locator("#msgList .msg-failed").count() >= 1, "the refused message is marked");
  await ctx.close();
  await agentCtx.close();
});

test("no console error or CSP violation on any page", () => assertNoProblems());
