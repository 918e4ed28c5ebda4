/* Agent console: the drawing of the conversation list, the open conversation, its visitor's
 * details, the colleagues and the page title. console.js owns the session (login, socket,
 * incoming frames, actions) and calls `K.consoleView(env)` once: `env` gives the session's
 * state (`S()`), the business's `faces()` and `depts()`, the row cache, and the actions the
 * drawing wires (`stream`, `select`, `sendPending`). Everything a visitor typed is set as
 * text (K.el, textContent). */
"use strict";
(function () {
  var K = window.Kefu, t = K.t, $ = function (id) { return document.getElementById(id); };

  K.consoleView = function (env) {
    var S = null, faces = null, depts = null, rowCache = env.rowCache;
    var stream = env.stream, select = env.select, sendPending = env.sendPending;
    /* The session's state is read afresh at each call: a login replaces it. */
    function sync() { S = env.S(); faces = env.faces(); depts = env.depts(); return S; }
    function visitorName(r) {
      var v = r && r.visitor;
      if (v && v.name) return v.name;
      var id = (v && v.visitor_id) || ("#" + (r ? r.conv_id : ""));
      return t("anonymous", { id: id.replace(/^v_/, "").slice(0, 6) });
    }
    function lastText(m) {
      if (!m) return "";
      if (m.kind === "image") return t("image_msg");
      if (m.kind === "event") return K.eventText(m);
      return (m.text || "").replace(/\s+/g, " ");
    }

    function renderAll() {
      if (!S) return;
      renderColleagues(); renderConvList(); renderPane(); updateTitle();
    }
    function renderList() { renderConvList(); renderPane(); updateTitle(); }

    function renderColleagues() {
      var box = $("colleagues");
      K.clear(box);
      var ids = Array.from(S.colleagues.keys()).sort(function (a, b) { return a === S.auth.agent_id ? -1 : b === S.auth.agent_id ? 1 : a.localeCompare(b); });
      ids.forEach(function (id) {
        box.appendChild(K.el("span.colleague" + (id === S.auth.agent_id ? ".self" : ""), { dataset: { id: id }, title: id },
          K.el("span.dot"), S.colleagues.get(id) || id));
      });
      if (!ids.length) box.appendChild(K.el("span.muted", { text: "—" }));
      renderTransfer();
    }

    function tabOf(r) { return r.state === "queued" ? "queue" : r.state === "active" ? "active" : "closed"; }

    function renderConvList() {
      var list = $("convList");
      var groups = { active: [], queue: [], closed: [] };
      S.convs.forEach(function (r) { groups[tabOf(r)].push(r); });
      var lastTs = function (r) { return (r.last_message && r.last_message.ts) || r.queued_at || r.created_at || 0; };
      groups.active.sort(function (a, b) { return lastTs(b) - lastTs(a); });
      groups.queue.sort(function (a, b) { return S.queueOrder.indexOf(a.conv_id) - S.queueOrder.indexOf(b.conv_id); });
      groups.closed.sort(function (a, b) { return b.conv_id - a.conv_id; });
      $("cntActive").textContent = groups.active.length;
      $("cntQueue").textContent = groups.queue.length;
      $("cntClosed").textContent = groups.closed.length;
      ["active", "queue", "closed"].forEach(function (tb) {
        $("tab" + tb.charAt(0).toUpperCase() + tb.slice(1)).setAttribute("aria-selected", String(S.tab === tb));
      });
      K.clear(list);
      var items = groups[S.tab];
      if (!items.length) list.appendChild(K.el("div.empty", { text: t("empty_list") }));
      items.forEach(function (r) {
        var name = visitorName(r);
        var online = r.visitor && r.visitor.online;
        var sub = r.note || (r.state === "queued" && r.queue_pos ? t("queue_waiting", { n: r.queue_pos }) + " · " : "") + lastText(r.last_message);
        var item = K.el("button.conv-item", {
          type: "button", dataset: { conv: String(r.conv_id) },
          "aria-current": String(r.conv_id === S.selected),
          on: { click: function () { select(r.conv_id); } }
        },
          K.el("span.av-wrap", null, K.avatar(name, "visitor"), K.el("span.online-dot" + (online ? ".on" : ""))),
          K.el("span.conv-main", null,
            K.el("span.conv-top", null,
              K.el("span.conv-name", { text: name }),
              K.el("span.conv-time", { text: r.last_message && r.last_message.ts ? K.sepLabel(r.last_message.ts) : "" })),
            K.el("div.conv-last", { text: sub || "\u00a0" })),
          r.unread > 0 ? K.el("span.badge", { text: r.unread > 99 ? "99+" : String(r.unread), "aria-label": t("unread") + " " + r.unread }) : null);
        list.appendChild(item);
      });
      document.dispatchEvent(new CustomEvent("kefu:list"));
    }

    function renderTransfer() {
      var sel = $("transferSel");
      var cur = sel.value;
      K.clear(sel);
      sel.appendChild(K.el("option", { value: "", text: t("transfer_to") }));
      var n = 0;
      S.colleagues.forEach(function (name, id) {
        if (id === S.auth.agent_id) return;
        n++;
        sel.appendChild(K.el("option", { value: id, text: name + " (" + id + ")" }));
      });
      if (!n) sel.appendChild(K.el("option", { value: "", disabled: "disabled", text: t("no_colleague") }));
      // A department's line (the business's departments, from its profile).
      if (depts.length) {
        var g = K.el("optgroup", { label: t("transfer_to_dept") });
        depts.forEach(function (d) { g.appendChild(K.el("option", { value: "dept:" + d.dept_id, text: d.name })); });
        sel.appendChild(g);
      }
      sel.value = cur && (S.colleagues.has(cur) || cur.indexOf("dept:") === 0) ? cur : "";
    }

    function renderPane() {
      if (!S) return;
      var id = S.selected, r = id == null ? null : S.convs.get(id);
      $("appView").classList.toggle("has-conv", !!r);
      $("paneEmpty").hidden = !!r;
      $("paneHead").hidden = !r; $("chatBody").hidden = !r;
      var mine = r && r.state === "active" && r.agent_id === S.auth.agent_id;
      $("composer").hidden = !mine;
      if (!mine) $("emojiWrap").firstChild && ($("emojiWrap").firstChild.hidden = true);
      renderInfo(r);
      if (!r) { document.dispatchEvent(new CustomEvent("kefu:pane")); return; }
      $("paneTitle").textContent = visitorName(r);
      var tag = $("stateTag");
      tag.dataset.state = r.state;
      tag.textContent = r.state === "transferred" ? t("transferred_to", { name: r.transferredTo })
        : t("state_" + (r.state === "queued" ? "queued" : r.state === "active" ? "active" : "closed"));
      $("claimBtn").hidden = r.state !== "queued";
      $("transferSel").hidden = !mine; $("transferBtn").hidden = !mine; $("closeBtn").hidden = !(mine || r.state === "queued"); // a queued one can be dismissed
      $("closeBtn").textContent = S.closeArmed === id ? t("confirm_close") : t("close_conv");

      var st = stream(id);
      // Delivered: the visitor is connected, so its page has every message so far.
      if (r.visitor && r.visitor.online && S.loggedIn) r.deliveredSeq = Math.max(r.deliveredSeq || 0, st.lastSeq || 0);
      var items = st.sorted().map(function (m) { m.key = id + ":" + m.seq; return m; });
      S.pending.forEach(function (p) {
        if (p.conv_id === id) items.push({ key: "p:" + p.cid, cid: p.cid, pending: true, failed: p.failed, from: "agent", sender_name: S.auth.name, kind: p.kind, text: p.text, url: p.url, ts: p.ts, conv_id: id });
      });
      K.renderList($("msgList"), items, function (m) { return rowFor(m, r); });
      $("moreBtn").hidden = !st.hasMore;
      $("noMore").hidden = !(st.pagedOlder && st.hasMore === false && st.msgs.size > 0);
      document.dispatchEvent(new CustomEvent("kefu:pane"));
    }

    function rowFor(m, r) {
      var mine = m.from === "agent";
      var status = "", sk = "";
      if (m.pending) { status = m.failed ? t("send_failed") : t("sending"); sk = m.failed ? "failed" : "sending"; }
      else if (mine) {
        var rs = r.visitor_read_seq || 0, ds = r.deliveredSeq || 0;
        sk = m.seq <= rs ? "read" : m.seq <= ds ? "delivered" : "sent";
        status = t("st_" + sk);
      }
      var f = faces.get(m.from === "agent" ? m.sender_id : "");
      var key = m.key + "|" + sk + "|" + K.lang + "|" + (f ? f.avatar : "");
      var c = rowCache.get(key);
      if (c) return c;
      var row;
      if (m.kind === "event") row = K.eventLine(m);
      else if (mine) row = K.bubble(m, "right", { name: m.sender_name || m.sender_id || "", role: "agent", status: status, statusKind: sk, avatar: f && f.avatar });
      else row = K.bubble(m, "left", { name: m.sender_name || visitorName(r), role: m.from === "visitor" ? "visitor" : "agent" });
      if (m.pending && m.failed) {
        row.classList.add("msg-failed");
        row.addEventListener("click", function () { if (!sync()) return; var p = S.pending.find(function (x) { return x.cid === m.cid; }); if (p && S.loggedIn) { sendPending(p); renderPane(); } });
      }
      row.dataset.key = m.key;
      rowCache.set(key, row);
      if (rowCache.size > 3000) rowCache.clear();
      return row;
    }

    function renderInfo(r) {
      var dl = $("infoList");
      K.clear(dl);
      if (!r) return;
      var v = r.visitor || {};
      var rows = [
        ["info_id", v.visitor_id || ""],
        ["info_name", v.name || "—"],
        ["info_online", v.online ? t("yes") : t("no")],
        ["info_ip", v.ip || "—"],
        ["info_page", v.page_url || "—"],
        ["info_referrer", v.referrer || "—"],
        ["info_ua", v.user_agent || "—"],
        ["info_first_seen", v.first_seen ? K.fullTime(v.first_seen) : "—"]
      ];
      if (v.contact) rows.splice(2, 0, ["info_contact", v.contact]);
      rows.forEach(function (x) {
        dl.appendChild(K.el("dt", { text: t(x[0]) }));
        dl.appendChild(K.el("dd", { text: x[1], dataset: { field: x[0] } }));
      });
    }

    function updateTitle() {
      if (!S) return;
      var total = 0;
      S.convs.forEach(function (r) { if (r.state === "active") total += r.unread || 0; });
      document.title = (total ? "(" + total + ") " : "") + t("console_title");
    }

    function entry(f) { return function () { sync(); return f.apply(null, arguments); }; }
    return {
      visitorName: entry(visitorName), renderAll: entry(function () { if (S) renderAll(); }),
      renderList: entry(function () { if (S) renderList(); }), renderColleagues: entry(function () { if (S) renderColleagues(); }),
      renderConvList: entry(function () { if (S) renderConvList(); }), renderPane: entry(renderPane), updateTitle: entry(updateTitle)
    };
  };
})();
