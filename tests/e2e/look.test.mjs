// A business's own face (issue 13, "Beyond repair"): the console's settings dialog, what the
// visitor page and the widget show (name, logo, colour, welcome, offline message, agents'
// avatars, ticks), sound, title and badge while the visitor is not looking, the agent's sound,
// notification and title count; then the screenshots of all three, zh-CN and en, desktop and
// phone. Business "look" (agents ann and ben, added here with the CLI) on run.sh's kefu.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import {
  URL, DESKTOP, PHONE, SITE_ARGS, launch, context, assertNoProblems, problems, waitText, send, shot,
  noHorizontalScroll, agentLogin, routeSite,
} from "./lib.mjs";

const BID = "look";
const PASS = { ann: crypto.randomBytes(12).toString("hex"), ben: crypto.randomBytes(12).toString("hex") };
const HOSTILE = "<img src=x onerror=alert(1)>小店 & \"Co\"";
const WELCOME = "您好，欢迎光临！\n有什么可以帮您？";
const OFFLINE = "客服已下班，请留言，我们明天 9 点回复。";
const RED = "rgb(228, 57, 60)";

// Count the tones the pages start and the notifications they show (headless Chromium has no
// speaker or notification centre to look at).
function hooks() {
  window.__tones = 0;
  window.__notes = [];
  const C = window.AudioContext;
  if (C) {
    const make = C.prototype.createOscillator;
    C.prototype.createOscillator = function () { window.__tones++; return make.call(this); };
  }
  window.Notification = class {
    static permission = "granted";
    static requestPermission() { return Promise.resolve("granted"); }
    constructor(title, opts) { window.__notes.push([title, (opts && opts.body) || ""]); }
  };
}
/** Make `page` behave as a tab in the background (as far as the page's code can tell). */
function hide(page, hidden = true) {
  return page.evaluate((h) => {
    Object.defineProperty(document, "visibilityState", { value: h ? "hidden" : "visible", configurable: true });
    document.dispatchEvent(new Event("visibilitychange"));
  }, hidden);
}

async function image(page, bg, letter) {
  return Buffer.from(await page.evaluate(([bg, letter]) => {
    const c = document.createElement("canvas");
    c.width = 96; c.height = 96;
    const g = c.getContext("2d");
    g.fillStyle = bg; g.fillRect(0, 0, 96, 96);
    g.fillStyle = "#fff"; g.font = "bold 56px sans-serif"; g.textAlign = "center"; g.textBaseline = "middle";
    g.fillText(letter, 48, 52);
    return c.toDataURL("image/png").split(",")[1];
  }, [bg, letter]), "base64");
}

let browser, site, annCtx, ann, avatarUrl;

