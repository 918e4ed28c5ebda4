/* Console: the admin's reports and webhooks (docs/web.md "Reports and webhooks"). The reports
 * per day, per agent or per department, of all departments or one, with the visitors'
 * ratings, drawn as a small SVG bar chart (GET /api/reports) and their CSV export; the
 * business's webhook endpoints: list with pending / given-up counts and the last error,
 * register (the signing secret is shown once), remove (GET/POST /api/webhooks). Both are for
 * the business's admins: the button shows only when the console's login says "admin", and the
 * server checks the role on every call. Message search lives in the console's history dialog.
 * The department list comes from the admin state (POST /api/admin). The dialog's DOM is built
 * here, so console.html only carries this script. Everything from the server is rendered as
 * text (textContent / SVG text nodes). */
"use strict";
(function () {
  var K = window.Kefu, $ = function (id) { return document.getElementById(id); };
  var SVG = "http://www.w3.org/2000/svg";
  var DAY = 86400000;
  var S = {
    zh: {
      btn: "报表", title: "报表与 Webhook",
      hooks: "Webhook", hook_ph: "https://example.com/kefu-hook", hook_add: "添加", hook_del: "删除",
      hook_secret: "签名密钥（只显示这一次，请保存）：", hook_pending: "待发送", hook_dead: "已放弃",
      hook_none: "还没有 Webhook", hook_err: "最近错误：",
      reports: "报表", by_day: "按天", by_agent: "按客服", by_dept: "按部门", last7: "最近 7 天", last30: "最近 30 天",
      last90: "最近 90 天", csv: "导出 CSV", close: "关闭", key_day: "日期", key_agent: "客服", key_dept: "部门",
      convs: "会话", missed: "未接入", answered: "已回复", frt: "首次响应", resolved: "已解决",
      res: "解决用时", rating: "满意度", unassigned: "（未分配）", no_dept: "（无部门）", all_depts: "全部部门",
      legend_convs: "会话数", legend_missed: "未接入（排队中离开）",
      loading: "加载中…", err: "出错了："
    },
    en: {
      btn: "Reports", title: "Reports & webhooks",
      hooks: "Webhooks", hook_ph: "https://example.com/kefu-hook", hook_add: "Add", hook_del: "Remove",
      hook_secret: "Signing secret (shown this once, keep it): ", hook_pending: "pending", hook_dead: "given up",
      hook_none: "No webhooks yet", hook_err: "Last error: ",
      reports: "Reports", by_day: "Per day", by_agent: "Per agent", by_dept: "Per department", last7: "Last 7 days", last30: "Last 30 days",
      last90: "Last 90 days", csv: "Export CSV", close: "Close", key_day: "Day", key_agent: "Agent", key_dept: "Department",
      convs: "Conversations", missed: "Missed", answered: "Answered", frt: "First response", resolved: "Resolved",
      res: "Resolution", rating: "Rating", unassigned: "(none)", no_dept: "(no department)", all_depts: "All departments",
      legend_convs: "Conversations", legend_missed: "Missed (left while queued)",
      loading: "Loading…", err: "Error: "
    }
  };
  function t(k) { var l = S[K.lang] ? K.lang : "zh"; return S[l][k] || S.zh[k] || k; }
  function auth() { try { return JSON.parse(localStorage.getItem("kefu.agent.auth") || "null"); } catch (e) { return null; } }

  function api(path, body) {
    var a = auth();
    if (!a) return Promise.reject(new Error("not logged in"));
    var init = { headers: { "Authorization": "Bearer " + a.token } };
    if (body) { init.method = "POST"; init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    return fetch(path, init).then(function (r) {
      if (!r.ok) return r.json().catch(function () { return {}; }).then(function (j) { throw new Error(j.msg || ("HTTP " + r.status)); });
      return r;
    });
  }

  var view = null;
  var admin = false; // the console's login says so ("kefu:login"); reports are for admins

  function build() {
    var close = K.el("button.btn", { type: "button", id: "rClose", text: t("close"), on: { click: hide } });
    var range = K.el("select", { id: "rRange" },
      K.el("option", { value: "7", text: t("last7") }), K.el("option", { value: "30", text: t("last30") }),
      K.el("option", { value: "90", text: t("last90") }));
    range.value = "30";
    var group = K.el("select", { id: "rGroup" },
      K.el("option", { value: "day", text: t("by_day") }), K.el("option", { value: "agent", text: t("by_agent") }),
      K.el("option", { value: "dept", text: t("by_dept") }));
    var dept = K.el("select", { id: "rDept" }, K.el("option", { value: "", text: t("all_depts") }));
    range.addEventListener("change", report);
    group.addEventListener("change", report);
    dept.addEventListener("change", report);
    var hookUrl = K.el("input", { id: "hUrl", maxlength: "512", placeholder: t("hook_ph"), autocomplete: "off" });
    var hookForm = K.el("form.r-search", { id: "hForm", novalidate: "" }, hookUrl,
      K.el("button.send-btn", { type: "submit", id: "hAdd", text: t("hook_add") }));
    hookForm.addEventListener("submit", function (e) { e.preventDefault(); addHook(); });
    var card = K.el("div.settings-card.r-card", { role: "dialog", "aria-label": t("title") },
      K.el("div.r-head", null, K.el("h2", { text: t("title") }), close),
      K.el("h3", { text: t("reports") }),
      K.el("div.r-controls", null, range, group, dept,
        K.el("button.btn", { type: "button", id: "rCsv", text: t("csv"), on: { click: csv } })),
      K.el("div.r-msg", { id: "rMsg", role: "status" }),
      K.el("div.r-chart", { id: "rChart" }),
      K.el("div.r-table-wrap", null, K.el("table.r-table", { id: "rTable" })),
      K.el("h3", { text: t("hooks") }), hookForm,
      K.el("div.r-msg", { id: "hMsg", role: "status" }),
      K.el("div.r-hooks", { id: "hList" }));
    view = K.el("div.settings-wrap", { id: "reportsView", hidden: true }, card);
    view.addEventListener("click", function (e) { if (e.target === view) hide(); });
    document.body.appendChild(view);
  }

  function show() {
    if (!view) build();
    view.hidden = false;
    departments();
    report();
    hooks();
  }
  function hide() { if (view) view.hidden = true; }
  function say(text, kind) { var m = $("rMsg"); m.textContent = text || ""; m.dataset.kind = kind || ""; }
  function hookSay(text, kind) { var m = $("hMsg"); K.clear(m); if (text) m.appendChild(text.nodeType ? text : document.createTextNode(text)); m.dataset.kind = kind || ""; }

  /* The business's departments for the filter (the admin state has them all). */
  function departments() {
    api("/api/admin", { op: "state" }).then(function (r) { return r.json(); }).then(function (st) {
      var sel = $("rDept"), keep = sel.value;
      while (sel.options.length > 1) sel.remove(1);
      (st.departments || []).forEach(function (d) {
        sel.appendChild(K.el("option", { value: d.dept_id, text: d.name || d.dept_id }));
      });
      sel.value = keep;
      if (sel.value !== keep) { sel.value = ""; report(); }
    }).catch(function () { /* the filter stays "all"; the report says what failed */ });
  }
  /* ---------- reports ---------- */
  function rangeQuery() {
    var days = parseInt($("rRange").value, 10) || 30;
    var now = new Date();
    var end = new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1).getTime();
    var tz = -now.getTimezoneOffset();
    var q = "from=" + (end - days * DAY) + "&to=" + end + "&tz=" + tz + "&group=" + encodeURIComponent($("rGroup").value);
    if ($("rDept").value) q += "&dept=" + encodeURIComponent($("rDept").value);
    return q;
  }

  /* How a row is named: the day, or the agent's / department's name (id if it has none). */
  function label(r, group) {
    if (group === "day") return r.key;
    if (!r.key) return group === "dept" ? t("no_dept") : t("unassigned");
    return r.name ? r.name + " (" + r.key + ")" : r.key;
  }
  function short(r, group) { return group === "day" ? r.key.slice(5) : (r.key ? (r.name || r.key) : label(r, group)); }
  function stars(r) { return r.rating_avg === null || r.rating_avg === undefined ? "–" : r.rating_avg.toFixed(2) + " (" + r.rated + ")"; }

  function secs(ms) { return ms === null || ms === undefined ? "–" : (ms / 1000).toFixed(1) + " s"; }

  function report() {
    say(t("loading"));
    api("/api/reports?" + rangeQuery()).then(function (r) { return r.json(); }).then(function (j) {
      say("");
      draw(j.rows || [], j.group);
      table(j.rows || [], j.group);
    }).catch(function (e) { say(t("err") + e.message, "error"); });
  }

  function svg(tag, attrs, text) {
    var n = document.createElementNS(SVG, tag);
    for (var k in attrs) n.setAttribute(k, String(attrs[k]));
    if (text !== undefined) n.textContent = text;
    return n;
  }

  /* Grouped bars: conversations and missed per row, a y axis with a few ticks. */
  function draw(rows, group) {
    var box = $("rChart");
    K.clear(box);
    var W = 640, H = 220, L = 34, B = 36, T = 10, R = 8;
    var max = 1;
    rows.forEach(function (r) { if (r.conversations > max) max = r.conversations; });
    var step = Math.max(1, Math.ceil(max / 4));
    max = step * 4;
    var s = svg("svg", { viewBox: "0 0 " + W + " " + H, "class": "r-svg", role: "img", "aria-label": t("reports") });
    for (var i = 0; i <= 4; i++) {
      var y = T + (H - T - B) * (1 - i / 4);
      s.appendChild(svg("line", { x1: L, x2: W - R, y1: y, y2: y, "class": "r-grid" }));
      s.appendChild(svg("text", { x: L - 4, y: y + 4, "text-anchor": "end", "class": "r-axis" }, String(i * step)));
    }
    var n = Math.max(rows.length, 1), slot = (W - L - R) / n, bw = Math.max(1, slot * 0.38);
    var labelEvery = Math.ceil(n / 10);
    rows.forEach(function (r, k) {
      var x = L + k * slot + slot * 0.1;
      var h1 = (H - T - B) * r.conversations / max, h2 = (H - T - B) * r.missed / max;
      var b1 = svg("rect", { x: x, y: H - B - h1, width: bw, height: h1, "class": "r-bar", "data-key": r.key });
      b1.appendChild(svg("title", {}, label(r, group) + ": " + r.conversations));
      s.appendChild(b1);
      var b2 = svg("rect", { x: x + bw, y: H - B - h2, width: bw, height: h2, "class": "r-bar-missed" });
      b2.appendChild(svg("title", {}, label(r, group) + " " + t("missed") + ": " + r.missed));
      s.appendChild(b2);
      if (k % labelEvery === 0) {
        s.appendChild(svg("text", { x: x + bw, y: H - B + 14, "text-anchor": "middle", "class": "r-axis" }, short(r, group)));
      }
    });
    s.appendChild(svg("rect", { x: L, y: H - 14, width: 10, height: 10, "class": "r-bar" }));
    s.appendChild(svg("text", { x: L + 14, y: H - 5, "class": "r-axis" }, t("legend_convs")));
    s.appendChild(svg("rect", { x: L + 140, y: H - 14, width: 10, height: 10, "class": "r-bar-missed" }));
    s.appendChild(svg("text", { x: L + 154, y: H - 5, "class": "r-axis" }, t("legend_missed")));
    box.appendChild(s);
  }

  function table(rows, group) {
    var tb = $("rTable");
    K.clear(tb);
    var key = group === "agent" ? t("key_agent") : group === "dept" ? t("key_dept") : t("key_day");
    var head = [key, t("convs"), t("missed"), t("answered"), t("frt"), t("resolved"), t("res"), t("rating")];
    tb.appendChild(K.el("thead", null, K.el.apply(null, ["tr", null].concat(head.map(function (h) { return K.el("th", { text: h }); })))));
    var body = K.el("tbody");
    rows.slice().reverse().forEach(function (r) {
      if (group === "day" && !r.conversations) return;
      var cells = [label(r, group), r.conversations, r.missed, r.answered, secs(r.first_response_ms), r.resolved, secs(r.resolution_ms), stars(r)];
      body.appendChild(K.el.apply(null, ["tr", { dataset: { key: r.key } }].concat(cells.map(function (c) { return K.el("td", { text: String(c) }); }))));
    });
    tb.appendChild(body);
  }

  /* The CSV needs the token header, so it is fetched and saved from a blob URL. */
  function csv() {
    api("/api/reports?" + rangeQuery() + "&format=csv").then(function (r) { return r.blob(); }).then(function (b) {
      var url = URL.createObjectURL(b);
      var a = K.el("a", { href: url, download: "kefu-report-" + $("rGroup").value + ".csv", hidden: true });
      document.body.appendChild(a);
      a.click();
      setTimeout(function () { URL.revokeObjectURL(url); a.remove(); }, 1000);
    }).catch(function (e) { say(t("err") + e.message, "error"); });
  }

  /* ---------- webhooks ---------- */
  function hooks() {
    api("/api/webhooks").then(function (r) { return r.json(); }).then(function (j) {
      var box = $("hList");
      K.clear(box);
      (j.items || []).forEach(function (h) {
        var meta = h.pending + " " + t("hook_pending") + " · " + h.dead + " " + t("hook_dead");
        var row = K.el("div.r-hook", { dataset: { id: String(h.id) } },
          K.el("div.r-hook-url", { text: h.url }),
          K.el("div.r-hit-meta", { text: meta }),
          h.last_error ? K.el("div.r-err", { text: t("hook_err") + h.last_error }) : null,
          K.el("button.btn", { type: "button", text: t("hook_del"), on: { click: function () { removeHook(h.id); } } }));
        box.appendChild(row);
      });
      if (!box.firstChild) box.appendChild(K.el("div.muted", { text: t("hook_none") }));
    }).catch(function (e) { hookSay(t("err") + e.message, "error"); });
  }

  function addHook() {
    var url = $("hUrl").value.trim();
    if (!url) return;
    api("/api/webhooks", { url: url }).then(function (r) { return r.json(); }).then(function (j) {
      $("hUrl").value = "";
      hookSay(K.el("span", null, t("hook_secret"), K.el("code", { id: "hSecret", text: j.secret })), "");
      hooks();
    }).catch(function (e) { hookSay(t("err") + e.message, "error"); });
  }

  function removeHook(id) {
    api("/api/webhooks/delete", { id: id }).then(function () { hookSay(""); hooks(); })
      .catch(function (e) { hookSay(t("err") + e.message, "error"); });
  }

  function init() {
    var top = $("settingsBtn");
    if (!top || $("reportsBtn")) return;
    var b = K.el("button.hbtn", { type: "button", id: "reportsBtn", hidden: true, text: t("btn"), on: { click: show } });
    top.parentNode.insertBefore(b, top);
    document.addEventListener("kefu:login", function (e) {
      admin = !!(e.detail && e.detail.role === "admin");
      b.hidden = !admin;
      if (!admin) hide();
    });
    document.addEventListener("keydown", function (e) { if (e.key === "Escape" && view && !view.hidden) hide(); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
