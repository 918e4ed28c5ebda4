/* Console: the agents' desk. Canned replies (type "/" and a shortcut in the composer; a
 * dialog to manage them), internal notes on the open conversation (agents only: they never
 * reach the visitor), visitors' ratings (live), and the business's working hours.
 * HTTP with the agent's token, docs/kefu-protocol.md "Desk". console.js tells us what
 * happens with three events: "kefu:push" (a frame it does not handle itself), "kefu:list"
 * (the conversation list was drawn) and "kefu:pane" (the open conversation was drawn). */
"use strict";
(function () {
  var K = window.Kefu, $ = function (id) { return document.getElementById(id); };
  var I = window.KEFU_I18N;
  Object.assign(I.zh, {
    desk_canned: "快捷回复", desk_canned_title: "快捷回复", desk_scope_agent: "我的", desk_scope_business: "全员",
    desk_shortcut: "快捷词（输入 / 加快捷词）", desk_text: "内容（可用 {visitor_name}、{agent_name}）", desk_add: "添加",
    desk_delete: "删除", desk_none: "还没有快捷回复", desk_close: "关闭", desk_visitor: "访客",
    desk_notes: "内部备注（访客不可见）", desk_note_ph: "写一条备注…", desk_note_add: "添加备注",
    desk_rating: "访客评价", desk_hours: "工作时间", desk_tz: "时区（如 Asia/Shanghai）",
    desk_hours_hint: "每天的时段，如 09:00-12:00, 13:00-18:00；留空为休息。", desk_hours_save: "保存工作时间",
    desk_hours_clear: "全天开放", desk_open: "当前：工作时间内", desk_closed: "当前：非工作时间",
    desk_always: "未设置：全天开放", desk_saved: "已保存", info_contact: "联系方式",
    days: "一,二,三,四,五,六,日"
  });
  Object.assign(I.en, {
    desk_canned: "Canned", desk_canned_title: "Canned replies", desk_scope_agent: "Mine", desk_scope_business: "Everyone",
    desk_shortcut: "Shortcut (type / and it)", desk_text: "Text ({visitor_name}, {agent_name} allowed)", desk_add: "Add",
    desk_delete: "Delete", desk_none: "No canned replies yet", desk_close: "Close", desk_visitor: "visitor",
    desk_notes: "Internal notes (the visitor never sees them)", desk_note_ph: "Write a note…", desk_note_add: "Add note",
    desk_rating: "Rating", desk_hours: "Working hours", desk_tz: "Time zone (e.g. Asia/Shanghai)",
    desk_hours_hint: "Spans per day, e.g. 09:00-12:00, 13:00-18:00; empty: closed.", desk_hours_save: "Save hours",
    desk_hours_clear: "Always open", desk_open: "Now: within working hours", desk_closed: "Now: outside working hours",
    desk_always: "Not set: always open", desk_saved: "Saved", info_contact: "Contact",
    days: "Mon,Tue,Wed,Thu,Fri,Sat,Sun"
  });
  var t = K.t;

  function S() { return window.kefuConsole ? window.kefuConsole() : null; }
  function call(method, path, body) {
    var s = S();
    if (!s || !s.auth) return Promise.reject(new Error("not logged in"));
    var init = { method: method, headers: { Authorization: "Bearer " + s.auth.token } };
    if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    return fetch(path, init).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (!r.ok) throw new Error(j.msg || ("HTTP " + r.status));
        return j;
      });
    });
  }
  function stars(n) { n = Math.max(0, Math.min(5, n | 0)); return "★★★★★".slice(0, n) + "☆☆☆☆☆".slice(0, 5 - n); }

  /* ---------- canned replies ---------- */
  var canned = [], cannedAt = 0, pick = { box: null, items: [], at: 0 };

  function loadCanned() {
    return call("GET", "/api/canned").then(function (j) { canned = j.canned || []; cannedAt = Date.now(); renderManager(); });
  }
  /* The two variables, filled from the open conversation (as text: nothing is HTML here). */
  function expand(text) {
    var s = S(), r = s && s.selected != null ? s.convs.get(s.selected) : null;
    var vn = (r && r.visitor && r.visitor.name) || t("desk_visitor");
    var an = (s && s.auth && (s.auth.name || s.auth.agent_id)) || "";
    return String(text).replace(/\{visitor_name\}/g, vn).replace(/\{agent_name\}/g, an);
  }
  function hidePick() { if (pick.box) pick.box.hidden = true; pick.items = []; }
  function showPick(q) {
    var input = $("input");
    if (!pick.box) {
      pick.box = K.el("div.canned-pick", { role: "listbox", id: "cannedPick", hidden: true });
      $("composer").parentNode.insertBefore(pick.box, $("composer"));
    }
    pick.items = canned.filter(function (c) { return c.shortcut.toLowerCase().indexOf(q.toLowerCase()) === 0; }).slice(0, 8);
    pick.at = 0;
    K.clear(pick.box);
    if (!pick.items.length) { pick.box.hidden = true; return; }
    pick.items.forEach(function (c, i) {
      pick.box.appendChild(K.el("div.canned-opt", {
        role: "option", "aria-selected": String(i === pick.at), dataset: { shortcut: c.shortcut },
        on: { mousedown: function (e) { e.preventDefault(); choose(c); } }
      }, K.el("b", { text: "/" + c.shortcut }), " ", K.el("span", { text: expand(c.text) })));
    });
    pick.box.hidden = false;
    input.setAttribute("aria-controls", "cannedPick");
  }
  function choose(c) {
    var input = $("input");
    input.value = expand(c.text);
    hidePick();
    input.focus();
    input.dispatchEvent(new Event("input"));
  }
  function onComposerInput() {
    var m = /^\/([^\s/]{0,32})$/.exec($("input").value);
    if (!m) return hidePick();
    var q = m[1];
    if (Date.now() - cannedAt > 60000) loadCanned().then(function () { if (/^\//.test($("input").value)) showPick(q); }).catch(hidePick);
    else showPick(q);
  }
  /* Before console.js's own Enter (capture on the document): the picker takes the keys it uses. */
  document.addEventListener("keydown", function (e) {
    if (e.target !== $("input") || !pick.box || pick.box.hidden || !pick.items.length) return;
    var k = e.key;
    if (k === "ArrowDown" || k === "ArrowUp") {
      pick.at = (pick.at + (k === "ArrowDown" ? 1 : pick.items.length - 1)) % pick.items.length;
      Array.prototype.forEach.call(pick.box.children, function (n, i) { n.setAttribute("aria-selected", String(i === pick.at)); });
    } else if (k === "Enter" || k === "Tab") choose(pick.items[pick.at]);
    else if (k === "Escape") hidePick();
    else return;
    e.preventDefault(); e.stopPropagation();
  }, true);

  /* The manager: a dialog like the settings one (the business's replies need an admin; the
   * server says no otherwise, and the message is shown). */
  var dlg = null;
  function openManager() {
    if (!dlg) {
      var scope = K.el("select", { id: "cScope" },
        K.el("option", { value: "agent", "data-i18n": "desk_scope_agent", text: t("desk_scope_agent") }),
        K.el("option", { value: "business", "data-i18n": "desk_scope_business", text: t("desk_scope_business") }));
      var dayRows = K.el("div.hours-days", { id: "hDays" });
      t("days").split(",").forEach(function (d, i) {
        dayRows.appendChild(K.el("label.hours-day", null, K.el("span", { text: d }), K.el("input", { id: "hDay" + i, maxlength: "64", placeholder: "09:00-18:00", autocomplete: "off" })));
      });
      dlg = K.el("div.settings-wrap", { id: "deskView", hidden: true },
        K.el("div.settings-card", null,
          K.el("h2", { "data-i18n": "desk_canned_title", text: t("desk_canned_title") }),
          K.el("div.canned-list", { id: "cList" }),
          K.el("div.set-row", null, scope, K.el("input", { id: "cShortcut", maxlength: "32", autocomplete: "off", "data-i18n-ph": "desk_shortcut", placeholder: t("desk_shortcut") })),
          K.el("textarea", { id: "cText", rows: "3", maxlength: "2000", "data-i18n-ph": "desk_text", placeholder: t("desk_text") }),
          K.el("div.set-actions", null, K.el("button.btn", { type: "button", id: "cAdd", "data-i18n": "desk_add", text: t("desk_add"), on: { click: addCanned } })),
          K.el("h2", { "data-i18n": "desk_hours", text: t("desk_hours") }),
          K.el("div.muted", { id: "hNow" }),
          K.el("input", { id: "hTz", maxlength: "64", autocomplete: "off", "data-i18n-ph": "desk_tz", placeholder: t("desk_tz") }),
          K.el("div.muted", { "data-i18n": "desk_hours_hint", text: t("desk_hours_hint") }),
          dayRows,
          K.el("div.set-actions", null,
            K.el("button.btn", { type: "button", id: "hClear", "data-i18n": "desk_hours_clear", text: t("desk_hours_clear"), on: { click: function () { saveHours(true); } } }),
            K.el("button.btn", { type: "button", id: "hSave", "data-i18n": "desk_hours_save", text: t("desk_hours_save"), on: { click: function () { saveHours(false); } } })),
          K.el("div.set-msg", { id: "cMsg", role: "status", "aria-live": "polite" }),
          K.el("div.set-actions", null, K.el("button.btn", { type: "button", id: "cClose", "data-i18n": "desk_close", text: t("desk_close"), on: { click: function () { dlg.hidden = true; } } }))));
      document.body.appendChild(dlg);
    }
    say("");
    dlg.hidden = false;
    loadCanned().catch(function (e) { say(e.message, "error"); });
    loadHours();
  }
  function say(text, kind) { var m = $("cMsg"); if (m) { m.textContent = text || ""; m.dataset.kind = kind || ""; } }
  function renderManager() {
    var box = $("cList");
    if (!box) return;
    K.clear(box);
    if (!canned.length) { box.appendChild(K.el("div.muted", { text: t("desk_none") })); return; }
    canned.forEach(function (c) {
      box.appendChild(K.el("div.canned-row", { dataset: { id: String(c.id) } },
        K.el("span.canned-scope", { text: t(c.scope === "business" ? "desk_scope_business" : "desk_scope_agent") }),
        K.el("b", { text: "/" + c.shortcut }),
        K.el("span.canned-text", { text: c.text }),
        K.el("button.btn", { type: "button", text: t("desk_delete"), on: { click: function () {
          call("POST", "/api/canned", { op: "delete", id: c.id }).then(loadCanned).catch(function (e) { say(e.message, "error"); });
        } } })));
    });
  }
  function addCanned() {
    var body = { op: "add", scope: $("cScope").value, shortcut: $("cShortcut").value.trim().replace(/^\//, ""), text: $("cText").value };
    call("POST", "/api/canned", body).then(function () {
      $("cShortcut").value = ""; $("cText").value = ""; say(t("desk_saved"), "ok");
      return loadCanned();
    }).catch(function (e) { say(e.message, "error"); });
  }
  function hoursNow(j) {
    $("hNow").textContent = !j.hours ? t("desk_always") : t(j.open ? "desk_open" : "desk_closed");
  }
  function loadHours() {
    var s = S();
    fetch("/api/hours?bid=" + encodeURIComponent(s.auth.bid)).then(function (r) { return r.json(); }).then(function (j) {
      var tz = (j.hours && j.hours.tz) || (Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC");
      $("hTz").value = tz;
      for (var i = 0; i < 7; i++) {
        var d = j.hours ? j.hours.days[i] || [] : [["09:00", "18:00"]];
        $("hDay" + i).value = d.map(function (p) { return p[0] + "-" + p[1]; }).join(", ");
      }
      hoursNow(j);
    }).catch(function () {});
  }
  function saveHours(clear) {
    var body = {};
    if (!clear) {
      body = { tz: $("hTz").value.trim(), days: [] };
      for (var i = 0; i < 7; i++) {
        body.days.push($("hDay" + i).value.split(",").map(function (x) { return x.trim(); }).filter(Boolean).map(function (x) {
          var p = x.split("-"); return [(p[0] || "").trim(), (p[1] || "").trim()];
        }));
      }
    }
    call("POST", "/api/hours", body).then(function (j) { hoursNow(j); say(t("desk_saved"), "ok"); if (clear) loadHours(); })
      .catch(function (e) { say(e.message, "error"); });
  }

  /* ---------- notes and ratings ---------- */
  var notes = { conv: null, list: [], box: null };
  function notesBox() {
    if (notes.box) return notes.box;
    var ta = K.el("textarea", { id: "noteText", rows: "2", maxlength: "2000", "data-i18n-ph": "desk_note_ph", placeholder: t("desk_note_ph") });
    notes.box = K.el("div.notes", { id: "notes" },
      K.el("div.side-sec-title", { "data-i18n": "desk_rating", text: t("desk_rating"), id: "ratingTitle", hidden: true }),
      K.el("div.rating-line", { id: "ratingLine", hidden: true }),
      K.el("div.side-sec-title", { "data-i18n": "desk_notes", text: t("desk_notes") }),
      K.el("div.note-list", { id: "noteList" }),
      ta,
      K.el("button.btn", { type: "button", id: "noteAdd", "data-i18n": "desk_note_add", text: t("desk_note_add"), on: { click: addNote } }));
    $("info").appendChild(notes.box);
    return notes.box;
  }
  function renderNotes() {
    var list = $("noteList");
    K.clear(list);
    notes.list.forEach(function (n) {
      list.appendChild(K.el("div.note", { dataset: { id: String(n.id) } },
        K.el("div.note-meta", { text: (n.agent_name || n.agent_id) + " · " + K.fullTime(n.ts) }),
        K.el("div.note-text", { text: n.text })));
    });
  }
  function addNote() {
    var s = S(), text = $("noteText").value.trim();
    if (!s || s.selected == null || !text) return;
    var conv = s.selected;
    call("POST", "/api/notes", { conv_id: conv, text: text }).then(function (n) {
      $("noteText").value = "";
      gotNote(n);
    }).catch(function (e) { $("noteText").setCustomValidity(e.message); $("noteText").reportValidity(); $("noteText").setCustomValidity(""); });
  }
  function gotNote(n) {
    if (n.conv_id !== notes.conv || notes.list.some(function (x) { return x.id === n.id; })) return;
    notes.list.push(n);
    renderNotes();
  }
  function renderRating(r) {
    var has = !!(r && r.rating);
    $("ratingTitle").hidden = !has; $("ratingLine").hidden = !has;
    if (has) $("ratingLine").textContent = stars(r.rating.score) + (r.rating.comment ? " " + r.rating.comment : "");
  }
  document.addEventListener("kefu:pane", function () {
    var s = S(), box = notesBox();
    var id = s && s.selected != null ? s.selected : null, r = id != null ? s.convs.get(id) : null;
    box.hidden = !r;
    if (!r) return;
    renderRating(r);
    if (notes.conv === id) return;
    notes.conv = id; notes.list = []; renderNotes();
    call("GET", "/api/notes?conv_id=" + id).then(function (j) {
      if (notes.conv !== id) return;
      (j.notes || []).forEach(gotNote);
    }).catch(function () {});
  });
  document.addEventListener("kefu:list", function () {
    var s = S();
    if (!s) return;
    document.querySelectorAll("#convList .conv-item").forEach(function (item) {
      var r = s.convs.get(Number(item.dataset.conv));
      if (r && r.rating && !item.querySelector(".rating-badge")) {
        item.appendChild(K.el("span.rating-badge", { text: "★" + r.rating.score, title: r.rating.comment || "" }));
      }
    });
  });
  document.addEventListener("kefu:push", function (e) {
    var m = e.detail, s = S();
    if (!m || !s) return;
    if (m.method === "note" && m.note) gotNote(m.note);
    else if (m.method === "rated") {
      var r = s.convs.get(m.conv_id);
      if (!r) return;
      r.rating = { score: m.score, comment: m.comment || "" };
      document.dispatchEvent(new CustomEvent("kefu:list"));
      if (s.selected === m.conv_id) renderRating(r);
    }
  });

  function init() {
    var input = $("input");
    input.addEventListener("input", onComposerInput);
    input.addEventListener("blur", function () { setTimeout(hidePick, 150); });
    var btn = K.el("button.hbtn", { type: "button", id: "cannedBtn", "data-i18n": "desk_canned", text: t("desk_canned"), on: { click: openManager } });
    $("settingsBtn").parentNode.insertBefore(btn, $("settingsBtn"));
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
