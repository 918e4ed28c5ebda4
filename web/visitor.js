/* Visitor chat page: /chat/<bid>. Protocol: docs/kefu-protocol.md §4-5. */
"use strict";
(function () {
  var K = window.Kefu, t = K.t, $ = function (id) { return document.getElementById(id); };
  var params = new URLSearchParams(location.search);
  var bid = decodeURIComponent((location.pathname.split("/")[2] || "")).trim();
  if (!/^[A-Za-z0-9_.@-]{1,64}$/.test(bid)) bid = params.get("bid") || "demo";
  var embed = params.get("embed") === "1";
  var shopName = (params.get("name") || "").slice(0, 40);
  var TOKEN_KEY = "kefu.v.token." + bid, CONV_KEY = "kefu.v.conv." + bid, DEPT_KEY = "kefu.v.dept." + bid;
  /* The department: fixed by the site (the widget's data-department, ?dept=) and sent at
   * login, or picked here by the visitor and sent with the message that opens a chat. */
  var fixedDept = /^[A-Za-z0-9_.@-]{1,64}$/.test(params.get("dept") || "") ? params.get("dept") : null;
  /* In the widget, the host page's origin (the widget passes the page URL): the only origin
   * we post to and accept panel messages from. */
  var parentOrigin = null;
  if (embed) { try { parentOrigin = new URL(params.get("page") || "").origin; } catch (e) { parentOrigin = null; } }

  function lsGet(k) { try { return localStorage.getItem(k); } catch (e) { return null; } }
  function lsSet(k, v) { try { if (v == null) localStorage.removeItem(k); else localStorage.setItem(k, v); } catch (e) {} }

  var S = {
    token: lsGet(TOKEN_KEY),
    bid: bid,
    outOfHours: false,       // outside the business's working hours (visitor-desk.js)
    visitorId: null,
    loggedIn: false,
    agentsOnline: false,
    agentName: "",
    agentId: null,           // the open conversation's agent
    agentOnline: false,      // ... and whether it is online
    panelOpen: !embed,       // in the widget: its panel is open (the widget tells us)
    fatal: null,             // an error the visitor cannot fix (unknown business)
    streams: new Map(),      // conv_id -> K.Stream
    convState: new Map(),    // conv_id -> "queued"|"active"|"closed"
    agentRead: new Map(),    // conv_id -> seq read by the agent
    current: null,           // open conversation id
    pending: [],             // unacked sends: {cid, kind, text, url, ts, failed}
    histReq: new Map(),      // conv_id -> "newest"|"older" in flight
    waiting: null,           // {position, agents_online}
    closed: false,
    typingTimer: null,
    lastTypingSent: 0,
    typingIdle: null,
    leaveDone: false,
    unseen: 0,
    profile: null,           // the business's face (K.fetchProfile), once loaded
    delivered: new Map()     // conv_id -> highest own seq the conversation's agent was online for
  };
  var rowCache = new Map();

  var sock = new K.Socket(K.wsUrl(), {
    onOpen: login,
    onMessage: onMessage,
    onState: onConnState
  });

  /* ---------- connection ---------- */
  function onConnState(state, info) {
    S.loggedIn = S.loggedIn && state === "online";
    if (S.fatal) return;
    var n = $("connState");
    n.dataset.state = state;
    if (state === "online") n.textContent = "";
    else if (state === "connecting") n.textContent = t(info.attempt ? "conn_reconnecting" : "conn_connecting");
    else n.textContent = t("conn_offline", { s: Math.max(1, Math.round(info.delay / 1000)) });
    document.body.dataset.conn = state;
    renderChrome();
  }

  function login() {
    var resume = [];
    S.streams.forEach(function (st, id) { if (st.loaded) resume.push({ conv_id: id, last_seq: st.lastSeq }); });
    var m = {
      method: "visitor_login", bid: bid,
      page_url: (params.get("page") || (embed ? document.referrer : location.href) || "").slice(0, 1000),
      referrer: (params.get("ref") || (embed ? "" : document.referrer) || "").slice(0, 1000)
    };
    if (S.token) m.token = S.token;
    if (fixedDept) m.dept = fixedDept;
    if (resume.length) m.resume = resume;
    sock.send(m);
  }

  function stream(id) {
    var st = S.streams.get(id);
    if (!st) {
      st = new K.Stream(id, { changed: render, sync: function (c, s) { sock.send({ method: "sync", conv_id: c, last_seq: s }); } });
      S.streams.set(id, st);
    }
    return st;
  }

  function loadNewest(id) {
    if (S.histReq.get(id)) return;
    S.histReq.set(id, "newest");
    sock.send({ method: "history", conv_id: id, limit: 30 });
  }
  function loadOlder() {
    var ids = Array.from(S.streams.keys()).sort(function (a, b) { return a - b; });
    var id = ids[0];
    if (id == null) return;
    var st = S.streams.get(id);
    if (S.histReq.get(id)) return;
    S.histReq.set(id, "older");
    S.pagedOlder = true;
    $("moreBtn").textContent = t("loading");
    sock.send({ method: "history", conv_id: id, before_seq: st.minSeq() || st.lastSeq + 1, limit: 30 });
  }

  function setCurrent(conv) {
    S.current = conv.conv_id;
    lsSet(CONV_KEY, String(conv.conv_id));
    S.convState.set(conv.conv_id, conv.state);
    if (typeof conv.agent_read_seq === "number") S.agentRead.set(conv.conv_id, Math.max(S.agentRead.get(conv.conv_id) || 0, conv.agent_read_seq));
    if (conv.agent_name) S.agentName = conv.agent_name;
    S.agentId = conv.state === "active" ? conv.agent_id : null;
    S.closed = conv.state === "closed";
  }

  /* ---------- incoming ---------- */
  function onMessage(m) {
    if (m.code && !m.method) return onError(m);
    if (m.code) return onError(m);
    switch (m.method) {
      case "visitor_login": return onLogin(m);
      case "history": return onHistory(m);
      case "sync": return onSync(m);
      case "message": return onLive(m);
      case "ack": return onAck(m);
      case "waiting":
        S.waiting = { position: m.position, agents_online: m.agents_online };
        S.agentsOnline = !!m.agents_online;
        if (m.conv_id) { S.current = m.conv_id; S.convState.set(m.conv_id, "queued"); lsSet(CONV_KEY, String(m.conv_id)); }
        return renderChrome();
      case "assigned":
        S.waiting = null; S.agentsOnline = true; S.closed = false;
        S.agentId = m.agent_id || null; S.agentOnline = true;
        S.agentName = m.agent_name || m.agent_id || "";
        if (m.conv_id) { S.current = m.conv_id; S.convState.set(m.conv_id, "active"); }
        renderChrome(); return render();
      case "agent_presence":
        S.agentsOnline = !!m.agents_online;
        if (m.agent_id && m.agent_id === S.agentId) S.agentOnline = !!m.online;
        renderChrome(); return render();
      case "typing":
        if (m.from === "agent") { showTyping(!!m.typing); agentSeen(); }
        return;
      case "read":
        if (m.by === "agent") { S.agentRead.set(m.conv_id, Math.max(S.agentRead.get(m.conv_id) || 0, m.seq)); agentSeen(); render(); }
        return;
      default: return;
    }
  }

  function onError(e) {
    if (e.method === "visitor_login" && e.code === "10002" && S.token) {
      // Expired or foreign token: start again as a new anonymous visitor.
      S.token = null; lsSet(TOKEN_KEY, null); login(); return;
    }
    if (e.method === "visitor_login" && e.code === "10002") return fatal(e);
    // Over a per-address limit: say so, and try again when the server says it may pass.
    var wait = e.retry_after > 0 ? e.retry_after : 0;
    if (e.method === "visitor_login" && wait) {
      flash(t("rate_limited", { n: wait }), wait * 1000);
      setTimeout(function () { if (!S.loggedIn) login(); }, wait * 1000);
      return;
    }
    if (e.client_msg_id) {
      var p = S.pending.find(function (x) { return x.cid === e.client_msg_id; });
      if (p) {
        if (wait) {
          p.failed = t("rate_limited", { n: wait });
          flash(p.failed, wait * 1000);
          setTimeout(function () { if (S.loggedIn && p.failed) sendPending(p); render(); }, wait * 1000);
        } else if (e.code === "10008" || e.code === "10009") setTimeout(function () { if (S.loggedIn) sendPending(p); }, 2000);
        else p.failed = e.msg || e.code;
        render();
      }
    }
  }

  /* Anonymous login refused: the business id is wrong (a typo in the link or the widget's
   * data-bid). Retrying cannot help, so say so to the visitor and to the site's developer. */
  function fatal(e) {
    S.fatal = t("bad_bid", { bid: bid });
    sock.stop();
    S.pending.forEach(function (p) { p.failed = S.fatal; });
    if (window.console) console.error("kefu: cannot start a chat with business \"" + bid + "\": " + (e.msg || e.code) + " (check the /chat/<bid> link or the widget's data-bid)");
    if (embed && parentOrigin && window.parent !== window) {
      try { window.parent.postMessage({ kefu: "error", bid: bid, msg: String(e.msg || e.code) }, parentOrigin); } catch (x) {}
    }
    document.body.dataset.conn = "failed";
    $("connState").textContent = "";
    renderChrome(); render();
  }

  /* The business's face, once per page: after the first login, so a wrong bid (which
   * the login reports) does not also log a failed request. */
  var profileAsked = false;
  function loadProfile() {
    if (profileAsked) return;
    profileAsked = true;
    K.fetchProfile(bid).then(function (p) {
      if (!p) return;
      S.profile = p;
      K.applyBrand(p.color);
      notifyParent();
      renderChrome(); render();
    });
  }

  function onLogin(r) {
    S.loggedIn = true;
    loadProfile();
    if (r.token) { S.token = r.token; lsSet(TOKEN_KEY, r.token); }
    S.visitorId = r.visitor_id;
    S.agentsOnline = !!r.agents_online;
    S.agentOnline = !!r.agent_online;
    if (r.conv) {
      setCurrent(r.conv);
      if (r.conv.state === "queued") S.waiting = S.waiting || { position: null, agents_online: S.agentsOnline };
      else S.waiting = null;
      var st = stream(r.conv.conv_id);
      if (!st.loaded) loadNewest(r.conv.conv_id);
    } else {
      S.waiting = null;
      var old = parseInt(lsGet(CONV_KEY) || "", 10);
      if (S.current != null && S.streams.has(S.current)) {
        S.closed = true; // our conversation was closed while we were away
      } else if (old > 0 && !S.streams.has(old)) {
        S.closed = true; stream(old); loadNewest(old);
      }
    }
    // Retry everything not acknowledged yet (idempotent by client_msg_id).
    S.pending.forEach(function (p) { if (!p.failed) sendPending(p); });
    renderChrome(); render();
  }

  function onHistory(r) {
    var kind = S.histReq.get(r.conv_id);
    S.histReq.delete(r.conv_id);
    $("moreBtn").textContent = t("load_more");
    stream(r.conv_id).page(r.messages || [], !!r.has_more, kind !== "older");
    afterNewMessages();
  }
  function onSync(r) {
    var st = stream(r.conv_id);
    if (st.syncReply(r) === "reload") loadNewest(r.conv_id);
    afterNewMessages();
  }

  function onLive(m) {
    var st = S.streams.get(m.conv_id);
    if (!st) {
      st = stream(m.conv_id);
      if (m.seq === 1) { st.loaded = true; st.hasMore = false; }
      else { loadNewest(m.conv_id); }
    }
    if (m.client_msg_id) dropPending(m.client_msg_id);
    if (m.conv_id !== S.current && (S.current == null || m.conv_id > S.current)) {
      S.current = m.conv_id; lsSet(CONV_KEY, String(m.conv_id)); S.closed = false;
    }
    if (m.kind === "event") {
      if (m.event === "closed") { S.closed = true; S.convState.set(m.conv_id, "closed"); S.waiting = null; S.agentId = null; }
      if (m.event === "requeued" || (m.args && m.args.type === "transferred_dept")) { S.convState.set(m.conv_id, "queued"); S.agentId = null; }
      if (m.event === "assigned" || m.event === "transferred") S.closed = false;
    }
    var isNew = st.push(m);
    if (isNew && m.from === "agent") {
      showTyping(false); agentSeen();
      // Not looking (tab hidden, or the widget's panel closed): a badge, the title, a chime.
      if (!seeing()) { S.unseen++; K.chime(); }
      notifyParent();
    }
    renderChrome();
    afterNewMessages();
  }

  /* Presence comes as agent_presence pushes; an agent's message, typing or read receipt is
   * proof enough too (one that raced ahead of its push). */
  function agentSeen() {
    if (!S.agentsOnline) { S.agentsOnline = true; renderChrome(); }
  }

  function onAck(a) {
    var p = S.pending.find(function (x) { return x.cid === a.client_msg_id; });
    if (!p) return;
    dropPending(p.cid);
    var st = S.streams.get(a.conv_id);
    if (!st) { st = stream(a.conv_id); if (a.seq === 1) { st.loaded = true; st.hasMore = false; } else loadNewest(a.conv_id); }
    if (S.current == null || a.conv_id > S.current) { S.current = a.conv_id; lsSet(CONV_KEY, String(a.conv_id)); }
    S.closed = false;
    st.push({ conv_id: a.conv_id, seq: a.seq, from: "visitor", sender_id: S.visitorId, kind: p.kind, text: p.text, url: p.url, ts: a.ts || p.ts, client_msg_id: p.cid });
    render();
  }
  function dropPending(cid) {
    var i = S.pending.findIndex(function (x) { return x.cid === cid; });
    if (i >= 0) { S.pending.splice(i, 1); render(); }
  }

  /* Read means seen: the page is visible and, in the widget, its panel is open (inside the
   * iframe the page stays "visible" while the panel is closed). */
  function seeing() { return document.visibilityState === "visible" && S.panelOpen; }

  /* Tell the agent what we have read (only while the visitor can see it). */
  function afterNewMessages() {
    if (!seeing() || S.current == null || !S.loggedIn) return;
    var st = S.streams.get(S.current);
    if (!st) return;
    var lastAgent = 0;
    st.msgs.forEach(function (m) { if (m.from !== "visitor" && m.seq > lastAgent) lastAgent = m.seq; });
    if (lastAgent > (st.readSent || 0)) { st.readSent = lastAgent; sock.send({ method: "read", conv_id: S.current, seq: lastAgent }); }
    if (S.unseen) { S.unseen = 0; renderChrome(); }
    notifyParent();
  }
  document.addEventListener("visibilitychange", function () { afterNewMessages(); if (document.visibilityState === "visible") sock.kick(); });
  window.addEventListener("online", function () { sock.kick(); });

  function showTyping(on) {
    clearTimeout(S.typingTimer);
    $("typing").hidden = !on;
    if (on) S.typingTimer = setTimeout(function () { $("typing").hidden = true; }, 6000);
  }

  /* ---------- sending ---------- */
  function queueSend(kind, text, url) {
    var p = { cid: K.newId("v"), kind: kind, text: text, url: url, ts: Date.now(), failed: null };
    S.pending.push(p);
    if (S.loggedIn) sendPending(p);
    render();
    K.toBottom($("chatBody"));
  }
  function sendPending(p) {
    p.failed = null;
    var m = { method: "send", client_msg_id: p.cid, kind: p.kind };
    var picked = !fixedDept && $("deptSel") && $("deptSel").value;
    if (picked) m.dept = picked;
    if (p.kind === "image") m.url = p.url; else m.text = p.text;
    sock.send(m);
  }
  /* The department of the next conversation, for a message left offline too (visitor-desk.js). */
  S.dept = function () { return fixedDept || ($("deptSel") && $("deptSel").value) || null; };
  function sendText() {
    var input = $("input");
    var text = input.value;
    if (!text.trim()) return;
    input.value = "";
    autoGrow();
    stopTyping();
    queueSend("text", text);
    input.focus();
  }
  function sendImage(file) {
    if (!file) return;
    if (file.size > 2 * 1024 * 1024) { flash(t("upload_too_big")); return; }
    var go = function () {
      if (!S.token) { setTimeout(go, 500); return; }
      K.upload(file, S.token).then(function (url) { queueSend("image", null, url); })
        .catch(function (e) { flash(K.uploadError(e)); });
    };
    go();
  }
  function stopTyping() {
    clearTimeout(S.typingIdle);
    if (S.lastTypingSent) { S.lastTypingSent = 0; if (S.current != null && S.loggedIn) sock.send({ method: "typing", typing: false }); }
  }
  function onTypingInput() {
    if (S.current == null || S.closed || !S.loggedIn) return;
    var now = Date.now();
    if (now - S.lastTypingSent > 3000) { S.lastTypingSent = now; sock.send({ method: "typing", typing: true }); }
    clearTimeout(S.typingIdle);
    S.typingIdle = setTimeout(stopTyping, 4000);
  }

  var flashTimer = null;
  function flash(text, ms) {
    var b = $("banner");
    b.textContent = text; b.hidden = false; b.dataset.kind = "error";
    clearTimeout(flashTimer);
    flashTimer = setTimeout(renderChrome, Math.max(ms || 0, 3000));
  }

  /* ---------- rendering ---------- */
  /* The department picker: when the business has departments, the site fixed none, and no
   * conversation is open (the choice applies to the one the next message opens). */
  function renderDeptPick() {
    var depts = (S.profile && S.profile.departments) || [];
    var box = $("deptPick");
    if (!depts.length || fixedDept) { if (box) box.hidden = true; return; }
    if (!box) {
      var sel = K.el("select", { id: "deptSel", "aria-label": t("dept_pick") });
      depts.forEach(function (d) { sel.appendChild(K.el("option", { value: d.dept_id, text: d.name })); });
      var keep = lsGet(DEPT_KEY);
      if (keep && depts.some(function (d) { return d.dept_id === keep; })) sel.value = keep;
      sel.addEventListener("change", function () { lsSet(DEPT_KEY, sel.value); });
      box = K.el("div.dept-pick", { id: "deptPick" }, K.el("label", { "for": "deptSel", text: t("dept_pick") }), sel);
      var composer = document.querySelector("footer.composer");
      composer.parentNode.insertBefore(box, composer);
    }
    var st = S.convState.get(S.current);
    box.hidden = S.current != null && !S.closed && st !== "closed";
  }

  function renderChrome() {
    renderDeptPick();
    var active = S.convState.get(S.current) === "active" && !S.closed;
    // With an agent, its own presence; otherwise whether anyone of the business is online.
    var online = active && S.agentId ? S.agentOnline : S.agentsOnline && !S.outOfHours;
    // While disconnected we do not know: say nothing rather than "online".
    $("onlineDot").classList.toggle("on", online && S.loggedIn);
    $("onlineText").textContent = S.loggedIn ? t(online ? "agent_online" : "agent_offline") : "";
    document.body.classList.toggle("fatal", !!S.fatal);
    var name = displayName();
    $("shopName").textContent = name;
    var av = $("shopAvatar"), logo = S.profile && S.profile.logo;
    if (av.dataset.logo !== (logo || "")) {
      K.clear(av);
      if (logo) av.appendChild(K.el("img", { src: logo, alt: "" }));
      av.dataset.logo = logo || "";
    }
    if (!logo) av.textContent = Array.from(name)[0];
    document.body.classList.toggle("has-logo", !!logo);
    document.title = (S.unseen > 0 && !seeing() ? "(" + (S.unseen > 99 ? "99+" : S.unseen) + ") " : "") + name;
    // The business's texts: set as text, never as markup.
    $("leaveTitle").textContent = (S.profile && S.profile.leave_prompt) || t("leave_title");
    $("leaveHint").textContent = (S.profile && S.profile.offline) || t("leave_hint");
    var b = $("banner"), text = "", kind = "info";
    if (S.fatal) { text = S.fatal; kind = "error"; }
    else if (S.closed) text = t("closed_banner");
    else if (S.waiting && S.waiting.agents_online && S.waiting.position != null) {
      text = S.waiting.position <= 1 ? t("queue_next") : t("queue_pos", { n: S.waiting.position - 1 });
      kind = "queue";
    } else if (active && S.agentId && !S.agentOnline) text = t("agent_away", { name: S.agentName });
    else if (S.agentName && active) text = t("assigned", { name: S.agentName });
    else if (S.leaveDone && (!S.agentsOnline || S.outOfHours)) text = t("leave_done");
    b.textContent = text; b.hidden = !text; b.dataset.kind = kind;
    var offline = !S.agentsOnline || S.outOfHours;
    var leave = !S.fatal && offline && !S.leaveDone && S.loggedIn && !active;
    $("leaveForm").hidden = !leave;
    document.body.classList.toggle("leave-mode", leave);
    document.dispatchEvent(new CustomEvent("kefu:chrome"));
  }

  /* The header's name: the widget's data-name (or ?name=) if the site gives one, else the
   * window title its admin set, else the business's own name (unless it is just its id), else
   * "在线客服". */
  function displayName() {
    var own = S.profile && S.profile.name && S.profile.name !== bid ? S.profile.name : "";
    return shopName || (S.profile && S.profile.title) || own || t("shop_default");
  }
  function face(id) { return (S.profile && S.profile.faces.get(id)) || null; }

  function rowFor(m) {
    var mine = m.from === "visitor";
    var status = "", sk = "";
    if (m.pending) { status = m.failed ? t("send_failed") : t("sending"); sk = m.failed ? "failed" : "sending"; }
    else if (mine) {
      var r = S.agentRead.get(m.conv_id) || 0, d = S.delivered.get(m.conv_id) || 0;
      sk = m.seq <= r ? "read" : m.seq <= d ? "delivered" : "sent";
      status = t("st_" + sk);
    }
    var f = m.from === "agent" ? face(m.sender_id) : null;
    var key = m.key + "|" + sk + "|" + K.lang + "|" + (f ? f.avatar : "") + (m.welcome ? "|" + m.text + displayName() : "");
    var c = rowCache.get(key);
    if (c) return c;
    var row;
    if (m.welcome) {
      row = K.bubble(m, "left", { name: displayName(), role: "agent", avatar: S.profile.logo });
      row.classList.add("msg-welcome");
      delete row.dataset.seq; // not a stored message
    } else if (m.kind === "event") row = K.eventLine(m);
    else if (mine) row = K.bubble(m, "right", { name: "", role: "visitor", status: status, statusKind: sk });
    else row = K.bubble(m, "left", { name: m.sender_name || (f && f.name) || (m.from === "agent" ? t("agent") : t("system")), role: "agent", avatar: f && f.avatar });
    if (m.pending && m.failed) {
      row.classList.add("msg-failed");
      row.addEventListener("click", function () { var p = S.pending.find(function (x) { return x.cid === m.cid; }); if (p && S.loggedIn) { sendPending(p); render(); } });
    }
    row.dataset.key = m.key;
    rowCache.set(key, row);
    return row;
  }

  function render() {
    var items = [];
    var ids = Array.from(S.streams.keys()).sort(function (a, b) { return a - b; });
    // Delivered: the conversation's agent is connected, so its console has every message so
    // far (pushed live, or loaded when it reconnects).
    var cur = S.current != null && S.streams.get(S.current);
    if (cur && S.loggedIn && S.agentId && S.agentOnline && !S.closed) {
      S.delivered.set(S.current, Math.max(S.delivered.get(S.current) || 0, cur.lastSeq || 0));
    }
    // The business's welcome comes first, before the visitor's first message (and stays at
    // the top of the history).
    var oldest = ids.length ? S.streams.get(ids[0]) : null;
    if (S.profile && S.profile.welcome && !(oldest && oldest.hasMore)) {
      items.push({ key: "welcome", welcome: true, kind: "text", text: S.profile.welcome, from: "agent" });
    }
    ids.forEach(function (id) {
      S.streams.get(id).sorted().forEach(function (m) { m.key = id + ":" + m.seq; items.push(m); });
    });
    S.pending.forEach(function (p) {
      items.push({ key: "p:" + p.cid, cid: p.cid, pending: true, failed: p.failed, from: "visitor", kind: p.kind, text: p.text, url: p.url, ts: p.ts });
    });
    K.renderList($("msgList"), items, rowFor);
    var first = oldest;
    $("moreBtn").hidden = !(first && first.hasMore);
    // "No older messages" answers a "load more"; a conversation that fits on one page has
    // nothing to say about it.
    $("noMore").hidden = !(S.pagedOlder && first && first.hasMore === false && first.msgs.size > 0);
    if (rowCache.size > 2000) rowCache.clear();
  }

  function notifyParent() {
    if (embed && parentOrigin && window.parent !== window) {
      try { window.parent.postMessage({ kefu: "unread", n: S.unseen, color: (S.profile && S.profile.color) || "" }, parentOrigin); } catch (e) {}
    }
  }
  /* The widget says when its panel opens and closes; only our parent, from its origin. */
  window.addEventListener("message", function (e) {
    if (!embed || e.source !== window.parent || e.origin !== parentOrigin || !e.data || typeof e.data !== "object") return;
    if (e.data.kefu === "panel") { S.panelOpen = !!e.data.open; afterNewMessages(); renderChrome(); }
  });

  function autoGrow() {
    var i = $("input");
    i.style.height = "auto";
    i.style.height = Math.min(120, i.scrollHeight) + "px";
  }

  /* ---------- wiring ---------- */
  function init() {
    K.applyI18n();
    $("langBtn").textContent = t("switch_lang");
    $("langBtn").addEventListener("click", function () {
      K.setLang(K.lang === "zh" ? "en" : "zh");
      $("langBtn").textContent = t("switch_lang");
      rowCache.clear(); renderChrome(); render();
    });
    if (embed) {
      document.body.classList.add("embed");
      $("closeBtn").hidden = false;
      $("closeBtn").addEventListener("click", function () { if (parentOrigin) window.parent.postMessage({ kefu: "close" }, parentOrigin); });
    }
    $("sendBtn").addEventListener("click", sendText);
    var input = $("input");
    input.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); sendText(); }
    });
    input.addEventListener("input", function () { autoGrow(); onTypingInput(); });
    input.addEventListener("paste", function (e) {
      var f = K.pastedImage(e);
      if (f) { e.preventDefault(); sendImage(f); }
    });
    var picker = K.emojiPicker(function (e) { K.insertAtCaret(input, e); });
    $("emojiWrap").appendChild(picker);
    $("emojiBtn").addEventListener("click", function () { picker.hidden = !picker.hidden; });
    document.addEventListener("click", function (e) {
      if (!picker.hidden && !picker.contains(e.target) && e.target !== $("emojiBtn")) picker.hidden = true;
    });
    $("imageBtn").addEventListener("click", function () { $("fileInput").click(); });
    $("fileInput").addEventListener("change", function () { sendImage(this.files[0]); this.value = ""; });
    $("moreBtn").addEventListener("click", loadOlder);
    renderChrome(); render();
    sock.connect();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
  S.rerender = function () { renderChrome(); render(); };
  window.kefuVisitor = S; // for visitor-desk.js, debugging and tests
})();
