/* Visitor page: working hours, the leave-a-message form and the rating of a closed
 * conversation (docs/web.md "Offline and ratings"). visitor.js keeps its state in
 * window.kefuVisitor and says "kefu:chrome" whenever it redraws its chrome. */
"use strict";
(function () {
  var K = window.Kefu, $ = function (id) { return document.getElementById(id); };
  var I = window.KEFU_I18N;
  Object.assign(I.zh, {
    leave_name: "您的称呼（可选）", leave_contact: "联系方式（手机或邮箱）", leave_need_contact: "请留下手机或邮箱",
    rate_title: "请为本次服务评分", rate_comment: "还有什么想说的？（可选）", rate_submit: "提交评价", rate_thanks: "感谢您的评价！"
  });
  Object.assign(I.en, {
    leave_name: "Your name (optional)", leave_contact: "Phone or email", leave_need_contact: "Please leave a phone number or an email",
    rate_title: "How did we do?", rate_comment: "Anything to add? (optional)", rate_submit: "Send rating", rate_thanks: "Thank you for your rating!"
  });
  var t = K.t;
  var S = window.kefuVisitor;
  if (!S) return;
  var RATED_KEY = "kefu.v.rated." + S.bid;

  function post(path, body) {
    return fetch(path, {
      method: "POST",
      headers: { Authorization: "Bearer " + S.token, "Content-Type": "application/json" },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) { return { status: r.status, body: j }; });
    });
  }

  /* ---------- working hours ---------- */
  var hoursTimer = null;
  function loadHours() {
    clearTimeout(hoursTimer);
    fetch("/api/hours?bid=" + encodeURIComponent(S.bid)).then(function (r) { return r.ok ? r.json() : null; }).then(function (j) {
      if (!j) return;
      var was = S.outOfHours;
      S.outOfHours = !j.open;
      if (was !== S.outOfHours) S.rerender();
      // Look again when it changes (and at least every few hours: the business may edit them).
      var wait = typeof j.next_change === "number" ? j.next_change - Date.now() + 1000 : 6 * 3600 * 1000;
      hoursTimer = setTimeout(loadHours, Math.max(5000, Math.min(wait, 6 * 3600 * 1000)));
    }).catch(function () { hoursTimer = setTimeout(loadHours, 60000); });
  }

  /* ---------- leave a message ---------- */
  function leave() {
    var text = $("leaveText").value.trim(), contact = $("leaveContact").value.trim(), name = $("leaveName").value.trim();
    $("leaveErr").textContent = "";
    if (!contact) { $("leaveErr").textContent = t("leave_need_contact"); $("leaveContact").focus(); return; }
    if (!text) { $("leaveText").focus(); return; }
    if (!S.token) return;
    $("leaveSubmit").disabled = true;
    // The department goes with it, as with a first message: its agents find it in their line.
    var body = { name: name, contact: contact, message: text }, dept = S.dept && S.dept();
    if (dept) body.dept = dept;
    post("/api/offline", body).then(function (r) {
      $("leaveSubmit").disabled = false;
      if (r.status !== 200) { $("leaveErr").textContent = (r.body && r.body.msg) || ("HTTP " + r.status); return; }
      $("leaveText").value = "";
      S.leaveDone = true;
      S.rerender();
    }).catch(function (e) { $("leaveSubmit").disabled = false; $("leaveErr").textContent = e.message || String(e); });
  }

  /* ---------- rating ---------- */
  function rated() { try { return JSON.parse(localStorage.getItem(RATED_KEY) || "[]"); } catch (e) { return []; } }
  function markRated(id) {
    var r = rated().filter(function (x) { return x !== id; }).concat([id]).slice(-50);
    try { localStorage.setItem(RATED_KEY, JSON.stringify(r)); } catch (e) {}
  }
  var card = null, score = 0, thanksFor = null;
  function buildCard() {
    var row = K.el("div.rate-stars", { role: "radiogroup" });
    for (var i = 1; i <= 5; i++) {
      (function (n) {
        row.appendChild(K.el("button.rate-star", { type: "button", role: "radio", "aria-checked": "false", "aria-label": String(n), dataset: { score: String(n) }, text: "☆",
          on: { click: function () { score = n; paint(); } } }));
      })(i);
    }
    card = K.el("section.rate-card", { id: "rateCard", hidden: true },
      K.el("div.leave-title", { "data-i18n": "rate_title", text: t("rate_title") }),
      row,
      K.el("textarea", { id: "rateComment", rows: "2", maxlength: "500", "data-i18n-ph": "rate_comment", placeholder: t("rate_comment") }),
      K.el("div.leave-err", { id: "rateErr", role: "alert" }),
      K.el("div.leave-actions", null, K.el("button.send-btn", { type: "button", id: "rateSubmit", "data-i18n": "rate_submit", text: t("rate_submit"), on: { click: submit } })));
    $("leaveForm").parentNode.insertBefore(card, $("leaveForm"));
  }
  function paint() {
    Array.prototype.forEach.call(card.querySelectorAll(".rate-star"), function (b) {
      var on = Number(b.dataset.score) <= score;
      b.textContent = on ? "★" : "☆";
      b.setAttribute("aria-checked", String(Number(b.dataset.score) === score));
    });
    $("rateSubmit").disabled = score < 1;
  }
  function submit() {
    var id = S.current;
    if (id == null || score < 1) return;
    $("rateSubmit").disabled = true;
    post("/api/rating", { conv_id: id, score: score, comment: $("rateComment").value.trim() }).then(function (r) {
      // 409: rated already (from another tab): done as well.
      if (r.status === 200 || r.status === 409) { markRated(id); thanksFor = id; showCard(); return; }
      $("rateErr").textContent = (r.body && r.body.msg) || ("HTTP " + r.status);
      $("rateSubmit").disabled = false;
    }).catch(function (e) { $("rateErr").textContent = e.message || String(e); $("rateSubmit").disabled = false; });
  }
  function showCard() {
    if (!card) buildCard();
    var id = S.current;
    if (thanksFor != null && thanksFor === id && S.closed) {
      K.clear(card);
      card.appendChild(K.el("div.rate-thanks", { id: "rateThanks", text: t("rate_thanks") }));
      card.hidden = false;
      return;
    }
    var open = S.closed && id != null && S.loggedIn && rated().indexOf(id) < 0;
    if (open && card.dataset.conv !== String(id)) {
      card.dataset.conv = String(id); score = 0; $("rateComment").value = ""; $("rateErr").textContent = ""; paint();
    }
    card.hidden = !open;
  }
  var hoursAsked = false;
  document.addEventListener("kefu:chrome", function () {
    // Only once logged in: an unknown business gets no further request (its page says so).
    if (S.loggedIn && !hoursAsked) { hoursAsked = true; loadHours(); }
    if (thanksFor != null && (thanksFor !== S.current || !S.closed)) { thanksFor = null; if (card) { card.remove(); card = null; } }
    showCard();
  });

  $("leaveSubmit").addEventListener("click", leave);
  S.rerender();
})();
