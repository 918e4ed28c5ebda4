/* Console: the business settings dialog (what visitors see: name, window title, colour, the
 * launcher's side, logo, welcome and offline messages, the leave-a-message heading, the agent's
 * own avatar). POST /api/business/settings with the agent's
 * token; the server checks every field again (docs/web.md "Look and feel"). The business's
 * fields are for its admins: a plain agent sees (and sends) only its own name and avatar. */
"use strict";
(function () {
  var K = window.Kefu, t = K.t, $ = function (id) { return document.getElementById(id); };
  var draft = null; // {logo, avatar} chosen in this dialog (URLs of our uploads, "" removed)
  var admin = false; // the console's login says so ("kefu:login")

  /* The rows of the business's fields. */
  function businessRows() {
    return [$("sName").closest("label"), $("sTitle").closest("label"), $("sColorPick").closest(".set-row"),
      $("sPosition").closest(".set-row"), $("sLogoBtn").closest(".set-row"), $("sWelcome").closest("label"),
      $("sOffline").closest("label"), $("sLeavePrompt").closest("label")];
  }

  function auth() { try { return JSON.parse(localStorage.getItem("kefu.agent.auth") || "null"); } catch (e) { return null; } }
  function say(text, kind) { var m = $("sMsg"); m.textContent = text || ""; m.dataset.kind = kind || ""; }

  function preview(id, url, name, role) {
    var box = $(id);
    K.clear(box);
    var u = K.safeUploadUrl(url);
    if (u) box.appendChild(K.el("img", { src: u, alt: "" }));
    else box.textContent = (Array.from(String(name || "").trim())[0] || t(role === "agent" ? "avatar_agent" : "avatar_visitor")).toUpperCase();
  }

  function setColor(c) {
    var v = K.cleanColor(c);
    $("sColor").value = v;
    $("sColorPick").value = v || "#1677ff";
  }

  function open() {
    var a = auth();
    if (!a) return;
    draft = { logo: null, avatar: null };
    say("");
    businessRows().forEach(function (r) { r.hidden = !admin; });
    $("settingsView").hidden = false;
    K.fetchProfile(a.bid).then(function (p) {
      if (!p) { say(t("err_prefix") + "profile", "error"); return; }
      var me = p.faces.get(a.agent_id) || {};
      $("sName").value = p.name;
      setColor(p.color);
      $("sWelcome").value = p.welcome;
      $("sOffline").value = p.offline;
      $("sTitle").value = p.title;
      $("sPosition").value = p.position;
      $("sLeavePrompt").value = p.leave_prompt;
      $("sAgentName").value = me.name || a.name || a.agent_id;
      draft.current = { logo: p.logo || "", avatar: me.avatar || "" };
      preview("sLogoPrev", p.logo, p.name, "agent");
      preview("sAvatarPrev", me.avatar, a.name || a.agent_id, "agent");
      (admin ? $("sName") : $("sAgentName")).focus();
    });
  }
  function close() { $("settingsView").hidden = true; }

  function pick(fileInput, field, prevId) {
    var a = auth(), f = fileInput.files[0];
    fileInput.value = "";
    if (!a || !f) return;
    say(t("loading"));
    K.upload(f, a.token).then(function (url) {
      draft[field] = url;
      preview(prevId, url, "", "agent");
      say("");
    }).catch(function (e) { say(K.uploadError(e), "error"); });
  }

  function save(ev) {
    ev.preventDefault();
    var a = auth();
    if (!a) return;
    var color = $("sColor").value.trim();
    if (color && !K.cleanColor(color)) { say(t("set_color") + ": #rrggbb", "error"); $("sColor").focus(); return; }
    var body = admin ? {
      name: $("sName").value, title: $("sTitle").value, color: color, position: $("sPosition").value,
      welcome: $("sWelcome").value, offline: $("sOffline").value, leave_prompt: $("sLeavePrompt").value
    } : {};
    if (admin && draft.logo !== null) body.logo = draft.logo;
    if (draft.avatar !== null) body.avatar = draft.avatar;
    if ($("sAgentName").value.trim()) body.agent_name = $("sAgentName").value;
    $("sSave").disabled = true;
    fetch("/api/business/settings", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Authorization": "Bearer " + a.token },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (!r.ok) throw new Error(j.msg || ("HTTP " + r.status));
        say(t("set_saved"), "ok");
        draft.logo = null; draft.avatar = null;
        document.dispatchEvent(new CustomEvent("kefu:profile"));
      });
    }).catch(function (e) { say(t("err_prefix") + (e.message || e), "error"); })
      .then(function () { $("sSave").disabled = false; });
  }

  function init() {
    if (!$("settingsBtn")) return;
    document.addEventListener("kefu:login", function (e) { admin = !!(e.detail && e.detail.role === "admin"); });
    $("settingsBtn").addEventListener("click", open);
    $("sClose").addEventListener("click", close);
    $("settingsView").addEventListener("click", function (e) { if (e.target === $("settingsView")) close(); });
    document.addEventListener("keydown", function (e) { if (e.key === "Escape" && !$("settingsView").hidden) close(); });
    $("settingsForm").addEventListener("submit", save);
    $("sColorPick").addEventListener("input", function () { $("sColor").value = this.value; });
    $("sColor").addEventListener("input", function () { var c = K.cleanColor(this.value.trim()); if (c) $("sColorPick").value = c; });
    $("sColorReset").addEventListener("click", function () { setColor(""); });
    $("sLogoBtn").addEventListener("click", function () { $("sLogoFile").click(); });
    $("sAvatarBtn").addEventListener("click", function () { $("sAvatarFile").click(); });
    $("sLogoFile").addEventListener("change", function () { pick(this, "logo", "sLogoPrev"); });
    $("sAvatarFile").addEventListener("change", function () { pick(this, "avatar", "sAvatarPrev"); });
    $("sLogoClear").addEventListener("click", function () { draft.logo = ""; preview("sLogoPrev", "", $("sName").value, "agent"); });
    $("sAvatarClear").addEventListener("click", function () { var a = auth() || {}; draft.avatar = ""; preview("sAvatarPrev", "", a.name || a.agent_id, "agent"); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