before(async () => {
  for (const [id, name] of [["ann", "Ann"], ["ben", "Ben"]]) {
    // Ann is the business's admin: the settings dialog is hers.
    const admin = id === "ann" ? ["--admin"] : [];
    const r = spawnSync(process.env.KEFU_BIN, ["agent", "add", "--bid", BID, "--id", id, "--name", name, ...admin, "--password-stdin", "--data-dir", process.env.KEFU_DATA], { input: PASS[id] + "\n", encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
  }
  browser = await launch();
  site = await launch(SITE_ARGS);
});

after(async () => {
  if (browser) await browser.close();
  if (site) await site.close();
});

test("the console's settings dialog sets the business's face; bad values are refused", async () => {
  annCtx = await context(browser, "ann", { viewport: DESKTOP, locale: "zh-CN" },
    /Failed to load resource: the server responded with a status of 400/);
  await annCtx.addInitScript(hooks);
  ann = await annCtx.newPage();
  await agentLogin(ann, BID, "ann", PASS.ann);
  await ann.locator("#settingsBtn").click();
  await ann.locator("#settingsView").waitFor();
  await ann.locator("#sName").fill(HOSTILE);
  await ann.locator("#sColor").fill("#E4393C");
  await ann.locator("#sLogoFile").setInputFiles({ name: "logo.png", mimeType: "image/png", buffer: await image(ann, "#e4393c", "店") });
  await ann.locator("#sLogoPrev img").waitFor();
  await ann.locator("#sAvatarFile").setInputFiles({ name: "ann.png", mimeType: "image/png", buffer: await image(ann, "#13a8a8", "A") });
  await ann.locator("#sAvatarPrev img").waitFor();
  await ann.locator("#sWelcome").fill(WELCOME);
  await ann.locator("#sOffline").fill(OFFLINE);
  await ann.locator("#sSave").click();
  await ann.locator("#sMsg[data-kind=ok]", { hasText: "已保存" }).waitFor();
  // The console shows her new avatar.
  avatarUrl = await ann.locator("#meAvatar img").getAttribute("src");
  assert.match(avatarUrl, /^\/uploads\/[0-9a-f]{64}\.png$/);

  // A colour that is not #rrggbb: refused in the dialog, and by the server if sent anyway.
  await ann.locator("#sColor").fill("red");
  await ann.locator("#sSave").click();
  await ann.locator("#sMsg[data-kind=error]").waitFor();
  const token = await ann.evaluate(() => JSON.parse(localStorage.getItem("kefu.agent.auth")).token);
  const r = await ann.evaluate(async (t) => {
    const r = await fetch("/api/business/settings", { method: "POST", headers: { "Content-Type": "application/json", Authorization: "Bearer " + t }, body: JSON.stringify({ color: "red;background:url(//evil.example/x)" }) });
    return [r.status, (await r.json()).msg];
  }, token);
  assert.equal(r[0], 400);
  assert.match(r[1], /#rrggbb/);
  // Nor may a visitor or a caller without a token (the Rust test kefu_profile covers agents
  // of another business).
  assert.equal((await fetch(`${URL}/api/business/settings`, { method: "POST", body: "{\"name\":\"x\"}" })).status, 401);
  await ann.locator("#sClose").click();
  await ann.locator("#settingsView").waitFor({ state: "hidden" });
  const p = await (await fetch(`${URL}/api/business/profile?bid=${BID}`)).json();
  assert.equal(p.name, HOSTILE);
  assert.equal(p.color, "#e4393c");
});

test("the visitor page wears it: name as text, logo, colour, welcome first, avatars, ticks", async () => {
  const vctx = await context(browser, "look-visitor", { viewport: DESKTOP, locale: "zh-CN" });
  await vctx.addInitScript(hooks);
  const v = await vctx.newPage();
  await v.goto(`${URL}/chat/${BID}`);
  await v.locator("body[data-conn=online]").waitFor();
  await v.locator("#shopAvatar img").waitFor();
  // The hostile name is text: no element, no dialog.
  assert.equal(await v.locator("#shopName").textContent(), HOSTILE);
  assert.equal(await v.locator("#shopName *").count(), 0);
  assert.equal(await v.title(), HOSTILE);
  assert.match(await v.locator("#shopAvatar img").getAttribute("src"), /^\/uploads\/[0-9a-f]{64}\.png$/);
  // The colour is on the whole panel: header, send button, own bubbles.
  const bg = (sel) => v.locator(sel).first().evaluate((n) => getComputedStyle(n).backgroundColor);
  assert.equal(await bg(".chat-header"), RED);
  assert.equal(await bg("#sendBtn"), RED);
  // The welcome comes before anything is written, from the shop.
  const welcome = v.locator("#msgList .msg-welcome");
  await welcome.waitFor();
  assert.equal(await welcome.locator(".msg-text").textContent(), WELCOME);
  assert.equal(await welcome.locator(".msg-name").textContent(), HOSTILE);
  await send(v, "你好，请问包邮吗？");
  await ann.locator("#convList .conv-item", { hasText: "包邮" }).click();
  await waitText(ann, "left", "你好，请问包邮吗");
  assert.equal(await v.locator("#msgList > .msg, #msgList > .msg-event").first().evaluate((n) => n.classList.contains("msg-welcome")), true, "welcome stays first");
  assert.equal(await bg("#msgList .msg-right .bubble"), RED);
  // Ann has it open: read, as blue double ticks with the word as its label.
  const mine = v.locator("#msgList .msg-right", { hasText: "包邮" }).locator(".msg-status");
  await v.locator("#msgList .msg-right", { hasText: "包邮" }).locator(".st-read").waitFor();
  assert.equal(await mine.textContent(), "✓✓");
  assert.equal(await mine.getAttribute("aria-label"), "已读");
  // Ann's answer carries her avatar.
  await send(ann, "包邮的，今天下单明天发货。");
  const reply = v.locator("#msgList .msg-left", { hasText: "包邮的" });
  await reply.waitFor();
  assert.equal(await reply.locator("img.avatar").getAttribute("src"), avatarUrl);
  assert.equal(await reply.locator(".msg-name").textContent(), "Ann");
  // Sent (✓) while Ann is away, delivered (✓✓ grey) once she is back, read once she looks.
  await annCtx.close();
  await v.locator("#banner", { hasText: "Ann 暂时离开了" }).waitFor({ timeout: 2000 });
  await send(v, "还在吗？");
  const row = v.locator("#msgList .msg-right", { hasText: "还在吗" });
  await row.locator(".st-sent").waitFor();
  assert.equal(await row.locator(".msg-status").textContent(), "✓");
  annCtx = await context(browser, "ann2", { viewport: DESKTOP, locale: "zh-CN" });
  await annCtx.addInitScript(hooks);
  ann = await annCtx.newPage();
  await agentLogin(ann, BID, "ann", PASS.ann);
  // Her console reopens nothing (a new context): delivered, not read, until she opens it.
  await row.locator(".st-delivered").waitFor({ timeout: 5000 });
  assert.equal(await row.locator(".msg-status").getAttribute("aria-label"), "已送达");
  await ann.locator("#convList .conv-item", { hasText: "还在吗" }).click();
  await row.locator(".st-read").waitFor();
  // The agent's own messages: read by the visitor who is looking.
  await send(ann, "在的");
  await ann.locator("#msgList .msg-right", { hasText: "在的" }).locator(".st-read").waitFor();
  // The visitor's tab in the background: a reply counts in its title and chimes once; it is
  // delivered, and read when the tab is back.
  await hide(v);
  await send(ann, "还需要别的吗？");
  await v.waitForFunction((name) => document.title === "(1) " + name, HOSTILE);
  await v.waitForFunction(() => window.__tones === 2);
  const bg1 = ann.locator("#msgList .msg-right", { hasText: "还需要别的吗" });
  await bg1.locator(".st-delivered").waitFor();
  await hide(v, false);
  await bg1.locator(".st-read").waitFor();
  await v.waitForFunction((name) => document.title === name, HOSTILE);
  await vctx.close();
  assertNoProblems();
});

test("with nobody online, the business's offline message is shown with the form", async () => {
  await annCtx.close();
  const vctx = await context(browser, "look-offline", { viewport: PHONE, isMobile: true, locale: "en-US" });
  const v = await vctx.newPage();
  await v.goto(`${URL}/chat/${BID}`);
  await v.locator("#leaveForm").waitFor();
  assert.equal(await v.locator("#leaveHint").textContent(), OFFLINE);
  await vctx.close();
  annCtx = await context(browser, "ann3", { viewport: DESKTOP, locale: "zh-CN" });
  await annCtx.addInitScript(hooks);
  ann = await annCtx.newPage();
  await agentLogin(ann, BID, "ann", PASS.ann);
});

test("panel closed: badge, title and a chime for the visitor; sound, notification and title count for the agent", async () => {
  const ctx = await context(site, "look-site", { viewport: DESKTOP, locale: "en-US" });
  await ctx.addInitScript(hooks);
  const page = await ctx.newPage();
  await routeSite(page, `data-bid="${BID}"`, "Shop");
  await page.goto("http://shop.example/item/7");
  // The button takes the business's colour once the chat has loaded.
  await page.locator("button[data-kefu=button]").click();
  const frame = page.frameLocator("div[data-kefu=panel] iframe");
  await frame.locator("body[data-conn=online]").waitFor();
  await page.waitForFunction(() => getComputedStyle(document.querySelector("button[data-kefu=button]")).backgroundColor === "rgb(228, 57, 60)");
  await frame.locator("#input").fill("hello from the widget");
  await frame.locator("#sendBtn").click();
  await frame.locator("#msgList .msg-right .msg-text", { hasText: "hello from the widget" }).waitFor();
  // Ann's console: a sound for the new conversation.
  const item = ann.locator("#convList .conv-item", { hasText: "hello from the widget" });
  await item.waitFor();
  await ann.waitForFunction(() => window.__tones > 0);
  // Panel closed: Ann's reply is delivered, not read; the button's badge and the site's
  // title count it, and the chat chimes (quietly, once).
  await page.evaluate(() => window.KefuWidget.close());
  await item.click();
  await send(ann, "reply while the panel is closed");
  const frameObj = page.frames().find((f) => f.url().includes(`/chat/${BID}`));
  await page.locator("span[data-kefu=badge]", { hasText: "1" }).waitFor();
  await page.waitForFunction(() => document.title === "(1) Shop");
  await frameObj.waitForFunction(() => window.__tones === 2); // two notes, one chime
  const closedRow = ann.locator("#msgList .msg-right", { hasText: "reply while the panel is closed" });
  await closedRow.locator(".st-delivered").waitFor();
  assert.equal(await closedRow.locator(".st-read").count(), 0);
  // Opened: read; badge and title mark go.
  await page.locator("button[data-kefu=button]").click();
  await closedRow.locator(".st-read").waitFor();
  await page.waitForFunction(() => document.title === "Shop");
  await page.locator("span[data-kefu=badge]").waitFor({ state: "hidden" });

  // Ann in another tab (hidden) with notifications on: a visitor message gives a desktop
  // notification, a sound, and the unread count in her tab's title.
  await ann.locator("#notifyBtn").click();
  await ann.locator("#notifyBtn[aria-pressed=true]").waitFor();
  await hide(ann);
  const tones = await ann.evaluate(() => window.__tones);
  await frame.locator("#input").fill("are you there?");
  await frame.locator("#sendBtn").click();
  await ann.waitForFunction(() => window.__notes.some((n) => n[1].includes("are you there?")));
  await ann.waitForFunction((n) => window.__tones > n, tones);
  await ann.waitForFunction(() => /^\(\d+\) /.test(document.title));
  await hide(ann, false);
  await ann.waitForFunction(() => !/^\(\d+\) /.test(document.title));

  // A returning visitor: the next page of the site loads the chat (panel closed), so a reply
  // reaches it without opening anything.
  await page.goto("http://shop.example/item/8");
  await page.waitForFunction(() => !!document.querySelector("div[data-kefu=panel] iframe"));
  const frame2 = page.frameLocator("div[data-kefu=panel] iframe");
  await frame2.locator("body[data-conn=online]").waitFor({ state: "attached" });
  assert.equal(await page.locator("div[data-kefu=panel]").isVisible(), false);
  await send(ann, "still here on the next page?");
  await page.locator("span[data-kefu=badge]", { hasText: "1" }).waitFor();
  await page.waitForFunction(() => document.title === "(1) Shop");
  await ctx.close();
  assertNoProblems();
});

/** Ann closes the conversation open in her console (two clicks: the second confirms), so the
 * next visitor is not queued behind her maximum. */
async function closeOpen() {
  await ann.locator("#closeBtn").click();
  await ann.locator("#closeBtn").click();
  await ann.locator("#stateTag[data-state=closed]").waitFor();
}

test("screenshots: visitor page, widget and console; zh-CN and en; desktop and phone", async () => {
  // The face a real shop would choose (set with the CLI this time), and a conversation worth
  // looking at in each language.
  const r = spawnSync(process.env.KEFU_BIN, ["business", "set", "--bid", BID, "--name", "木子服饰 Muzi", "--welcome", "您好，欢迎来到木子服饰！\nHi, welcome to Muzi!", "--data-dir", process.env.KEFU_DATA], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  for (const lang of ["zh", "en"]) {
    const zh = lang === "zh";
    for (const [size, vp] of [["desktop", DESKTOP], ["phone", PHONE]]) {
      const phone = size === "phone";
      const opts = { viewport: vp, isMobile: phone, hasTouch: phone, locale: zh ? "zh-CN" : "en-US" };
      // Visitor page.
      const vctx = await context(browser, `shot-v-${lang}-${size}`, opts);
      const v = await vctx.newPage();
      await v.goto(`${URL}/chat/${BID}?lang=${lang}`);
      await v.locator("body[data-conn=online]").waitFor();
      await v.locator("#msgList .msg-welcome").waitFor();
      await send(v, zh ? "你好，这件外套有 M 码吗？" : "Hi, do you have this jacket in size M?");
      const item = ann.locator("#convList .conv-item", { hasText: zh ? "M 码" : "size M" }).first();
      await item.waitFor();
      await item.click();
      await send(ann, zh ? "有的，M 码还有 3 件，今天下单明天发货。" : "Yes, three left in M. Order today and it ships tomorrow.");
      await waitText(v, "left", zh ? "M 码还有" : "three left");
      await send(v, zh ? "好的，谢谢！👍" : "Great, thanks! 👍");
      await v.locator("#msgList .msg-right", { hasText: zh ? "谢谢" : "thanks" }).locator(".st-read").waitFor();
      await noHorizontalScroll(v);
      await shot(v, `visitor-${size}-${lang}.png`);
      // The console with that conversation open.
      await waitText(ann, "left", zh ? "谢谢" : "thanks");
      if ((await ann.evaluate(() => window.Kefu.lang)) !== lang) await ann.locator("#langBtn").click();
      const actx = await context(browser, `shot-a-${lang}-${size}`, { ...opts, storageState: await annCtx.storageState() });
      const a = await actx.newPage();
      await a.goto(`${URL}/console`);
      await a.locator("#connPill[data-state=online]").waitFor();
      await waitText(a, "left", zh ? "谢谢" : "thanks");
      await noHorizontalScroll(a);
      await shot(a, `console-${size}-${lang}.png`);
      await actx.close();
      await vctx.close();
      await closeOpen();
      // The widget on a shop's page, panel open.
      const sctx = await context(site, `shot-w-${lang}-${size}`, opts);
      const s = await sctx.newPage();
      await routeSite(s, `data-bid="${BID}" data-lang="${lang}"`, zh ? "示例商城" : "Example Shop");
      await s.goto("http://shop.example/item/42");
      await s.locator("button[data-kefu=button]").click();
      const f = s.frameLocator("div[data-kefu=panel] iframe");
      await f.locator("#msgList .msg-welcome").waitFor();
      await f.locator("#input").fill(zh ? "请问几天能到？" : "How long does delivery take?");
      await f.locator("#sendBtn").click();
      const wItem = ann.locator("#convList .conv-item", { hasText: zh ? "几天能到" : "delivery take" }).first();
      await wItem.waitFor();
      await wItem.click();
      await send(ann, zh ? "江浙沪一般次日达，其他地区 2-3 天。" : "Usually the next day; 2-3 days further away.");
      await f.locator("#msgList .msg-left .msg-text", { hasText: zh ? "次日达" : "next day" }).waitFor();
      await f.locator("#msgList .msg-right .st-read").waitFor();
      await shot(s, `widget-${size}-${lang}.png`);
      await sctx.close();
      await closeOpen();
    }
  }
  // The settings dialog, as the business sees it.
  if ((await ann.evaluate(() => window.Kefu.lang)) !== "zh") await ann.locator("#langBtn").click();
  await ann.locator("#settingsBtn").click();
  await ann.waitForFunction(() => document.getElementById("sName").value === "木子服饰 Muzi");
  await ann.locator("#sLogoPrev img").waitFor();
  await shot(ann, "console-settings-zh.png");
  await ann.locator("#sClose").click();
  assertNoProblems();
});

test("no console error or CSP violation on any page", () => {
  assert.deepEqual(problems, []);
});
