/* Console: the business's history (docs/web.md "History and visitor profiles"). The
 * 历史会话 / History dialog lists the closed conversations page by page
 * (GET /api/conversations/closed), searches messages by text, visitor, agent and dates
 * (GET /api/search), opens any conversation read-only (GET /api/history, its notes from
 * GET /api/notes) and shows a visitor's profile: earlier conversations and visits
 * (GET /api/visitor/profile), also from the open conversation's header (访客档案). All with
 * the agent's token; everything the server returns is rendered as text. console.js says
 * what it drew with "kefu:pane" and "kefu:list". */
"use strict";
(function () {
  var K = window.Kefu, $ = function (id) { return document.getElementById(id); };
  var I = window.KEFU_I18N;
  Object.assign(I.zh, {
    ar_btn: "历史会话", ar_closed: "已关闭会话", ar_search: "搜索", ar_q: "关键词（必填）",
    ar_visitor: "访客 ID（可选）", ar_agent: "客服账号（可选）", ar_from: "从", ar_to: "到",
    ar_more: "更多", ar_none: "没有找到", ar_loading: "加载中…", ar_err: "出错了：", ar_back: "返回",
    ar_close: "关闭", ar_profile: "访客档案", ar_readonly: "只读：这里不能回复", ar_older: "更早的消息",
    ar_msgs: "{n} 条消息", ar_closed_at: "关闭于 {t}", ar_opened_at: "开始于 {t}", ar_no_agent: "未接入",
    ar_notes: "内部备注", ar_convs: "历次会话", ar_visits: "访问记录", ar_verified: "已验证身份",
    ar_last_seen: "最近访问", ar_all_closed: "查看全部已关闭会话…", ar_state_queued: "排队中",
    ar_state_active: "进行中", ar_state_closed: "已关闭"
  });
  Object.assign(I.en, {
    ar_btn: "History", ar_closed: "Closed conversations", ar_search: "Search", ar_q: "Words (required)",
    ar_visitor: "Visitor id (optional)", ar_agent: "Agent id (optional)", ar_from: "From", ar_to: "To",
    ar_more: "More", ar_none: "Nothing found", ar_loading: "Loading…", ar_err: "Error: ", ar_back: "Back",
    ar_close: "Close", ar_profile: "Visitor profile", ar_readonly: "Read-only: no replies from here", ar_older: "Older messages",
    ar_msgs: "{n} messages", ar_closed_at: "closed {t}", ar_opened_at: "opened {t}", ar_no_agent: "no agent",
    ar_notes: "Internal notes", ar_convs: "Conversations", ar_visits: "Visits", ar_verified: "Verified identity",
    ar_last_seen: "Last seen", ar_all_closed: "All closed conversations…", ar_state_queued: "Queued",
    ar_state_active: "Active", ar_state_closed: "Closed"
  });
  var t = K.t;
  var DAY = 86400000, PAGE = 20, MAX_HIT_PAGES = 20;

  function C() { return window.kefuConsole ? window.kefuConsole() : null; }
  function get(path) {
    var s = C();
    if (!s || !s.auth) return Promise.reject(new Error("not logged in"));
    return fetch(path, { headers: { Authorization: "Bearer " + s.auth.token } }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (!r.ok) { var e = new Error(j.msg || ("HTTP " + r.status)); e.status = r.status; throw e; }
        return j;
      });
    });
  }
  function visitorLabel(id, name) {
    if (name) return name;
    return t("anonymous", { id: String(id || "").replace(/^v_/, "").slice(0, 6) });
  }
  function label(key, el) { return K.el(el || "span", { "data-i18n": key, text: t(key) }); }

  /* ---------- the dialog and its three panes ---------- */
  var view = null, stack = [], pane = "list";
  var list = { mode: "closed", cursor: null, q: null, busy: false, seq: 0 };
  var conv = { id: null, msgs: [], hasMore: false, hit: null, busy: false, row: null };

  function build() {
    var form = K.el("form.ar-form", { id: "arForm", novalidate: "" },
      K.el("input", { id: "arQ", maxlength: "100", required: "", autocomplete: "off", "data-i18n-ph": "ar_q", placeholder: t("ar_q") }),
      K.el("input", { id: "arVisitor", maxlength: "64", autocomplete: "off", "data-i18n-ph": "ar_visitor", placeholder: t("ar_visitor") }),
      K.el("input", { id: "arAgent", maxlength: "64", autocomplete: "off", "data-i18n-ph": "ar_agent", placeholder: t("ar_agent") }),
      K.el("label.ar-date", null, label("ar_from"), K.el("input", { id: "arFrom", type: "date" })),
      K.el("label.ar-date", null, label("ar_to"), K.el("input", { id: "arTo", type: "date" })),
      K.el("button.send-btn", { type: "submit", id: "arGo", "data-i18n": "ar_search", text: t("ar_search") }),
      K.el("button.btn", { type: "button", id: "arClosedBtn", "data-i18n": "ar_closed", text: t("ar_closed"), on: { click: function () { $("arForm").reset(); loadList(false); } } }));
    form.addEventListener("submit", function (e) { e.preventDefault(); loadList(false); });
    var listPane = K.el("section.ar-pane", { id: "arListPane" }, form,
      K.el("div.ar-msg", { id: "arListMsg", role: "status" }),
      K.el("div.ar-list", { id: "arList", "aria-live": "polite" }),
      K.el("button.more-btn", { type: "button", id: "arMore", hidden: true, "data-i18n": "ar_more", text: t("ar_more"), on: { click: function () { loadList(true); } } }));
    var convPane = K.el("section.ar-pane", { id: "arConvPane", hidden: true },
      K.el("div.ar-bar", null, K.el("h3", { id: "arConvTitle" }),
        K.el("button.btn", { type: "button", id: "arConvProfile", "data-i18n": "ar_profile", text: t("ar_profile"), on: { click: function () { if (conv.row) openProfile(conv.row.visitor_id, true); } } })),
      K.el("div.ar-meta", { id: "arConvMeta" }),
      K.el("div.ar-readonly", { "data-i18n": "ar_readonly", text: t("ar_readonly") }),
      K.el("div.ar-msgs-box.chat-body", { id: "arMsgsBox" },
        K.el("div.more-row", null, K.el("button.more-btn", { type: "button", id: "arOlder", hidden: true, "data-i18n": "ar_older", text: t("ar_older"), on: { click: function () { loadOlder(); } } })),
        K.el("div.msg-list", { id: "arMsgs" })),
      K.el("div.ar-msg", { id: "arConvMsg", role: "status" }),
      K.el("h3", { id: "arNotesTitle", hidden: true, "data-i18n": "ar_notes", text: t("ar_notes") }),
      K.el("div.note-list", { id: "arNotes" }));
    var profilePane = K.el("section.ar-pane", { id: "arProfilePane", hidden: true },
      K.el("div.ar-bar", null, K.el("h3", { id: "arProfileName" }), K.el("span.a-tag.a-on", { id: "arVerified", hidden: true, "data-i18n": "ar_verified", text: t("ar_verified") })),
      K.el("div.ar-msg", { id: "arProfileMsg", role: "status" }),
      K.el("dl.ar-dl", { id: "arProfileInfo" }),
      label("ar_convs", "h3"), K.el("div.ar-list", { id: "arProfileConvs" }),
      label("ar_visits", "h3"), K.el("div.ar-list", { id: "arProfileVisits" }));
    var card = K.el("div.settings-card.ar-card", { role: "dialog", "aria-labelledby": "arTitle" },
      K.el("div.ar-head", null, K.el("h2", { id: "arTitle", "data-i18n": "ar_btn", text: t("ar_btn") }),
        K.el("span.ar-grow"),
        K.el("button.btn", { type: "button", id: "arBack", hidden: true, "data-i18n": "ar_back", text: t("ar_back"), on: { click: back } }),
        K.el("button.btn", { type: "button", id: "arClose", "data-i18n": "ar_close", text: t("ar_close"), on: { click: hide } })),
      listPane, convPane, profilePane);
    view = K.el("div.settings-wrap", { id: "archiveView", hidden: true }, card);
    view.addEventListener("click", function (e) { if (e.target === view) hide(); });
    document.body.appendChild(view);
  }
  function showPane(name) {
    pane = name;
    $("arListPane").hidden = name !== "list";
    $("arConvPane").hidden = name !== "conv";
    $("arProfilePane").hidden = name !== "profile";
    $("arBack").hidden = !stack.length;
  }
  /* Go to a pane, remembering where we came from (the back button). */
  function go(name) { stack.push({ pane: pane, conv: conv.row, hit: conv.hit, visitor: profileOf }); showPane(name); }
  function back() {
    var b = stack.pop();
    if (!b) return;
    showPane(b.pane);
    if (b.pane === "conv" && b.conv && (!conv.row || b.conv.conv_id !== conv.row.conv_id)) loadConv(b.conv, b.hit);
    if (b.pane === "profile" && b.visitor && b.visitor !== profileOf) loadProfile(b.visitor);
  }
  function open(start) {
    if (!view) build();
    K.applyI18n(view);
    view.hidden = false;
    stack = [];
    start();
  }
  function hide() { if (view) view.hidden = true; }
  function say(id, text, kind) { var m = $(id); m.textContent = text || ""; m.dataset.kind = kind || ""; }

  /* ---------- list: closed conversations or search hits ---------- */
  function dayStart(v) {
    var p = /^(\d{4})-(\d{2})-(\d{2})$/.exec(v || "");
    return p ? new Date(+p[1], +p[2] - 1, +p[3]).getTime() : null;
  }
  function searchQuery() {
    var q = $("arQ").value.trim(), p = [];
    var add = function (k, v) { if (v !== null && v !== "") p.push(k + "=" + encodeURIComponent(v)); };
    add("q", q);
    add("visitor_id", $("arVisitor").value.trim());
    add("agent_id", $("arAgent").value.trim());
    var from = dayStart($("arFrom").value), to = dayStart($("arTo").value);
    add("from", from);
    add("to", to === null ? null : to + DAY); // the end day is included
    return p.join("&");
  }
  /* A new list or search replaces whatever was loading; "more" waits for the page before. */
  function loadList(more) {
    if (more && list.busy) return;
    if (!more) {
      var searching = !!($("arQ").value.trim() || $("arVisitor").value.trim() || $("arAgent").value.trim() || $("arFrom").value || $("arTo").value);
      if (searching && !$("arQ").value.trim()) { $("arQ").reportValidity(); return; }
      list.mode = searching ? "search" : "closed";
      list.q = searching ? searchQuery() : "";
      list.cursor = null;
      K.clear($("arList"));
      $("arMore").hidden = true;
    }
    var path = list.mode === "search" ? "/api/search?" + list.q + "&limit=" + PAGE : "/api/conversations/closed?limit=" + PAGE;
    if (more && list.cursor) path += "&before=" + encodeURIComponent(list.cursor);
    var seq = ++list.seq, mode = list.mode;
    list.busy = true;
    say("arListMsg", t("ar_loading"));
    get(path).then(function (j) {
      if (seq !== list.seq) return;
      list.busy = false;
      say("arListMsg", "");
      var box = $("arList");
      (j.items || []).forEach(function (it) { box.appendChild(mode === "search" ? hitRow(it) : convRow(it)); });
      if (!box.firstChild) box.appendChild(K.el("div.muted.ar-none", { text: t("ar_none") }));
      list.cursor = j.next || null;
      $("arMore").hidden = !list.cursor;
    }).catch(function (e) {
      if (seq !== list.seq) return;
      list.busy = false;
      say("arListMsg", t("ar_err") + e.message, "error");
    });
  }
  function convRow(c) {
    var who = visitorLabel(c.visitor_id, c.visitor_name) + " · " + (c.agent_id || t("ar_no_agent"));
    var when = c.closed_at ? t("ar_closed_at", { t: K.fullTime(c.closed_at) }) : t("ar_opened_at", { t: K.fullTime(c.created_at) });
    var meta = [when, t("ar_msgs", { n: c.messages }), "#" + c.conv_id];
    if (c.state && c.state !== "closed") meta.unshift(t("ar_state_" + c.state));
    return K.el("button.ar-row", { type: "button", dataset: { conv: String(c.conv_id) }, on: { click: function () { go("conv"); loadConv(c, null); } } },
      K.el("span.ar-who", { text: who }), K.el("span.ar-meta", { text: meta.join(" · ") }));
  }
  function hitRow(h) {
    var who = h.from === "agent" ? (h.sender_name || h.sender_id) : visitorLabel(h.visitor_id, h.sender_name);
    var row = { conv_id: h.conv_id, visitor_id: h.visitor_id, visitor_name: h.from === "visitor" ? h.sender_name : "", agent_id: h.agent_id };
    return K.el("button.ar-row.ar-hit-row", { type: "button", dataset: { conv: String(h.conv_id), seq: String(h.seq) }, on: { click: function () { go("conv"); loadConv(row, h.seq); } } },
      K.el("span.ar-meta", { text: K.fullTime(h.ts) + " · #" + h.conv_id + " · " + who }),
      K.el("span.ar-text", { text: h.text }));
  }

  /* ---------- one conversation, read-only ---------- */
  function loadConv(row, hitSeq) {
    conv = { id: row.conv_id, msgs: [], hasMore: false, hit: hitSeq, busy: false, row: row };
    $("arConvTitle").textContent = "#" + row.conv_id + " · " + visitorLabel(row.visitor_id, row.visitor_name);
    var meta = [row.agent_id || t("ar_no_agent")];
    if (row.closed_at) meta.push(t("ar_closed_at", { t: K.fullTime(row.closed_at) }));
    $("arConvMeta").textContent = meta.join(" · ");
    $("arConvProfile").hidden = !row.visitor_id;
    K.clear($("arMsgs")); delete $("arMsgs").dataset.firstKey;
    K.clear($("arNotes")); $("arNotesTitle").hidden = true;
    $("arOlder").hidden = true;
    say("arConvMsg", t("ar_loading"));
    var id = row.conv_id, pages = 0;
    // A search hit may be far back: page back until it is in view (bounded).
    var step = function () {
      return page(id).then(function () {
        pages++;
        if (conv.id === id && hitSeq && conv.hasMore && conv.msgs.length && conv.msgs[0].seq > hitSeq && pages < MAX_HIT_PAGES) return step();
      });
    };
    step().then(function () {
      if (conv.id !== id) return;
      say("arConvMsg", "");
      render();
      var hit = hitSeq && $("arMsgs").querySelector('[data-seq="' + hitSeq + '"]');
      if (hit) { hit.classList.add("ar-hit"); $("arMsgsBox")._stick = false; hit.scrollIntoView({ block: "center" }); }
    }).catch(function (e) { if (conv.id === id) say("arConvMsg", t("ar_err") + e.message, "error"); });
    get("/api/notes?conv_id=" + id).then(function (j) {
      if (conv.id !== id) return;
      var box = $("arNotes");
      (j.notes || []).forEach(function (n) {
        box.appendChild(K.el("div.note", { dataset: { id: String(n.id) } },
          K.el("div.note-meta", { text: (n.agent_name || n.agent_id) + " · " + K.fullTime(n.ts) }),
          K.el("div.note-text", { text: n.text })));
      });
      $("arNotesTitle").hidden = !box.firstChild;
    }).catch(function () {});
  }
  /* The page before the oldest message we have (the newest page first), prepended. */
  function page(id) {
    var p = "/api/history?conv_id=" + id + "&limit=50";
    if (conv.msgs.length) p += "&before_seq=" + conv.msgs[0].seq;
    conv.busy = true;
    return get(p).then(function (j) {
      conv.busy = false;
      if (conv.id !== id) return;
      var have = new Set(conv.msgs.map(function (m) { return m.seq; }));
      conv.msgs = (j.messages || []).filter(function (m) { return !have.has(m.seq); }).concat(conv.msgs);
      conv.hasMore = !!j.has_more;
    }, function (e) { conv.busy = false; throw e; });
  }
  function loadOlder() {
    if (conv.busy || conv.id == null) return;
    var id = conv.id;
    page(id).then(function () { if (conv.id === id) render(); })
      .catch(function (e) { say("arConvMsg", t("ar_err") + e.message, "error"); });
  }
  function render() {
    var r = conv.row;
    var items = conv.msgs.map(function (m) { m.key = conv.id + ":" + m.seq; return m; });
    K.renderList($("arMsgs"), items, function (m) {
      if (m.kind === "event") return K.eventLine(m);
      if (m.from === "agent") return K.bubble(m, "right", { name: m.sender_name || m.sender_id || "", role: "agent" });
      return K.bubble(m, "left", { name: m.sender_name || visitorLabel(r.visitor_id, r.visitor_name), role: "visitor" });
    });
    $("arOlder").hidden = !conv.hasMore;
  }

  /* ---------- a visitor's profile ---------- */
  var profileOf = null;
  function openProfile(vid, push) {
    if (push) go("profile"); else showPane("profile");
    loadProfile(vid);
  }
  function loadProfile(vid) {
    profileOf = vid;
    $("arProfileName").textContent = visitorLabel(vid, "");
    $("arVerified").hidden = true;
    ["arProfileInfo", "arProfileConvs", "arProfileVisits"].forEach(function (id) { K.clear($(id)); });
    say("arProfileMsg", t("ar_loading"));
    get("/api/visitor/profile?visitor_id=" + encodeURIComponent(vid)).then(function (p) {
      if (profileOf !== vid) return;
      say("arProfileMsg", "");
      $("arProfileName").textContent = visitorLabel(p.visitor_id, p.name);
      $("arVerified").hidden = !p.verified;
      var dl = $("arProfileInfo");
      [["info_id", p.visitor_id], ["info_name", p.name || "—"], ["info_ip", p.ip || "—"], ["info_page", p.page_url || "—"],
        ["info_referrer", p.referrer || "—"], ["info_ua", p.user_agent || "—"], ["info_first_seen", K.fullTime(p.first_seen) || "—"],
        ["ar_last_seen", K.fullTime(p.last_seen) || "—"]].forEach(function (x) {
        dl.appendChild(K.el("dt", { "data-i18n": x[0], text: t(x[0]) }));
        dl.appendChild(K.el("dd", { dataset: { field: x[0] }, text: String(x[1]) }));
      });
      var convs = $("arProfileConvs");
      (p.conversations || []).forEach(function (c) { convs.appendChild(convRow(c)); });
      if (!convs.firstChild) convs.appendChild(K.el("div.muted", { text: t("ar_none") }));
      var visits = $("arProfileVisits");
      (p.visits || []).forEach(function (v) {
        visits.appendChild(K.el("div.ar-visit", null, K.el("span.ar-meta", { text: K.fullTime(v.ts) }),
          K.el("span.ar-text", { text: [v.page_url || "—", v.referrer].filter(Boolean).join(" ← ") })));
      });
      if (!visits.firstChild) visits.appendChild(K.el("div.muted", { text: t("ar_none") }));
    }).catch(function (e) {
      if (profileOf === vid) say("arProfileMsg", e.status === 404 ? t("ar_none") : t("ar_err") + e.message, "error");
    });
  }

  /* ---------- hooks into the console ---------- */
  function selected() {
    var s = C();
    return s && s.selected != null ? s.convs.get(s.selected) : null;
  }
  document.addEventListener("kefu:pane", function () {
    var b = $("profileBtn"), r = selected();
    if (b) b.hidden = !(r && r.visitor && r.visitor.visitor_id);
  });
  /* The closed tab shows what this console saw; the whole list is in the dialog. */
  document.addEventListener("kefu:list", function () {
    var s = C();
    if (!s || s.tab !== "closed" || $("allClosedBtn")) return;
    $("convList").appendChild(K.el("button.more-btn.ar-all", { type: "button", id: "allClosedBtn", "data-i18n": "ar_all_closed", text: t("ar_all_closed"),
      on: { click: function () { open(function () { showPane("list"); $("arForm").reset(); loadList(false); }); } } }));
  });

  function init() {
    var top = $("settingsBtn");
    if (!top || $("historyBtn")) return;
    top.parentNode.insertBefore(K.el("button.hbtn", { type: "button", id: "historyBtn", "data-i18n": "ar_btn", text: t("ar_btn"),
      on: { click: function () { open(function () { showPane("list"); loadList(false); }); } } }), top);
    $("stateTag").parentNode.insertBefore(K.el("button.btn", { type: "button", id: "profileBtn", hidden: true, "data-i18n": "ar_profile", text: t("ar_profile"),
      on: { click: function () { var r = selected(); if (r && r.visitor) open(function () { openProfile(r.visitor.visitor_id, false); }); } } }), $("stateTag").nextSibling);
    document.addEventListener("keydown", function (e) { if (e.key === "Escape" && view && !view.hidden) hide(); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
