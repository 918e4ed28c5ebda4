/* Shared code of the kefu pages: i18n, DOM helpers (text only), the reconnecting WebSocket,
 * per-conversation seq ordering, time separators, emoji picker and image upload.
 * No framework, no build step. User content is only ever set with textContent. */
"use strict";
(function () {
  var K = {};
  window.Kefu = K;

  /* ---------- i18n ---------- */
  var LANG_KEY = "kefu.lang";
  function pickLang() {
    var saved = null;
    try { saved = localStorage.getItem(LANG_KEY); } catch (e) {}
    if (saved === "zh" || saved === "en") return saved;
    var q = new URLSearchParams(location.search).get("lang");
    if (q === "zh" || q === "en") return q;
    var nav = (navigator.languages && navigator.languages[0]) || navigator.language || "en";
    return /^zh/i.test(nav) ? "zh" : "en";
  }
  K.lang = pickLang();
  K.t = function (key, vars) {
    var dict = window.KEFU_I18N[K.lang] || window.KEFU_I18N.en;
    var s = dict[key];
    if (s === undefined) s = window.KEFU_I18N.en[key];
    if (s === undefined) s = key;
    if (vars) s = s.replace(/\{(\w+)\}/g, function (_, k) { return vars[k] === undefined ? "" : String(vars[k]); });
    return s;
  };
  /* Fill every [data-i18n] (textContent), [data-i18n-ph] (placeholder), [data-i18n-title]. */
  K.applyI18n = function (root) {
    root = root || document;
    document.documentElement.lang = K.lang === "zh" ? "zh-CN" : "en";
    root.querySelectorAll("[data-i18n]").forEach(function (n) { n.textContent = K.t(n.getAttribute("data-i18n")); });
    root.querySelectorAll("[data-i18n-ph]").forEach(function (n) { n.placeholder = K.t(n.getAttribute("data-i18n-ph")); });
    root.querySelectorAll("[data-i18n-title]").forEach(function (n) {
      n.title = K.t(n.getAttribute("data-i18n-title"));
      n.setAttribute("aria-label", n.title);
    });
  };
  K.setLang = function (l) {
    K.lang = l;
    try { localStorage.setItem(LANG_KEY, l); } catch (e) {}
    K.applyI18n();
  };

  /* ---------- DOM ---------- */
  /* el("div.cls.other", {attr: v}, child...) — children are nodes or strings (text nodes). */
  K.el = function (spec, attrs) {
    var parts = spec.split(".");
    var n = document.createElement(parts[0] || "div");
    for (var i = 1; i < parts.length; i++) if (parts[i]) n.classList.add(parts[i]);
    if (attrs) {
      for (var k in attrs) {
        if (!Object.prototype.hasOwnProperty.call(attrs, k) || attrs[k] === undefined || attrs[k] === null) continue;
        if (k === "text") n.textContent = String(attrs[k]);
        else if (k === "on") { for (var ev in attrs.on) n.addEventListener(ev, attrs.on[ev]); }
        else if (k === "dataset") { for (var d in attrs.dataset) n.dataset[d] = attrs.dataset[d]; }
        else if (k === "hidden") n.hidden = !!attrs[k];
        else n.setAttribute(k, String(attrs[k]));
      }
    }
    for (var j = 2; j < arguments.length; j++) {
      var c = arguments[j];
      if (c === null || c === undefined || c === false) continue;
      n.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return n;
  };
  K.$ = function (sel, root) { return (root || document).querySelector(sel); };
  K.clear = function (n) { while (n.firstChild) n.removeChild(n.firstChild); };

  /* Only images we uploaded ourselves are shown: "/uploads/<hex>.<ext>". */
  K.safeUploadUrl = function (u) {
    return typeof u === "string" && /^\/uploads\/[A-Za-z0-9_-]{1,128}(\.[A-Za-z0-9]{1,8})?$/.test(u) ? u : null;
  };

  /* Avatar: a coloured circle with the first character of a name (without one, a letter in
   * the page's language). */
  K.avatar = function (name, role, url) {
    var u = K.safeUploadUrl(url);
    if (u) return K.el("img.avatar.av-img.av-" + role, { src: u, alt: "", "aria-hidden": "true" });
    var ch = (Array.from(String(name || "").trim())[0] || K.t(role === "agent" ? "avatar_agent" : "avatar_visitor")).toUpperCase();
    return K.el("span.avatar.av-" + role, { "aria-hidden": "true", text: ch });
  };

  /* ---------- a business's face (GET /api/business/profile) ----------
   * Everything in it was typed by a business and is shown to strangers: it is checked again
   * here (colour only as #rrggbb, images only as our uploads) and only ever rendered as text. */
  K.cleanColor = function (c) { return typeof c === "string" && /^#[0-9a-fA-F]{6}$/.test(c) ? c.toLowerCase() : ""; };
  K.fetchProfile = function (bid) {
    return fetch("/api/business/profile?bid=" + encodeURIComponent(bid)).then(function (r) {
      if (!r.ok) return null;
      return r.json().then(function (j) {
        var str = function (v, n) { return typeof v === "string" ? v.slice(0, n) : ""; };
        var faces = new Map();
        (Array.isArray(j.agents) ? j.agents : []).slice(0, 200).forEach(function (a) {
          if (a && typeof a.id === "string") faces.set(a.id, { name: str(a.name, 64), avatar: K.safeUploadUrl(a.avatar) });
        });
        var depts = (Array.isArray(j.departments) ? j.departments : []).slice(0, 100).filter(function (d) {
          return d && typeof d.dept_id === "string" && /^[A-Za-z0-9_.@-]{1,64}$/.test(d.dept_id);
        }).map(function (d) { return { dept_id: d.dept_id, name: str(d.name, 40) || d.dept_id }; });
        return {
          name: str(j.name, 40), logo: K.safeUploadUrl(j.logo), color: K.cleanColor(j.color),
          welcome: str(j.welcome, 500), offline: str(j.offline, 500), title: str(j.title, 40),
          position: j.position === "left" ? "left" : "right", leave_prompt: str(j.leave_prompt, 120),
          faces: faces, departments: depts
        };
      });
    }).catch(function () { return null; });
  };
  /* The business's colour on the whole page (CSS variables through the CSSOM: CSP allows it),
   * with a text colour that stays readable on it. "" restores the defaults. */
  K.applyBrand = function (color) {
    var root = document.documentElement.style, c = K.cleanColor(color);
    if (!c) { ["--brand", "--brand-d", "--brand-fg", "--brand-soft"].forEach(function (v) { root.removeProperty(v); }); return; }
    var n = parseInt(c.slice(1), 16), r = n >> 16, g = (n >> 8) & 255, b = n & 255;
    var lum = (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
    var dark = function (x) { return Math.round(x * 0.82); };
    root.setProperty("--brand", c);
    root.setProperty("--brand-d", "rgb(" + dark(r) + "," + dark(g) + "," + dark(b) + ")");
    root.setProperty("--brand-fg", lum > 0.62 ? "#1f2329" : "#fff");
    root.setProperty("--brand-soft", "rgba(" + r + "," + g + "," + b + ",.1)");
  };

  /* ---------- time ---------- */
  function pad(n) { return n < 10 ? "0" + n : String(n); }
  K.hm = function (ms) { var d = new Date(ms); return pad(d.getHours()) + ":" + pad(d.getMinutes()); };
  K.sepLabel = function (ms) {
    var d = new Date(ms), now = new Date();
    var sameDay = d.toDateString() === now.toDateString();
    var y = new Date(now.getTime() - 86400000);
    if (sameDay) return K.hm(ms);
    if (d.toDateString() === y.toDateString()) return (K.lang === "zh" ? "昨天 " : "Yesterday ") + K.hm(ms);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + K.hm(ms);
  };
  K.fullTime = function (ms) {
    if (!ms) return "";
    var d = new Date(ms);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + K.hm(ms) + ":" + pad(d.getSeconds());
  };
  K.SEP_GAP_MS = 5 * 60 * 1000;

  K.newId = function (prefix) {
    var a = new Uint8Array(8);
    crypto.getRandomValues(a);
    return prefix + Array.from(a, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  };

  /* Always the page's own origin, never a URL from the query string: the console logs in by
   * itself with the token kept in localStorage, so a link naming another server would hand
   * that server the token (the CSP's connect-src 'self' refuses it as well). */
  K.wsUrl = function () {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
  };

  /* ---------- reconnecting WebSocket ----------
   * opts: onOpen(), onMessage(obj), onState(state, info)  state: connecting|online|offline
   * Back-off: 0.5 s doubling to 15 s, with ±50 % jitter; reset after a connection stayed up 10 s.
   * Heartbeat: "beat" every 25 s (the server expects it; no reply). */
  K.Socket = function (url, opts) {
    this.url = url; this.opts = opts; this.ws = null; this.attempt = 0;
    this.timer = null; this.beat = null; this.stopped = false; this.upSince = 0;
  };
  K.Socket.prototype.connect = function () {
    var self = this;
    clearTimeout(this.timer);
    if (this.stopped) return;
    this.opts.onState("connecting", { attempt: this.attempt });
    var ws;
    try { ws = new WebSocket(this.url); } catch (e) { this._retry(); return; }
    this.ws = ws;
    ws.onopen = function () {
      if (self.ws !== ws) return;
      self.upSince = Date.now();
      self.opts.onState("online", {});
      clearInterval(self.beat);
      self.beat = setInterval(function () { self.sendRaw("beat"); }, 25000);
      self.opts.onOpen();
    };
    ws.onmessage = function (ev) {
      if (self.ws !== ws || typeof ev.data !== "string") return;
      var m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      if (m && typeof m === "object") self.opts.onMessage(m);
    };
    ws.onclose = function () {
      if (self.ws !== ws) return;
      self.ws = null;
      clearInterval(self.beat);
      if (self.upSince && Date.now() - self.upSince > 10000) self.attempt = 0;
      self.upSince = 0;
      self._retry();
    };
    ws.onerror = function () { /* onclose follows */ };
  };
  K.Socket.prototype._retry = function () {
    var self = this;
    if (this.stopped) return;
    var base = Math.min(15000, 500 * Math.pow(2, this.attempt));
    var delay = Math.round(base * (0.5 + Math.random()));
    this.attempt = Math.min(this.attempt + 1, 10);
    this.opts.onState("offline", { delay: delay });
    this.timer = setTimeout(function () { self.connect(); }, delay);
  };
  /* Retry now (e.g. the browser came back online or the tab became visible). */
  K.Socket.prototype.kick = function () {
    if (!this.ws && !this.stopped) { this.attempt = 0; this.connect(); }
  };
  K.Socket.prototype.isOpen = function () { return !!this.ws && this.ws.readyState === 1; };
  K.Socket.prototype.sendRaw = function (s) { if (this.isOpen()) { this.ws.send(s); return true; } return false; };
  K.Socket.prototype.send = function (obj) { return this.sendRaw(JSON.stringify(obj)); };
  K.Socket.prototype.stop = function () {
    this.stopped = true; clearTimeout(this.timer); clearInterval(this.beat);
    if (this.ws) { var w = this.ws; this.ws = null; w.close(); }
  };

  /* ---------- one conversation's messages, in seq order ----------
   * Rule of docs/kefu-protocol.md §5: drop seq <= last_seq, append last_seq+1, hold a gap for
   * ~1 s then ask for a sync. Older pages ("load more") are merged below. */
  K.Stream = function (convId, hooks) {
    this.convId = convId;
    this.hooks = hooks;            // {changed(stream), sync(convId, lastSeq)}
    this.msgs = new Map();         // seq -> message
    this.lastSeq = 0;              // highest contiguous seq we have (or were told exists)
    this.held = new Map();
    this.gapTimer = null;
    this.hasMore = null;           // null: older pages unknown (newest page not loaded yet)
    this.loaded = false;           // newest page fetched
  };
  K.Stream.prototype.minSeq = function () {
    var m = Infinity;
    this.msgs.forEach(function (_, s) { if (s < m) m = s; });
    return m === Infinity ? 0 : m;
  };
  K.Stream.prototype.sorted = function () {
    return Array.from(this.msgs.values()).sort(function (a, b) { return a.seq - b.seq; });
  };
  K.Stream.prototype.last = function () {
    var s = this.sorted(); return s.length ? s[s.length - 1] : null;
  };
  /* A live push or a sync entry. Returns true if it was new and appended. */
  K.Stream.prototype.push = function (m) {
    if (typeof m.seq !== "number") return false;
    if (m.seq <= this.lastSeq) {
      if (!this.msgs.has(m.seq) && this.loaded) { this.msgs.set(m.seq, m); this.hooks.changed(this); }
      return false;
    }
    if (m.seq === this.lastSeq + 1) {
      this.msgs.set(m.seq, m); this.lastSeq = m.seq;
      while (this.held.has(this.lastSeq + 1)) {
        var n = this.held.get(this.lastSeq + 1);
        this.held.delete(n.seq); this.msgs.set(n.seq, n); this.lastSeq = n.seq;
      }
      this._armGap();
      this.hooks.changed(this);
      return true;
    }
    this.held.set(m.seq, m);
    this._armGap();
    return false;
  };
  K.Stream.prototype._armGap = function () {
    var self = this;
    if (this.held.size === 0) { clearTimeout(this.gapTimer); this.gapTimer = null; return; }
    if (this.gapTimer) return;
    this.gapTimer = setTimeout(function () {
      self.gapTimer = null;
      if (self.held.size) self.hooks.sync(self.convId, self.lastSeq);
    }, 1000);
  };
  /* The newest page (history without before_seq) or an older page. */
  K.Stream.prototype.page = function (msgs, hasMore, newest) {
    var self = this;
    msgs.forEach(function (m) { if (typeof m.seq === "number") self.msgs.set(m.seq, m); });
    if (newest) {
      this.loaded = true;
      var top = msgs.length ? msgs[msgs.length - 1].seq : 0;
      if (top > this.lastSeq) this.lastSeq = top;
      // Held messages now contiguous are released.
      var held = Array.from(this.held.values()).sort(function (a, b) { return a.seq - b.seq; });
      this.held.clear();
      held.forEach(function (m) { if (m.seq <= self.lastSeq) self.msgs.set(m.seq, m); else self.held.set(m.seq, m); });
      while (this.held.has(this.lastSeq + 1)) {
        var n = this.held.get(this.lastSeq + 1); this.held.delete(n.seq); this.msgs.set(n.seq, n); this.lastSeq = n.seq;
      }
      this._armGap();
      if (this.hasMore === null || msgs.length === 0 || msgs[0].seq <= this.minSeq()) this.hasMore = hasMore;
    } else {
      this.hasMore = hasMore;
    }
    this.hooks.changed(this);
  };
  /* A sync reply: the messages after our last_seq, or reload. */
  K.Stream.prototype.syncReply = function (r) {
    if (r.reload) {
      this.msgs.clear(); this.held.clear(); this.lastSeq = 0; this.loaded = false; this.hasMore = null;
      this.hooks.changed(this);
      return "reload";
    }
    var self = this;
    (r.messages || []).forEach(function (m) { self.push(m); });
    if (typeof r.last_seq === "number" && r.last_seq > this.lastSeq && this.held.size === 0 && !(r.messages || []).length) {
      this.lastSeq = r.last_seq;
    }
    return "ok";
  };

  /* Render a stream's messages into `box` with time separators. renderMsg(m) -> element (cached
   * by the caller). Keeps the view pinned to the bottom when it was there, or keeps the visible
   * part still when older messages were prepended. */
  /* Keep a scroll box pinned to its bottom while the reader is there: across re-renders,
   * size changes (keyboard, banners, typing line) and images that finish loading. */
  K.sticky = function (box) {
    if (box._sticky) return;
    box._sticky = true; box._stick = true;
    var pin = function () { if (box._stick) box.scrollTop = box.scrollHeight; };
    box.addEventListener("scroll", function () {
      box._stick = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
    }, { passive: true });
    box.addEventListener("load", pin, true); // <img> loads (capture: load does not bubble)
    if (window.ResizeObserver) {
      var ro = new ResizeObserver(pin);
      ro.observe(box);
      Array.prototype.forEach.call(box.children, function (c) { ro.observe(c); });
    }
  };
  K.toBottom = function (box) { box._stick = true; box.scrollTop = box.scrollHeight; };

  /* Render a stream's messages into `list` (inside the scroll box `box`) with time separators.
   * renderMsg(m) -> element (cached by the caller). Stays at the bottom when the reader was
   * there, or keeps the visible part still when older messages were prepended. */
  K.renderList = function (list, items, renderMsg) {
    var box = list.parentNode;
    K.sticky(box);
    var oldH = box.scrollHeight, oldTop = box.scrollTop;
    var firstKey = list.dataset.firstKey || "";
    var frag = document.createDocumentFragment();
    var prevTs = 0;
    items.forEach(function (m) {
      var ts = m.ts || 0;
      if (ts && (!prevTs || ts - prevTs > K.SEP_GAP_MS)) {
        frag.appendChild(K.el("div.time-sep", { role: "separator" }, K.el("span", { text: K.sepLabel(ts) })));
      }
      if (ts) prevTs = ts;
      frag.appendChild(renderMsg(m));
    });
    K.clear(list);
    list.appendChild(frag);
    var newFirst = items.length ? String(items[0].key || items[0].seq) : "";
    list.dataset.firstKey = newFirst;
    if (box._stick || !firstKey) K.toBottom(box);
    else if (firstKey !== newFirst) box.scrollTop = oldTop + (box.scrollHeight - oldH);
    else box.scrollTop = oldTop;
  };

  /* ---------- emoji picker (plain Unicode, no images) ---------- */
  K.EMOJI = ["😀","😁","😂","🤣","😊","😍","😘","😎","🤔","😅","😭","😡","😱","😴","🙄","😉",
             "👍","👎","👌","🙏","👏","💪","🤝","👋","❤️","💔","🎉","🌹","🔥","✅","❌","❓",
             "☕","🍉","🎁","📦","🚚","💰","📷","⏰"];
  K.emojiPicker = function (onPick) {
    var box = K.el("div.emoji-panel", { role: "listbox", hidden: true });
    K.EMOJI.forEach(function (e) {
      box.appendChild(K.el("button.emoji", { type: "button", text: e, on: { click: function () { onPick(e); } } }));
    });
    return box;
  };
  /* Insert text at the caret of an input/textarea. */
  K.insertAtCaret = function (input, text) {
    var s = input.selectionStart == null ? input.value.length : input.selectionStart;
    var e = input.selectionEnd == null ? s : input.selectionEnd;
    input.value = input.value.slice(0, s) + text + input.value.slice(e);
    input.selectionStart = input.selectionEnd = s + text.length;
    input.focus();
  };

  /* ---------- image upload ---------- */
  K.upload = function (file, token) {
    return fetch("/api/upload", {
      method: "POST",
      headers: { "Authorization": "Bearer " + token },
      body: file
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (!r.ok) {
          var e = new Error(j.msg || ("HTTP " + r.status));
          e.status = r.status;
          e.retryAfter = j.retry_after || parseInt(r.headers.get("Retry-After") || "0", 10) || 0;
          throw e;
        }
        if (!K.safeUploadUrl(j.url)) throw new Error("bad url");
        return j.url;
      });
    });
  };
  /* What to tell the user about a failed upload. */
  K.uploadError = function (e) {
    var t = K.t;
    if (e.status === 413) return t("upload_too_big");
    if (e.status === 429) return t("rate_limited", { n: e.retryAfter || 60 });
    if (e.status === 403) return t("upload_need_conv");
    return t("upload_failed");
  };
  /* First image file of a paste event, if any. */
  K.pastedImage = function (ev) {
    var items = (ev.clipboardData && ev.clipboardData.items) || [];
    for (var i = 0; i < items.length; i++) {
      if (items[i].kind === "file" && /^image\//.test(items[i].type)) return items[i].getAsFile();
    }
    return null;
  };

  /* Message text as a span of text nodes, with http(s) URLs as links that open in a new tab
   * without access to this page (rel="noopener noreferrer"). Built node by node: nothing in
   * the text is ever parsed as markup, and only http: and https: URLs become links. */
  var URL_RE = /\bhttps?:\/\/[^\s<>"'`\u3000-\u303f\uff01-\uff0f\uff1a-\uff20]+/gi;
  K.linkify = function (text) {
    var span = K.el("span.msg-text"), last = 0, m;
    URL_RE.lastIndex = 0;
    while ((m = URL_RE.exec(text))) {
      // Trailing punctuation ends a sentence, not the URL.
      var url = m[0].replace(/[.,;:!?)\]}'"]+$/, "");
      var ok = false;
      try { var u = new URL(url); ok = u.protocol === "http:" || u.protocol === "https:"; } catch (e) { ok = false; }
      if (!ok || !url) continue;
      if (m.index > last) span.appendChild(document.createTextNode(text.slice(last, m.index)));
      span.appendChild(K.el("a.msg-link", { href: url, target: "_blank", rel: "noopener noreferrer", text: url }));
      last = m.index + url.length;
      URL_RE.lastIndex = last;
    }
    if (last < text.length) span.appendChild(document.createTextNode(text.slice(last)));
    return span;
  };

  /* ---------- a message bubble ----------
   * side: "left" | "right"; m: Message; opts: {name, role, status} */
  K.bubble = function (m, side, opts) {
    var body;
    if (m.kind === "image") {
      var u = K.safeUploadUrl(m.url);
      if (u) {
        body = K.el("a.msg-img-link", { href: u, target: "_blank", rel: "noopener noreferrer" },
          K.el("img.msg-img", { src: u, alt: K.t("image_msg"), loading: "lazy" }));
      } else {
        body = K.el("span.msg-text", { text: K.t("image_msg") });
      }
    } else {
      body = K.linkify(m.text == null ? "" : String(m.text));
    }
    var meta = K.el("div.msg-meta");
    if (opts.name) meta.appendChild(K.el("span.msg-name", { text: opts.name }));
    if (m.ts) meta.appendChild(K.el("span.msg-time", { text: K.hm(m.ts) }));
    if (opts.status) meta.appendChild(K.status(opts.statusKind, opts.status));
    var bubbleCls = "div.bubble" + (m.kind === "image" ? ".bubble-img" : "");
    var col = K.el("div.msg-col", null, meta, K.el(bubbleCls, null, body));
    var row = K.el("div.msg.msg-" + side, { dataset: { seq: m.seq == null ? "" : String(m.seq) } });
    if (side === "left") { row.appendChild(K.avatar(opts.name, opts.role, opts.avatar)); row.appendChild(col); }
    else { row.appendChild(col); row.appendChild(K.avatar(opts.name, opts.role, opts.avatar)); }
    return row;
  };
  /* Read state of one's own message as ticks (the word stays for screen readers and as a
   * tooltip): sending ◷, sent ✓ (stored), delivered ✓✓ (the other side was connected since),
   * read ✓✓ in colour (the other side has seen it). A failure stays in words. */
  var TICKS = { sending: "\u25F7", sent: "\u2713", delivered: "\u2713\u2713", read: "\u2713\u2713" };
  K.status = function (kind, text) {
    if (!TICKS[kind]) return K.el("span.msg-status.st-" + kind, { text: text });
    return K.el("span.msg-status.tick.st-" + kind, { title: text, "aria-label": text, role: "img", text: TICKS[kind] });
  };
  /* A server event in the page's language, from its typed fields (`args`); messages stored
   * before events had them (or events this page does not know) show the server's line. */
  K.eventText = function (m) {
    var a = m.args || {};
    switch (a.type) {
      case "assigned": return K.t("ev_assigned", { agent: a.agent_name || a.agent_id || "" });
      case "transferred": return K.t("ev_transferred", { from: a.from_name || a.from_id || "", to: a.to_name || a.to_id || "" });
      case "closed": return a.by === "visitor" ? K.t("ev_closed_visitor") : K.t("ev_closed_agent", { agent: a.agent_name || a.agent_id || "" });
      case "requeued": return K.t("ev_requeued", { agent: a.agent_name || a.agent_id || "" });
      case "transferred_dept": return K.t("ev_transferred_dept", { from: a.from_name || a.from_id || "", dept: a.dept_name || a.dept_id || "" });
      case "agent_disabled": return K.t("ev_agent_disabled", { agent: a.agent_name || a.agent_id || "" });
      default: return m.text || m.event || "";
    }
  };
  K.eventLine = function (m) {
    return K.el("div.msg-event", { dataset: { seq: String(m.seq), event: String(m.event || "") } }, K.el("span", { text: K.eventText(m) }));
  };

  /* ---------- sound + notifications (console) ---------- */
  var audioCtx = null;
  K.beep = function () {
    try {
      audioCtx = audioCtx || new (window.AudioContext || window.webkitAudioContext)();
      var o = audioCtx.createOscillator(), g = audioCtx.createGain();
      o.type = "sine"; o.frequency.value = 880;
      g.gain.setValueAtTime(0.0001, audioCtx.currentTime);
      g.gain.exponentialRampToValueAtTime(0.2, audioCtx.currentTime + 0.02);
      g.gain.exponentialRampToValueAtTime(0.0001, audioCtx.currentTime + 0.25);
      o.connect(g); g.connect(audioCtx.destination);
      o.start(); o.stop(audioCtx.currentTime + 0.3);
    } catch (e) {}
  };
  /* A quiet two-note chime (visitors, for a reply while they are not looking): soft enough
   * for an office, and at most one every 3 s however many messages come. */
  var lastChime = 0;
  K.chime = function () {
    var now = Date.now();
    if (now - lastChime < 3000) return false;
    lastChime = now;
    try {
      audioCtx = audioCtx || new (window.AudioContext || window.webkitAudioContext)();
      [[660, 0], [880, 0.14]].forEach(function (n) {
        var o = audioCtx.createOscillator(), g = audioCtx.createGain(), at = audioCtx.currentTime + n[1];
        o.type = "sine"; o.frequency.value = n[0];
        g.gain.setValueAtTime(0.0001, at);
        g.gain.exponentialRampToValueAtTime(0.06, at + 0.02);
        g.gain.exponentialRampToValueAtTime(0.0001, at + 0.35);
        o.connect(g); g.connect(audioCtx.destination);
        o.start(at); o.stop(at + 0.4);
      });
    } catch (e) {}
    return true;
  };
  K.unlockAudio = function () {
    try { audioCtx = audioCtx || new (window.AudioContext || window.webkitAudioContext)(); if (audioCtx.state === "suspended") audioCtx.resume(); } catch (e) {}
  };
})();
