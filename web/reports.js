/* Console: search and reports (docs/web.md "Search and reports"). Message search over the
 * business's history (GET /api/search, every agent), the reports per day, per agent or per
 * department, of all departments or one, with the visitors' ratings, drawn as a small SVG
 * bar chart (GET /api/reports) and their CSV export: reports are for the business's admins
 * (the console's login says the role; the server checks it on every call), so a plain agent
 * sees the search only. The department list comes from the admin state (POST /api/admin).
 * The dialog's DOM is built here, so console.html only carries the button and this script.
 * Everything from the server is rendered as text (textContent / SVG text nodes). */
"use strict";
(function () {
  var K = window.Kefu, $ = function (id) { return document.getElementById(id); };
  var SVG = "http://www.w3.org/2000/svg";
  var DAY = 86400000;
  var S = {
    zh: {
      btn: "查询与报表", title: "查询与报表", search: "搜索消息", q_ph: "关键词（至少 1 个字）",
      agent_ph: "客服账号（可选）", go: "搜索", more: "更多结果", none: "没有找到",
      reports: "报表", by_day: "按天", by_agent: "按客服", by_dept: "按部门", last7: "最近 7 天", last30: "最近 30 天",
      last90: "最近 90 天", csv: "导出 CSV", close: "关闭", key_day: "日期", key_agent: "客服", key_dept: "部门",
      convs: "会话", missed: "未接入", answered: "已回复", frt: "首次响应", resolved: "已解决",
      res: "解决用时", rating: "满意度", unassigned: "（未分配）", no_dept: "（无部门）", all_depts: "全部部门",
      legend_convs: "会话数", legend_missed: "未接入（排队中离开）",
      loading: "加载中…", err: "出错了："
    },
    en: {
      btn: "Search & reports", title: "Search & reports", search: "Search messages", q_ph: "Words (1 character or more)",
      agent_ph: "Agent id (optional)", go: "Search", more: "More results", none: "Nothing found",
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

  var view = null, nextCursor = null, lastQuery = "";
  var admin = false; // the console's login says so ("kefu:login"); reports are for admins

  function build() {
    var close = K.el("button.btn", { type: "button", id: "rClose", text: t("close"), on: { click: hide } });
    var q = K.el("input", { id: "rQ", maxlength: "100", placeholder: t("q_ph"), autocomplete: "off" });
    var agent = K.el("input", { id: "rAgent", maxlength: "64", placeholder: t("agent_ph"), autocomplete: "off" });
    var form = K.el("form.r-search", { id: "rSearchForm", novalidate: "" }, q, agent,
      K.el("button.send-btn", { type: "submit", id: "rGo", text: t("go") }));
    form.addEventListener("submit", function (e) { e.preventDefault(); search(false); });
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
    var card = K.el("div.settings-card.r-card", { role: "dialog", "aria-label": t("title") },
      K.el("div.r-head", null, K.el("h2", { text: t("title") }), close),
      K.el("h3", { text: t("search") }), form,
      K.el("div.r-hits", { id: "rHits", "aria-live": "polite" }),
      K.el("button.more-btn", { type: "button", id: "rMore", hidden: true, text: t("more"), on: { click: function () { search(true); } } }),
      K.el("div", { id: "rReports", hidden: !admin },
        K.el("h3", { text: t("reports") }),
        K.el("div.r-controls", null, range, group, dept,
          K.el("button.btn", { type: "button", id: "rCsv", text: t("csv"), on: { click: csv } })),
        K.el("div.r-msg", { id: "rMsg", role: "status" }),
        K.el("div.r-chart", { id: "rChart" }),
        K.el("div.r-table-wrap", null, K.el("table.r-table", { id: "rTable" }))));
    view = K.el("div.settings-wrap", { id: "reportsView", hidden: true }, card);
    view.addEventListener("click", function (e) { if (e.target === view) hide(); });
    document.body.appendChild(view);
  }

  function show() {
    if (!view) build();
    view.hidden = false;
    $("rQ").focus();
    $("rReports").hidden = !admin;
    if (admin) { departments(); report(); }
  }

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
  function hide() { if (view) view.hidden = true; }
  function say(text, kind) { var m = $("rMsg"); m.textContent = text || ""; m.dataset.kind = kind || ""; }

  /* ---------- search ---------- */
  function search(more) {
    var q = $("rQ").value.trim();
    if (!q) return;
    var p = "q=" + encodeURIComponent(q) + "&limit=20";
    var ag = $("rAgent").value.trim();
    if (ag) p += "&agent_id=" + encodeURIComponent(ag);
    if (more && nextCursor) p += "&before=" + encodeURIComponent(nextCursor);
    if (!more) { K.clear($("rHits")); lastQuery = q; }
    api("/api/search?" + p).then(function (r) { return r.json(); }).then(function (j) {
      var box = $("rHits");
      (j.items || []).forEach(function (h) {
        box.appendChild(K.el("div.r-hit", { dataset: { conv: String(h.conv_id) } },
          K.el("div.r-hit-meta", { text: K.fullTime(h.ts) + " · #" + h.conv_id + " · " + (h.from === "agent" ? h.sender_name || h.sender_id : h.visitor_id) }),
          K.el("div.r-hit-text", { text: h.text })));
      });
      if (!box.firstChild) box.appendChild(K.el("div.muted", { text: t("none") }));
      nextCursor = j.next || null;
      $("rMore").hidden = !nextCursor;
    }).catch(function (e) { K.clear($("rHits")); $("rHits").appendChild(K.el("div.r-err", { text: t("err") + e.message })); });
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

  function init() {
    document.addEventListener("kefu:login", function (e) {
      admin = !!(e.detail && e.detail.role === "admin");
      if (view) $("rReports").hidden = !admin;
    });
    var top = $("settingsBtn");
    if (!top || $("reportsBtn")) return;
    var b = K.el("button.hbtn", { type: "button", id: "reportsBtn", text: t("btn"), on: { click: show } });
    top.parentNode.insertBefore(b, top);
    document.addEventListener("keydown", function (e) { if (e.key === "Escape" && view && !view.hidden) hide(); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
