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

  /* ---------- rendering (console-view.js) ---------- */
  var view = K.consoleView({
    S: function () { return S; }, faces: function () { return faces; }, depts: function () { return depts; },
    rowCache: rowCache, stream: function (id) { return stream(id); }, select: function (id) { select(id); },
    sendPending: function (p) { sendPending(p); }
  });
  var visitorName = view.visitorName, renderAll = view.renderAll, renderList = view.renderList;
  var renderColleagues = view.renderColleagues, renderConvList = view.renderConvList;
  var renderPane = view.renderPane, updateTitle = view.updateTitle;

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
