/* Console: search and reports (docs/web.md "Search and reports"). Message search over the
 * business's history (GET /api/search), the reports per day or per agent drawn as a small
 * SVG bar chart (GET /api/reports) and their CSV export, all with the agent's token. The
 * dialog's DOM is built here, so console.html only carries the button and this script.
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
      reports: "报表", by_day: "按天", by_agent: "按客服", last7: "最近 7 天", last30: "最近 30 天",
      last90: "最近 90 天", csv: "导出 CSV", close: "关闭", key_day: "日期", key_agent: "客服",
      convs: "会话", missed: "未接入", answered: "已回复", frt: "首次响应", resolved: "已解决",
      res: "解决用时", unassigned: "（未分配）", legend_convs: "会话数", legend_missed: "未接入（排队中离开）",
      loading: "加载中…", err: "出错了："
    },
    en: {
      btn: "Search & reports", title: "Search & reports", search: "Search messages", q_ph: "Words (1 character or more)",
      agent_ph: "Agent id (optional)", go: "Search", more: "More results", none: "Nothing found",
      reports: "Reports", by_day: "Per day", by_agent: "Per agent", last7: "Last 7 days", last30: "Last 30 days",
      last90: "Last 90 days", csv: "Export CSV", close: "Close", key_day: "Day", key_agent: "Agent",
      convs: "Conversations", missed: "Missed", answered: "Answered", frt: "First response", resolved: "Resolved",
      res: "Resolution", unassigned: "(none)", legend_convs: "Conversations", legend_missed: "Missed (left while queued)",
      loading: "Loading…", err: "Error: "
    }
  };
  function t(k) { var l = S[K.lang] ? K.lang : "zh"; return S[l][k] || S.zh[k] || k; }
  function auth() { try { return JSON.parse(localStorage.getItem("kefu.agent.auth") || "null"); } catch (e) { return null; } }

  function api(path) {
    var a = auth();
    if (!a) return Promise.reject(new Error("not logged in"));
    return fetch(path, { headers: { "Authorization": "Bearer " + a.token } }).then(function (r) {
      if (!r.ok) return r.json().catch(function () { return {}; }).then(function (j) { throw new Error(j.msg || ("HTTP " + r.status)); });
      return r;
    });
  }

  var view = null, nextCursor = null, lastQuery = "";

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
      K.el("option", { value: "day", text: t("by_day") }), K.el("option", { value: "agent", text: t("by_agent") }));
    range.addEventListener("change", report);
    group.addEventListener("change", report);
    var card = K.el("div.settings-card.r-card", { role: "dialog", "aria-label": t("title") },
      K.el("div.r-head", null, K.el("h2", { text: t("title") }), close),
      K.el("h3", { text: t("search") }), form,
      K.el("div.r-hits", { id: "rHits", "aria-live": "polite" }),
      K.el("button.more-btn", { type: "button", id: "rMore", hidden: true, text: t("more"), on: { click: function () { search(true); } } }),
      K.el("h3", { text: t("reports") }),
      K.el("div.r-controls", null, range, group,
        K.el("button.btn", { type: "button", id: "rCsv", text: t("csv"), on: { click: csv } })),
      K.el("div.r-msg", { id: "rMsg", role: "status" }),
      K.el("div.r-chart", { id: "rChart" }),
      K.el("div.r-table-wrap", null, K.el("table.r-table", { id: "rTable" })));
    view = K.el("div.settings-wrap", { id: "reportsView", hidden: true }, card);
    view.addEventListener("click", function (e) { if (e.target === view) hide(); });
    document.body.appendChild(view);
  }

  function show() { if (!view) build(); view.hidden = false; $("rQ").focus(); report(); }
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
    return "from=" + (end - days * DAY) + "&to=" + end + "&tz=" + tz + "&group=" + encodeURIComponent($("rGroup").value);
  }

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
      b1.appendChild(svg("title", {}, (r.key || t("unassigned")) + ": " + r.conversations));
      s.appendChild(b1);
      var b2 = svg("rect", { x: x + bw, y: H - B - h2, width: bw, height: h2, "class": "r-bar-missed" });
      b2.appendChild(svg("title", {}, (r.key || t("unassigned")) + " " + t("missed") + ": " + r.missed));
      s.appendChild(b2);
      if (k % labelEvery === 0) {
        var label = group === "day" ? r.key.slice(5) : (r.key || t("unassigned"));
        s.appendChild(svg("text", { x: x + bw, y: H - B + 14, "text-anchor": "middle", "class": "r-axis" }, label));
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
    var head = [group === "agent" ? t("key_agent") : t("key_day"), t("convs"), t("missed"), t("answered"), t("frt"), t("resolved"), t("res")];
    tb.appendChild(K.el("thead", null, K.el.apply(null, ["tr", null].concat(head.map(function (h) { return K.el("th", { text: h }); })))));
    var body = K.el("tbody");
    rows.slice().reverse().forEach(function (r) {
      if (group === "day" && !r.conversations) return;
      var cells = [r.key || t("unassigned"), r.conversations, r.missed, r.answered, secs(r.first_response_ms), r.resolved, secs(r.resolution_ms)];
      body.appendChild(K.el.apply(null, ["tr", null].concat(cells.map(function (c) { return K.el("td", { text: String(c) }); }))));
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
    var top = $("settingsBtn");
    if (!top || $("reportsBtn")) return;
    var b = K.el("button.hbtn", { type: "button", id: "reportsBtn", text: t("btn"), on: { click: show } });
    top.parentNode.insertBefore(b, top);
    document.addEventListener("keydown", function (e) { if (e.key === "Escape" && view && !view.hidden) hide(); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
