/* Agent console: /console. Protocol: docs/kefu-protocol.md §2-3, §5. */
"use strict";
(function () {
  var K = window.Kefu, t = K.t, $ = function (id) { return document.getElementById(id); };
  var AUTH_KEY = "kefu.agent.auth", PREF_KEY = "kefu.agent.prefs", SEL_KEY = "kefu.agent.selected";

  function lsGet(k) { try { return JSON.parse(localStorage.getItem(k) || "null"); } catch (e) { return null; } }
  function lsSet(k, v) { try { if (v == null) localStorage.removeItem(k); else localStorage.setItem(k, JSON.stringify(v)); } catch (e) {} }

  var prefs = Object.assign({ sound: true, notify: false }, lsGet(PREF_KEY) || {});
  var S = null;      // session state, created at login
  var sock = null;
  var rowCache = new Map();
  var faces = new Map();  // agent id -> {name, avatar} of this business (GET /api/business/profile)
  var depts = [];         // the business's departments [{dept_id, name}] (same profile)

  function fresh(auth) {
    return {
      auth: auth,
      loggedIn: false,
      colleagues: new Map(),   // agent id -> name
      convs: new Map(),        // conv_id -> record {conv_id, state, visitor, agent_id, unread, last_message, visitor_read_seq, agent_read_seq, note, queue_pos}
      queueOrder: [],          // conv ids in queue order
      streams: new Map(),
      pending: [],             // {cid, conv_id, kind, text, url, ts, failed}
      histReq: new Map(),
      selected: null,
      tab: "active",
      typingTimer: null, lastTypingSent: 0, typingIdle: null,
      closeArmed: null
    };
  }

  /* ---------- login ---------- */
  function showLogin(msg) {
    if (sock) { sock.stop(); sock = null; }
    document.dispatchEvent(new CustomEvent("kefu:login", { detail: { role: null } }));
    S = null;
    $("appView").hidden = true;
    $("loginView").hidden = false;
    $("loginErr").textContent = msg || "";
    var last = lsGet("kefu.agent.last") || {};
    var q = new URLSearchParams(location.search);
    if (!$("lBid").value) $("lBid").value = q.get("bid") || last.bid || "";
    if (!$("lAgent").value) $("lAgent").value = q.get("agent") || last.agent_id || "";
    document.title = t("console_title");
  }

  function doLogin(ev) {
    ev.preventDefault();
    K.unlockAudio();
    var body = { bid: $("lBid").value.trim(), agent_id: $("lAgent").value.trim(), password: $("lPass").value };
    $("loginBtn").disabled = true;
    $("loginErr").textContent = "";
    fetch("/api/agent/login", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (j) {
          if (r.status === 401) throw new Error(t("login_failed"));
          if (r.status === 429) {
            // Back-off after failed logins: say how long, and keep the button off until then.
            var wait = j.retry_after || parseInt(r.headers.get("Retry-After") || "0", 10) || 1;
            var err = new Error(t("login_rate_limited", { n: wait }));
            err.wait = wait;
            throw err;
          }
          if (!r.ok || !j.token) throw new Error(t("login_error", { msg: j.msg || ("HTTP " + r.status) }));
          return j;
        });
      })
      .then(function (j) {
        $("lPass").value = "";
        var auth = { token: j.token, bid: j.bid || body.bid, agent_id: j.agent_id || body.agent_id, name: j.name || body.agent_id, expires_at: j.expires_at };
        lsSet(AUTH_KEY, auth);
        lsSet("kefu.agent.last", { bid: auth.bid, agent_id: auth.agent_id });
        start(auth);
      })
      .catch(function (e) { $("loginErr").textContent = e.message || String(e); return e.wait || 0; })
      .then(function (wait) {
        setTimeout(function () { $("loginBtn").disabled = false; }, (wait || 0) * 1000);
      });
  }

  function logout() {
    lsSet(AUTH_KEY, null);
    showLogin("");
  }

  function start(auth) {
    S = fresh(auth);
    rowCache.clear();
    $("loginView").hidden = true;
    $("appView").hidden = false;
    $("meName").textContent = auth.name || auth.agent_id;
    $("meAvatar").textContent = Array.from(auth.name || auth.agent_id || "?")[0].toUpperCase();
    sock = new K.Socket(K.wsUrl(), { onOpen: wsLogin, onMessage: onMessage, onState: onConnState });
    sock.connect();
    renderAll();
    loadFaces();
  }

  /* Agents' avatars (the settings dialog changes them: it says so with "kefu:profile"). */
  function loadFaces() {
    if (!S) return;
    var auth = S.auth;
    K.fetchProfile(auth.bid).then(function (p) {
      if (!p || !S || S.auth !== auth) return;
      faces = p.faces;
      depts = Array.isArray(p.departments) ? p.departments : [];
      var me = faces.get(auth.agent_id), box = $("meAvatar");
      K.clear(box);
      if (me && me.avatar) box.appendChild(K.el("img", { src: me.avatar, alt: "" }));
      else box.textContent = Array.from(auth.name || auth.agent_id || "?")[0].toUpperCase();
      rowCache.clear();
      renderAll();
    });
  }
  document.addEventListener("kefu:profile", loadFaces);

  function onConnState(state, info) {
    if (!S) return;
    if (state !== "online") S.loggedIn = false;
    var p = $("connPill");
    p.dataset.state = state;
    p.textContent = state === "online" ? t("conn_online")
      : state === "connecting" ? t(info.attempt ? "conn_reconnecting" : "conn_connecting")
      : t("conn_offline", { s: Math.max(1, Math.round(info.delay / 1000)) });
  }

  function wsLogin() {
    var resume = [];
    S.streams.forEach(function (st, id) {
      var c = S.convs.get(id);
      if (st.loaded && c && c.state === "active") resume.push({ conv_id: id, last_seq: st.lastSeq });
    });
    var m = { method: "login", bid: S.auth.bid, customer_id: S.auth.agent_id, customer_name: S.auth.name, token: S.auth.token };
    if (resume.length) m.resume = resume;
    sock.send(m);
  }

  function stream(id) {
    var st = S.streams.get(id);
    if (!st) {
      st = new K.Stream(id, {
        changed: function (s) { if (S && s.convId === S.selected) renderPane(); },
        sync: function (c, s) { sock.send({ method: "sync", conv_id: c, last_seq: s }); }
      });
      S.streams.set(id, st);
    }
    return st;
  }

  /* ---------- conversation records ---------- */
  function upsertConv(c, state) {
    var r = S.convs.get(c.conv_id) || { conv_id: c.conv_id, unread: 0 };
    if (c.visitor) r.visitor = c.visitor;
    if (c.visitor_id && !r.visitor) r.visitor = { visitor_id: c.visitor_id, name: c.visitor_name || "", contact: c.contact };
    if (c.agent_id !== undefined) r.agent_id = c.agent_id;
    if (c.agent_name !== undefined) r.agent_name = c.agent_name;
    r.state = state || c.state || r.state;
    if (typeof c.unread === "number") r.unread = c.unread;
    if (c.last_message) r.last_message = c.last_message;
    if (typeof c.visitor_read_seq === "number") r.visitor_read_seq = Math.max(r.visitor_read_seq || 0, c.visitor_read_seq);
    if (typeof c.agent_read_seq === "number") r.agent_read_seq = Math.max(r.agent_read_seq || 0, c.agent_read_seq);
    if (c.queued_at) r.queued_at = c.queued_at;
    if (c.dept_id !== undefined) r.dept_id = c.dept_id;
    if (c.created_at) r.created_at = c.created_at;
    if (typeof c.last_seq === "number") {
      r.last_seq = Math.max(r.last_seq || 0, c.last_seq);
      var st = stream(c.conv_id);
      if (!st.loaded && c.last_seq > st.lastSeq && st.held.size === 0) st.lastSeq = c.last_seq;
    }
    S.convs.set(c.conv_id, r);
    return r;
  }

  function applyLists(conversations, queue) {
    var seen = new Set();
    (conversations || []).forEach(function (c) { upsertConv(c, "active"); seen.add(c.conv_id); });
    // Conversations we thought active but the server no longer lists went away while we were offline.
    S.convs.forEach(function (r) { if (r.state === "active" && !seen.has(r.conv_id)) r.state = "closed"; });
    applyQueue(queue || []);
  }
  /* The queue comes whole (login, conversations) or one line at a time (queue_update names
   * its department, null for the line without one): a line replaces only its own entries. */
  function applyQueue(queue, dept) {
    var line = dept !== undefined;
    var ids = [];
    queue.forEach(function (q) {
      var r = upsertConv(q, "queued");
      r.queue_pos = q.position;
      ids.push(q.conv_id);
    });
    var inQ = new Set(ids);
    var kept = [];
    S.queueOrder.forEach(function (id) {
      var r = S.convs.get(id);
      if (line && r && (r.dept_id || null) !== dept && !inQ.has(id)) { kept.push(id); return; }
      if (r && r.state === "queued" && !inQ.has(id)) r.state = r.agent_id === S.auth.agent_id ? "active" : "gone";
    });
    ids = kept.concat(ids);
    ids.sort(function (a, b) {
      var x = S.convs.get(a), y = S.convs.get(b);
      return ((x && x.queued_at) || 0) - ((y && y.queued_at) || 0) || a - b;
    });
    S.queueOrder = ids;
  }

  /* ---------- incoming ---------- */
  function onMessage(m) {
    if (!S) return;
    if (m.code) return onError(m);
    switch (m.method) {
      case "login":
        S.loggedIn = true;
        S.role = m.role || "agent";
        // admin.js and settings.js show what this role may use.
        document.dispatchEvent(new CustomEvent("kefu:login", { detail: { role: S.role, departments: m.departments || [] } }));
        S.colleagues.clear();
        (m.customer_list || []).forEach(function (a) { S.colleagues.set(String(a.customer_id), a.customer_name || String(a.customer_id)); });
        applyLists(m.conversations, m.queue);
        S.pending.forEach(function (p) { if (!p.failed) sendPending(p); });
        // After a page reload: reopen the conversation that was open, if it is still listed.
        if (S.selected == null) {
          var keep = lsGet(SEL_KEY);
          if (keep && keep.agent === S.auth.agent_id && S.convs.has(keep.conv_id)) { select(keep.conv_id); return; }
        }
        if (S.selected != null) {
          var st = S.streams.get(S.selected), r = S.convs.get(S.selected);
          if (st && (!st.loaded || (r && r.state !== "active"))) loadNewest(S.selected);
        }
        return renderAll();
      case "login_push":
        S.colleagues.set(String(m.customer_id), m.customer_name || String(m.customer_id));
        return renderColleagues();
      case "logout_push":
        S.colleagues.delete(String(m.customer_id));
        return renderColleagues();
      case "visitor_presence":
        S.convs.forEach(function (r) { if (r.visitor && r.visitor.visitor_id === m.visitor_id) r.visitor.online = !!m.online; });
        return renderAll();
      case "conversations":
        applyLists(m.conversations, m.queue);
        return renderAll();
      case "queue_update": {
        var before = new Set(S.queueOrder);
        applyQueue(m.queue || [], "dept_id" in m ? (m.dept_id || null) : undefined);
        if (S.queueOrder.some(function (id) { return !before.has(id); })) alertNew(t("tab_queue"), "");
        return renderAll();
      }
      case "assigned": {
        if (!m.conv) return;
        var r = upsertConv(m.conv, "active");
        r.note = null;
        S.queueOrder = S.queueOrder.filter(function (id) { return id !== m.conv.conv_id; });
        var st = stream(m.conv.conv_id);
        if (S.selected === m.conv.conv_id || !st.loaded) { if (S.selected === m.conv.conv_id) loadNewest(m.conv.conv_id); }
        alertNew(visitorName(r), (r.last_message && r.last_message.text) || "");
        return renderAll();
      }
      case "unassigned": {
        var u = S.convs.get(m.conv_id);
        if (u) {
          // Transferred is not closed: the visitor is still being helped, by a colleague.
          u.transferredTo = m.reason !== "transferred" ? null
            : m.to ? (S.colleagues.get(String(m.to)) || String(m.to)) : t("transfer_dept_line");
          u.state = u.transferredTo != null ? "transferred" : "closed";
          u.note = u.transferredTo != null ? t("transferred_to", { name: u.transferredTo }) : null;
        }
        return renderAll();
      }
      case "message": return onLive(m);
      case "ack": return onAck(m);
      case "history": {
        var kind = S.histReq.get(m.conv_id);
        S.histReq.delete(m.conv_id);
        $("moreBtn").textContent = t("load_more");
        stream(m.conv_id).page(m.messages || [], !!m.has_more, kind !== "older");
        markRead();
        return renderList();
      }
      case "sync": {
        var s2 = stream(m.conv_id);
        if (s2.syncReply(m) === "reload" && m.conv_id === S.selected) loadNewest(m.conv_id);
        markRead();
        return renderList();
      }
      case "unread": {
        var ur = S.convs.get(m.conv_id);
        if (ur && typeof m.unread === "number") { ur.unread = m.unread; renderList(); }
        return;
      }
      case "typing":
        if (m.from === "visitor" && m.conv_id === S.selected) showTyping(!!m.typing);
        return;
      case "read":
        if (m.by === "visitor") {
          var rr = S.convs.get(m.conv_id);
          if (rr) { rr.visitor_read_seq = Math.max(rr.visitor_read_seq || 0, m.seq); if (m.conv_id === S.selected) renderPane(); }
        }
        return;
      // The rest (notes, ratings: desk.js) is for the console's extensions.
      default: document.dispatchEvent(new CustomEvent("kefu:push", { detail: m })); return;
    }
  }

  function onError(e) {
    if (e.method === "login" && e.code === "10002") { lsSet(AUTH_KEY, null); showLogin(t("login_failed")); return; }
    if (e.client_msg_id) {
      var p = S.pending.find(function (x) { return x.cid === e.client_msg_id; });
      if (p) {
        if (e.code === "10008" || e.code === "10009") setTimeout(function () { if (S && S.loggedIn) sendPending(p); }, 2000);
        else p.failed = e.msg || e.code;
        renderPane();
      }
    }
    var known = { "10006": 1, "10010": 1, "10008": 1 };
    toast(t("err_prefix") + (known[e.code] ? t("err_" + e.code) : (e.msg || e.code)));
    if (e.method === "claim" || e.method === "transfer" || e.method === "close") sock.send({ method: "conversations" });
  }

  function onLive(m) {
    var r = S.convs.get(m.conv_id) || upsertConv({ conv_id: m.conv_id }, "active");
    var st = stream(m.conv_id);
    if (m.client_msg_id) dropPending(m.client_msg_id);
    var isNew = st.push(m);
    if (!r.last_message || (m.seq >= (r.last_message.seq || 0))) r.last_message = m;
    if (m.kind === "event" && m.event === "closed") r.state = "closed";
    if (isNew && m.from === "visitor") {
      showTyping(false);
      var viewing = m.conv_id === S.selected && document.visibilityState === "visible";
      if (viewing) markRead();
      else {
        if (m.seq > (r.agent_read_seq || 0)) r.unread = (r.unread || 0) + 1;
        alertNew(visitorName(r), m.kind === "image" ? t("image_msg") : (m.text || ""));
      }
    }
    renderList();
  }

  function onAck(a) {
    var p = S.pending.find(function (x) { return x.cid === a.client_msg_id; });
    if (!p) return;
    dropPending(p.cid);
    var msg = { conv_id: a.conv_id, seq: a.seq, from: "agent", sender_id: S.auth.agent_id, sender_name: S.auth.name, kind: p.kind, text: p.text, url: p.url, ts: a.ts || p.ts, client_msg_id: p.cid };
    stream(a.conv_id).push(msg);
    var r = S.convs.get(a.conv_id);
    if (r && (!r.last_message || a.seq >= (r.last_message.seq || 0))) r.last_message = msg;
    renderList();
  }
  function dropPending(cid) {
    var i = S.pending.findIndex(function (x) { return x.cid === cid; });
    if (i >= 0) { S.pending.splice(i, 1); renderPane(); }
  }

  function markRead() {
    var id = S.selected;
    if (id == null || document.visibilityState !== "visible" || !S.loggedIn) return;
    var r = S.convs.get(id), st = S.streams.get(id);
    if (!r || !st || r.state !== "active" || r.agent_id !== S.auth.agent_id) { if (r && r.state !== "active") r.unread = 0; return; }
    var seq = st.lastSeq;
    if (seq > (r.agent_read_seq || 0) || r.unread) {
      r.agent_read_seq = Math.max(r.agent_read_seq || 0, seq);
      r.unread = 0;
      if (seq > 0) sock.send({ method: "read", conv_id: id, seq: seq });
      renderConvList();
    }
  }
  document.addEventListener("visibilitychange", function () {
    if (!S) return;
    if (document.visibilityState === "visible") { markRead(); sock && sock.kick(); updateTitle(); }
  });
  window.addEventListener("online", function () { if (sock) sock.kick(); });

  /* Sound + desktop notification for new messages when not looking at them. */
  function alertNew(title, body) {
    var hidden = document.visibilityState !== "visible";
    if (prefs.sound) K.beep();
    if (hidden && prefs.notify && window.Notification && Notification.permission === "granted") {
      try { new Notification(t("notify_new", { who: title }), { body: String(body).slice(0, 120), tag: "kefu" }); } catch (e) {}
    }
    updateTitle();
  }

  function showTyping(on) {
    clearTimeout(S.typingTimer);
    $("typing").hidden = !on;
    if (on) S.typingTimer = setTimeout(function () { $("typing").hidden = true; }, 6000);
  }

  /* ---------- actions ---------- */
  function loadNewest(id) {
    if (S.histReq.get(id)) return;
    S.histReq.set(id, "newest");
    sock.send({ method: "history", conv_id: id, limit: 30 });
  }
  function loadOlder() {
    var id = S.selected, st = S.streams.get(id);
    if (id == null || !st || S.histReq.get(id)) return;
    S.histReq.set(id, "older");
    st.pagedOlder = true;
    $("moreBtn").textContent = t("loading");
    sock.send({ method: "history", conv_id: id, before_seq: st.minSeq() || st.lastSeq + 1, limit: 30 });
  }
  function select(id) {
    S.selected = id;
    lsSet(SEL_KEY, id == null ? null : { agent: S.auth.agent_id, conv_id: id });
    S.closeArmed = null;
    $("typing").hidden = true;
    var st = stream(id), r = S.convs.get(id);
    if (!st.loaded || (r && r.state !== "active")) loadNewest(id);
    markRead();
    renderAll();
    K.toBottom($("chatBody"));
    if (r && r.state === "active") $("input").focus();
  }

  function queueSend(kind, text, url) {
    var id = S.selected;
    if (id == null) return;
    var p = { cid: K.newId("a"), conv_id: id, kind: kind, text: text, url: url, ts: Date.now(), failed: null };
    S.pending.push(p);
    if (S.loggedIn) sendPending(p);
    renderPane();
    K.toBottom($("chatBody"));
  }
  function sendPending(p) {
    p.failed = null;
    var m = { method: "send", conv_id: p.conv_id, client_msg_id: p.cid, kind: p.kind };
    if (p.kind === "image") m.url = p.url; else m.text = p.text;
    sock.send(m);
  }
  function sendText() {
    var input = $("input"), text = input.value;
    if (!text.trim()) return;
    input.value = ""; autoGrow(); stopTyping();
    queueSend("text", text);
    input.focus();
  }
  function sendImage(file) {
    if (!file) return;
    if (file.size > 2 * 1024 * 1024) { toast(t("upload_too_big")); return; }
    K.upload(file, S.auth.token).then(function (url) { queueSend("image", null, url); })
      .catch(function (e) { toast(K.uploadError(e)); });
  }
  function stopTyping() {
    clearTimeout(S.typingIdle);
    if (S.lastTypingSent && S.typingConv != null && S.loggedIn) sock.send({ method: "typing", conv_id: S.typingConv, typing: false });
    S.lastTypingSent = 0;
  }
  function onTypingInput() {
    var r = S.convs.get(S.selected);
    if (!r || r.state !== "active" || !S.loggedIn) return;
    var now = Date.now();
    if (now - S.lastTypingSent > 3000 || S.typingConv !== S.selected) {
      S.lastTypingSent = now; S.typingConv = S.selected;
      sock.send({ method: "typing", conv_id: S.selected, typing: true });
    }
    clearTimeout(S.typingIdle);
    S.typingIdle = setTimeout(stopTyping, 4000);
  }

  var toastTimer = null;
  function toast(text) {
    var n = $("toast");
    n.textContent = text; n.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { n.hidden = true; }, 3500);
  }

  /* ---------- rendering ---------- */
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
      row.addEventListener("click", function () { var p = S.pending.find(function (x) { return x.cid === m.cid; }); if (p && S.loggedIn) { sendPending(p); renderPane(); } });
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

  function autoGrow() {
    var i = $("input");
    i.style.height = "auto";
    i.style.height = Math.min(120, i.scrollHeight) + "px";
  }

  function renderPrefs() {
    $("soundBtn").setAttribute("aria-pressed", String(!!prefs.sound));
    $("notifyBtn").setAttribute("aria-pressed", String(!!prefs.notify && window.Notification && Notification.permission === "granted"));
  }

  /* ---------- wiring ---------- */
  function init() {
    K.applyI18n();
    var langBtns = [$("langBtn"), $("loginLang")];
    langBtns.forEach(function (b) {
      b.textContent = t("switch_lang");
      b.addEventListener("click", function () {
        K.setLang(K.lang === "zh" ? "en" : "zh");
        langBtns.forEach(function (x) { x.textContent = t("switch_lang"); });
        rowCache.clear();
        if (S) { renderAll(); onConnState($("connPill").dataset.state || "connecting", { attempt: 1, delay: 1000 }); }
        else document.title = t("console_title");
      });
    });
    $("loginForm").addEventListener("submit", doLogin);
    $("logoutBtn").addEventListener("click", logout);
    $("soundBtn").addEventListener("click", function () { prefs.sound = !prefs.sound; lsSet(PREF_KEY, prefs); K.unlockAudio(); if (prefs.sound) K.beep(); renderPrefs(); });
    $("notifyBtn").addEventListener("click", function () {
      if (!window.Notification) return;
      if (Notification.permission === "granted") { prefs.notify = !prefs.notify; lsSet(PREF_KEY, prefs); renderPrefs(); return; }
      Notification.requestPermission().then(function (p) { prefs.notify = p === "granted"; lsSet(PREF_KEY, prefs); renderPrefs(); });
    });
    document.querySelectorAll(".tab").forEach(function (b) {
      b.addEventListener("click", function () { if (S) { S.tab = b.dataset.tab; renderConvList(); } });
    });
    $("backBtn").addEventListener("click", function () { S.selected = null; lsSet(SEL_KEY, null); renderAll(); });
    $("claimBtn").addEventListener("click", function () { if (S.selected != null) sock.send({ method: "claim", conv_id: S.selected }); });
    $("transferBtn").addEventListener("click", function () {
      var to = $("transferSel").value;
      if (!to) { $("transferSel").focus(); return; }
      if (to.indexOf("dept:") === 0) sock.send({ method: "transfer", conv_id: S.selected, dept: to.slice(5) });
      else sock.send({ method: "transfer", conv_id: S.selected, to: to });
    });
    $("closeBtn").addEventListener("click", function () {
      if (S.closeArmed === S.selected) { S.closeArmed = null; sock.send({ method: "close", conv_id: S.selected }); renderPane(); return; }
      var id = S.selected;
      S.closeArmed = id; renderPane();
      setTimeout(function () { if (S && S.closeArmed === id) { S.closeArmed = null; renderPane(); } }, 4000);
    });
    $("sendBtn").addEventListener("click", sendText);
    var input = $("input");
    input.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); sendText(); }
    });
    input.addEventListener("input", function () { autoGrow(); onTypingInput(); });
    input.addEventListener("paste", function (e) { var f = K.pastedImage(e); if (f) { e.preventDefault(); sendImage(f); } });
    var picker = K.emojiPicker(function (e) { K.insertAtCaret(input, e); });
    $("emojiWrap").appendChild(picker);
    $("emojiBtn").addEventListener("click", function () { picker.hidden = !picker.hidden; });
    document.addEventListener("click", function (e) {
      if (!picker.hidden && !picker.contains(e.target) && e.target !== $("emojiBtn")) picker.hidden = true;
    });
    $("imageBtn").addEventListener("click", function () { $("fileInput").click(); });
    $("fileInput").addEventListener("change", function () { sendImage(this.files[0]); this.value = ""; });
    $("moreBtn").addEventListener("click", loadOlder);
    renderPrefs();

    var auth = lsGet(AUTH_KEY);
    if (auth && auth.token && (!auth.expires_at || auth.expires_at > Date.now() + 60000)) start(auth);
    else showLogin("");
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
  window.kefuConsole = function () { return S; };
})();
