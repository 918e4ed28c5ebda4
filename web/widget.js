/* kefu embed: <script src="https://HOST/widget.js" data-bid="shop1" async></script>
 * Adds a floating button that opens the visitor page (/chat/<bid>) in an iframe panel.
 * Optional attributes: data-name (shop name shown in the header), data-lang (zh|en),
 * data-department (the department its chats go to: a dept_id of the business),
 * data-position (right|left), data-color (button colour, #rgb/#rrggbb). Without them the
 * business's own look (GET /api/business/profile: the side, colour and window title its admin
 * set in the console) once it has loaded; the title names the button (set as an attribute,
 * never as markup).
 * With the panel closed, a reply shows a badge on the button and "(n)" in the page's title;
 * once a visitor has opened the chat, later pages of the site load it (hidden) at once so
 * replies reach them there too.
 * Runs on the integrator's page: no globals besides window.KefuWidget, styles set through the
 * CSSOM (no <style> element, no inline style attribute markup). */
(function () {
  "use strict";
  var script = document.currentScript || (function () {
    var s = document.querySelectorAll("script[src*='widget.js'][data-bid]");
    return s[s.length - 1];
  })();
  if (!script || window.KefuWidget) return;
  var bid = script.getAttribute("data-bid") || "";
  if (!/^[A-Za-z0-9_.@-]{1,64}$/.test(bid)) { if (window.console) console.error("kefu widget: bad data-bid \"" + bid + "\" (1-64 of A-Z a-z 0-9 _ . @ -)"); return; }
  var origin = new URL(script.src, location.href).origin;
  var fixedSide = /^(left|right)$/.test(script.getAttribute("data-position") || "");
  var side = script.getAttribute("data-position") === "left" ? "left" : "right";
  var fixedColor = /^#[0-9a-fA-F]{3,8}$/.test(script.getAttribute("data-color") || "");
  var color = fixedColor ? script.getAttribute("data-color") : "#1677ff";
  var SEEN_KEY = "kefu.widget." + bid; // in the site's storage: this visitor has chatted here
  function seenGet() { try { return localStorage.getItem(SEEN_KEY) === "1"; } catch (e) { return false; } }
  function seenSet() { try { localStorage.setItem(SEEN_KEY, "1"); } catch (e) {} }
  var q = new URLSearchParams({ embed: "1", page: location.href.slice(0, 1000), ref: document.referrer.slice(0, 1000) });
  if (script.getAttribute("data-name")) q.set("name", script.getAttribute("data-name").slice(0, 40));
  if (/^(zh|en)$/.test(script.getAttribute("data-lang") || "")) q.set("lang", script.getAttribute("data-lang"));
  var dept = script.getAttribute("data-department") || "";
  if (/^[A-Za-z0-9_.@-]{1,64}$/.test(dept)) q.set("dept", dept);
  else if (dept && window.console) console.error("kefu widget: bad data-department \"" + dept + "\" (1-64 of A-Z a-z 0-9 _ . @ -)");
  var src = origin + "/chat/" + encodeURIComponent(bid) + "?" + q.toString();

  function css(el, o) { for (var k in o) el.style.setProperty(k, o[k]); return el; }

  var btn = document.createElement("button");
  btn.type = "button";
  btn.setAttribute("aria-label", "Chat / 在线客服");
  btn.setAttribute("data-kefu", "button");
  btn.textContent = "\uD83D\uDCAC";
  var pos = {};
  pos[side] = "20px";
  css(btn, Object.assign({
    position: "fixed", bottom: "20px", "z-index": "2147483646", width: "56px", height: "56px",
    "border-radius": "50%", border: "0", background: color, color: "#fff", "font-size": "26px",
    "line-height": "56px", "text-align": "center", cursor: "pointer", padding: "0",
    "box-shadow": "0 4px 16px rgba(0,0,0,.25)"
  }, pos));

  var badge = document.createElement("span");
  badge.setAttribute("data-kefu", "badge");
  css(badge, {
    position: "absolute", top: "-2px", right: "-2px", "min-width": "18px", height: "18px", "border-radius": "9px",
    background: "#f5222d", color: "#fff", "font-size": "11px", "line-height": "18px", display: "none",
    "font-family": "sans-serif", padding: "0 4px"
  });
  btn.appendChild(badge);

  /* Move the button and the panel to `s` (the business's side, when the site set none). */
  function place(s) {
    if (s === side) return;
    side = s;
    var o = {}; o[s] = "20px"; o[s === "right" ? "left" : "right"] = "auto";
    css(btn, o);
    if (!small()) css(panel, o);
  }
  /* The business's look, fetched from kefu (public, CORS); the site's own attributes win. */
  function look() {
    if (!window.fetch) return;
    fetch(origin + "/api/business/profile?bid=" + encodeURIComponent(bid), { credentials: "omit" }).then(function (r) {
      return r.ok ? r.json() : null;
    }).then(function (p) {
      if (!p || typeof p !== "object") return;
      if (!fixedSide && (p.position === "left" || p.position === "right")) place(p.position);
      if (!fixedColor && typeof p.color === "string" && /^#[0-9a-f]{6}$/.test(p.color)) btn.style.setProperty("background", p.color);
      var title = typeof p.title === "string" ? p.title.slice(0, 40) : "";
      if (title) { btn.setAttribute("aria-label", title); btn.setAttribute("title", title); if (frame) frame.title = title; }
    }).catch(function () {});
  }

  var panel = document.createElement("div");
  panel.setAttribute("data-kefu", "panel");
  var ppos = {};
  ppos[side] = "20px";
  css(panel, Object.assign({
    position: "fixed", bottom: "88px", "z-index": "2147483647", width: "380px", height: "600px",
    "max-width": "calc(100vw - 24px)", "max-height": "calc(100vh - 110px)", "border-radius": "12px",
    overflow: "hidden", "box-shadow": "0 8px 32px rgba(0,0,0,.25)", background: "#fff", display: "none"
  }, ppos));
  var frame = null;

  function small() { return window.innerWidth < 520; }
  function layout() {
    if (small()) css(panel, { left: "0", right: "0", top: "0", bottom: "0", width: "100vw", height: "100%", "max-width": "100vw", "max-height": "100%", "border-radius": "0" });
    else {
      var o = { top: "auto", bottom: "88px", width: "380px", height: "600px", "max-width": "calc(100vw - 24px)", "max-height": "calc(100vh - 110px)", "border-radius": "12px" };
      o[side === "right" ? "left" : "right"] = "auto"; o[side] = "20px";
      css(panel, o);
    }
  }
  /* Tell the chat page whether its panel is open: inside the iframe the page stays
   * "visible" while the panel is hidden, and only what is on screen counts as read. */
  var loaded = false; // before its load, the frame's window is not kefu's origin yet
  function tell() {
    if (frame && loaded && frame.contentWindow) {
      try { frame.contentWindow.postMessage({ kefu: "panel", open: panel.style.display !== "none" }, origin); } catch (e) {}
    }
  }
  function load() {
    if (frame) return;
    frame = document.createElement("iframe");
    frame.addEventListener("load", function () { loaded = true; tell(); });
    frame.src = src;
    frame.title = btn.getAttribute("title") || "Chat";
    frame.setAttribute("allow", "clipboard-read; clipboard-write; autoplay");
    css(frame, { border: "0", width: "100%", height: "100%", display: "block" });
    panel.appendChild(frame);
  }
  function open() {
    load();
    seenSet();
    layout();
    panel.style.display = "block";
    if (small()) btn.style.display = "none";
    badge.style.display = "none";
    setTitle(0);
    tell();
  }
  function close() { panel.style.display = "none"; btn.style.display = "block"; tell(); }

  /* "(n) " before the site's title while replies wait; the site's own title changes are kept. */
  var MARK = /^\(\d+\+?\) /;
  function setTitle(n) {
    var base = document.title.replace(MARK, "");
    var want = n > 0 ? "(" + (n > 99 ? "99+" : n) + ") " + base : base;
    if (document.title !== want) document.title = want;
  }
  function toggle() { if (panel.style.display === "none") open(); else close(); }

  btn.addEventListener("click", toggle);
  window.addEventListener("resize", function () { if (panel.style.display !== "none") layout(); });
  window.addEventListener("message", function (e) {
    if (e.origin !== origin || !frame || e.source !== frame.contentWindow || !e.data || typeof e.data !== "object") return;
    if (e.data.kefu === "close") close();
    if (e.data.kefu === "error" && window.console) console.error("kefu widget: " + String(e.data.msg || "error") + " (data-bid=\"" + bid + "\")");
    if (e.data.kefu === "unread") {
      var n = e.data.n | 0, shut = panel.style.display === "none";
      badge.textContent = n > 99 ? "99+" : String(n);
      badge.style.display = n > 0 && shut ? "block" : "none";
      setTitle(shut ? n : 0);
      var c = typeof e.data.color === "string" && /^#[0-9a-f]{6}$/.test(e.data.color) ? e.data.color : "";
      if (c && !fixedColor) btn.style.setProperty("background", c);
    }
  });

  function mount() {
    document.body.appendChild(panel); document.body.appendChild(btn);
    look();
    if (seenGet()) load(); // a returning visitor: replies reach it with the panel closed
  }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
  window.KefuWidget = { open: open, close: close, toggle: toggle, bid: bid };
})();
