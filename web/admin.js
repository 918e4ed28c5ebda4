/* Console: the business admin's settings area (docs/web.md "Admin"). Shown to agents whose
 * login says role "admin"; every change is POST /api/admin with the agent's token, and the
 * server checks every call again (docs/kefu-protocol.md §2.1). Everything typed by someone
 * is rendered as text only. */
"use strict";
(function () {
  var K = window.Kefu, $ = function (id) { return document.getElementById(id); };
  var I = window.KEFU_I18N;
  Object.assign(I.zh, {
    admin: "管理",
    admin_title: "商户管理",
    admin_agents: "客服",
    admin_depts: "部门",
    admin_routing: "分配策略",
    admin_routing_default: "默认（{p}）",
    least_busy: "最空闲优先",
    round_robin: "轮流分配",
    admin_id: "账号",
    admin_name: "名称",
    admin_role: "角色",
    role_admin: "管理员",
    role_agent: "客服",
    admin_max: "接待上限",
    admin_max_default: "默认 {n}",
    admin_password: "密码（至少 8 位）",
    admin_add_agent: "添加客服",
    admin_add_dept: "添加部门",
    admin_dept_id: "部门 ID",
    admin_dept_name: "部门名称",
    admin_save: "保存",
    admin_remove: "删除",
    admin_disable: "停用",
    admin_enable: "启用",
    admin_reset_pw: "重置密码",
    admin_new_pw: "新密码（至少 8 位）：",
    admin_disabled: "已停用",
    admin_online: "在线",
    admin_saved: "已保存",
    admin_confirm_remove: "删除部门 {name}？等待中的访客将转入公共队列。",
    admin_no_depts: "还没有部门：访客都进入同一个队列。"
  });
  Object.assign(I.en, {
    admin: "Admin",
    admin_title: "Business admin",
    admin_agents: "Agents",
    admin_depts: "Departments",
    admin_routing: "Routing",
    admin_routing_default: "Default ({p})",
    least_busy: "Least busy first",
    round_robin: "Round robin",
    admin_id: "ID",
    admin_name: "Name",
    admin_role: "Role",
    role_admin: "Admin",
    role_agent: "Agent",
    admin_max: "Max chats",
    admin_max_default: "default {n}",
    admin_password: "Password (8+ characters)",
    admin_add_agent: "Add agent",
    admin_add_dept: "Add department",
    admin_dept_id: "Department ID",
    admin_dept_name: "Department name",
    admin_save: "Save",
    admin_remove: "Remove",
    admin_disable: "Disable",
    admin_enable: "Enable",
    admin_reset_pw: "Reset password",
    admin_new_pw: "New password (8+ characters):",
    admin_disabled: "disabled",
    admin_online: "online",
    admin_saved: "Saved",
    admin_confirm_remove: "Remove department {name}? Its waiting visitors join the common queue.",
    admin_no_depts: "No departments yet: every visitor joins one queue."
  });
  var t = K.t;

  var view = null, state = null;
  /* Other parts of the console add their own sections to this dialog (canned replies,
   * working hours...): KefuAdmin.section("title_key", function (box, call) {...}) draws into
   * `box` each time the dialog opens; `call(body)` is POST /api/admin (a promise of the view). */
  var sections = [];
  window.KefuAdmin = {
    section: function (title, draw) { sections.push({ title: title, draw: draw }); },
    call: function (body) { return call(body); }
  };

  function auth() { try { return JSON.parse(localStorage.getItem("kefu.agent.auth") || "null"); } catch (e) { return null; } }
  function say(text, kind) { var m = $("aMsg"); if (!m) return; m.textContent = text || ""; m.dataset.kind = kind || ""; }

  /* One admin call; resolves with the new view (and redraws), rejects with the server's reason. */
  function call(body) {
    var a = auth();
    if (!a) return Promise.reject(new Error("login"));
    return fetch("/api/admin", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Authorization": "Bearer " + a.token },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (!r.ok) throw new Error(j.msg || ("HTTP " + r.status));
        state = j;
        render();
        return j;
      });
    });
  }
  function act(body, okText) {
    say(t("loading"));
    return call(body).then(function () { say(okText || t("admin_saved"), "ok"); })
      .catch(function (e) { say(t("err_prefix") + (e.message || e), "error"); });
  }

  function deptName(id) {
    var d = (state.departments || []).find(function (x) { return x.dept_id === id; });
    return d ? d.name : id;
  }

  function agentRow(a) {
    var name = K.el("input", { value: a.name, maxlength: "64", "aria-label": t("admin_name") });
    var role = K.el("select", { "aria-label": t("admin_role") },
      K.el("option", { value: "agent", text: t("role_agent") }),
      K.el("option", { value: "admin", text: t("role_admin") }));
    role.value = a.role;
    var max = K.el("input", { type: "number", min: "0", max: "1000", value: a.max == null ? "" : String(a.max),
      placeholder: t("admin_max_default", { n: state.default_max }), "aria-label": t("admin_max") });
    var boxes = (state.departments || []).map(function (d) {
      var cb = K.el("input", { type: "checkbox", value: d.dept_id });
      cb.checked = a.depts.indexOf(d.dept_id) >= 0;
      return K.el("label.a-check", null, cb, d.name);
    });
    var save = K.el("button.btn.btn-primary", { type: "button", text: t("admin_save"), on: { click: function () {
      var body = { op: "agent_update", agent_id: a.agent_id, name: name.value, role: role.value,
        max: max.value === "" ? null : parseInt(max.value, 10),
        depts: boxes.map(function (l) { return l.firstChild; }).filter(function (c) { return c.checked; }).map(function (c) { return c.value; }) };
      act(body);
    } } });
    var toggle = K.el("button.btn", { type: "button", text: a.disabled ? t("admin_enable") : t("admin_disable"), on: { click: function () {
      act({ op: "agent_disable", agent_id: a.agent_id, disabled: !a.disabled });
    } } });
    var reset = K.el("button.btn", { type: "button", text: t("admin_reset_pw"), on: { click: function () {
      var pw = window.prompt(t("admin_new_pw"));
      if (pw) act({ op: "agent_password", agent_id: a.agent_id, password: pw });
    } } });
    var tags = [];
    if (a.online) tags.push(K.el("span.a-tag.a-on", { text: t("admin_online") }));
    if (a.disabled) tags.push(K.el("span.a-tag.a-off", { text: t("admin_disabled") }));
    return K.el("div.a-agent", { dataset: { agent: a.agent_id } },
      K.el("div.a-head", null, K.el("b", { text: a.agent_id }), tags[0] || null, tags[1] || null),
      K.el("div.a-fields", null, name, role, max),
      boxes.length ? K.el("div.a-depts", null, ...boxes) : null,
      K.el("div.a-actions", null, save, toggle, reset));
  }

  function deptRow(d) {
    var name = K.el("input", { value: d.name, maxlength: "40", "aria-label": t("admin_dept_name") });
    return K.el("div.a-dept", { dataset: { dept: d.dept_id } },
      K.el("b", { text: d.dept_id }), name,
      K.el("button.btn", { type: "button", text: t("admin_save"), on: { click: function () { act({ op: "dept_save", dept_id: d.dept_id, name: name.value }); } } }),
      K.el("button.btn.btn-danger", { type: "button", text: t("admin_remove"), on: { click: function () {
        if (window.confirm(t("admin_confirm_remove", { name: d.name }))) act({ op: "dept_remove", dept_id: d.dept_id });
      } } }));
  }

  function render() {
    if (!view || !state) return;
    var agents = $("aAgents"), depts = $("aDepts");
    K.clear(agents); K.clear(depts);
    state.agents.forEach(function (a) { agents.appendChild(agentRow(a)); });
    if (!state.departments.length) depts.appendChild(K.el("p.muted", { text: t("admin_no_depts") }));
    state.departments.forEach(function (d) { depts.appendChild(deptRow(d)); });
    var sel = $("aRouting");
    K.clear(sel);
    sel.appendChild(K.el("option", { value: "", text: t("admin_routing_default", { p: t(state.default_routing) }) }));
    ["least_busy", "round_robin"].forEach(function (p) { sel.appendChild(K.el("option", { value: p, text: t(p) })); });
    sel.value = state.routing || "";
    var newDepts = $("aNewDepts");
    K.clear(newDepts);
    state.departments.forEach(function (d) {
      newDepts.appendChild(K.el("label.a-check", null, K.el("input", { type: "checkbox", value: d.dept_id }), deptName(d.dept_id)));
    });
  }

  function build() {
    var input = function (id, attrs) { return K.el("input", Object.assign({ id: id, autocomplete: "off" }, attrs || {})); };
    view = K.el("div.settings-wrap.admin-wrap", { id: "adminView", hidden: true, role: "dialog", "aria-modal": "true" },
      K.el("div.settings-card.admin-card", null,
        K.el("h2", { text: t("admin_title") }),
        K.el("h3", { text: t("admin_routing") }),
        K.el("div.set-row", null, K.el("select", { id: "aRouting", "aria-label": t("admin_routing") })),
        K.el("h3", { text: t("admin_depts") }),
        K.el("div.a-list", { id: "aDepts" }),
        K.el("form.a-add", { id: "aDeptForm" },
          input("aDeptId", { maxlength: "64", placeholder: t("admin_dept_id"), required: "required" }),
          input("aDeptName", { maxlength: "40", placeholder: t("admin_dept_name"), required: "required" }),
          K.el("button.btn.btn-primary", { type: "submit", text: t("admin_add_dept") })),
        K.el("h3", { text: t("admin_agents") }),
        K.el("div.a-list", { id: "aAgents" }),
        K.el("form.a-add", { id: "aAgentForm" },
          input("aAgentId", { maxlength: "64", placeholder: t("admin_id"), required: "required" }),
          input("aAgentName", { maxlength: "64", placeholder: t("admin_name"), required: "required" }),
          input("aAgentPw", { type: "password", minlength: "8", placeholder: t("admin_password"), required: "required", autocomplete: "new-password" }),
          K.el("select", { id: "aAgentRole", "aria-label": t("admin_role") },
            K.el("option", { value: "agent", text: t("role_agent") }),
            K.el("option", { value: "admin", text: t("role_admin") })),
          K.el("div.a-depts", { id: "aNewDepts" }),
          K.el("button.btn.btn-primary", { type: "submit", text: t("admin_add_agent") })),
        K.el("div.a-more", { id: "aMore" }),
        K.el("div.set-msg", { id: "aMsg", role: "status", "aria-live": "polite" }),
        K.el("div.set-actions", null, K.el("button.btn", { type: "button", id: "aClose", text: t("set_close") }))));
    document.body.appendChild(view);
    sections.forEach(function (sec) {
      var box = K.el("div.a-section");
      $("aMore").appendChild(K.el("h3", { text: t(sec.title) }));
      $("aMore").appendChild(box);
      try { sec.draw(box, call); } catch (e) { box.textContent = String(e && e.message || e); }
    });
    $("aClose").addEventListener("click", close);
    view.addEventListener("click", function (e) { if (e.target === view) close(); });
    $("aRouting").addEventListener("change", function () { act({ op: "routing", policy: this.value || null }); });
    $("aDeptForm").addEventListener("submit", function (e) {
      e.preventDefault();
      act({ op: "dept_save", dept_id: $("aDeptId").value.trim(), name: $("aDeptName").value })
        .then(function () { if ($("aMsg").dataset.kind === "ok") { $("aDeptId").value = ""; $("aDeptName").value = ""; } });
    });
    $("aAgentForm").addEventListener("submit", function (e) {
      e.preventDefault();
      var depts = Array.from($("aNewDepts").querySelectorAll("input:checked")).map(function (c) { return c.value; });
      act({ op: "agent_add", agent_id: $("aAgentId").value.trim(), name: $("aAgentName").value,
        password: $("aAgentPw").value, role: $("aAgentRole").value, depts: depts })
        .then(function () { if ($("aMsg").dataset.kind === "ok") { $("aAgentId").value = ""; $("aAgentName").value = ""; $("aAgentPw").value = ""; } });
    });
  }

  function open() {
    // Built anew each time: in the language the console shows now.
    if (view) view.remove();
    build();
    view.hidden = false;
    say(t("loading"));
    call({ op: "state" }).then(function () { say(""); }).catch(function (e) { say(t("err_prefix") + (e.message || e), "error"); });
  }
  function close() { if (view) view.hidden = true; }

  /* The console says who logged in (its login reply); the button is there for admins only. */
  function onLogin(e) {
    var admin = e.detail && e.detail.role === "admin";
    var b = $("adminBtn");
    if (!b && admin) {
      b = K.el("button.hbtn", { type: "button", id: "adminBtn", text: t("admin"), on: { click: open } });
      var anchor = $("settingsBtn");
      anchor.parentNode.insertBefore(b, anchor);
    }
    if (b) b.hidden = !admin;
    if (!admin) close();
  }
  document.addEventListener("kefu:login", onLogin);
  document.addEventListener("keydown", function (e) { if (e.key === "Escape" && view && !view.hidden) close(); });
})();
