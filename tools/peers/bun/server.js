// Bun peer of kefu for benchmarks: `echo` mode returns every message to its sender; `chat`
// mode speaks the workerman-chat subset, with room broadcast through Bun's uWebSockets
// pub/sub (one topic per room).
// Usage: bun server.js --port 8282 --mode echo|chat [--host 127.0.0.1] [--cert PEM --key PEM]
// [--compress] (with --cert and --key it serves wss:// through Bun.serve({ tls }); with
// --compress permessage-deflate is on, with Bun's defaults).

function parseArgs(argv) {
  const out = { port: 8282, mode: "echo", host: "127.0.0.1" };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    if (k === "--port") { out.port = Number(v); i++; }
    else if (k === "--mode") { out.mode = v; i++; }
    else if (k === "--host") { out.host = v; i++; }
    else if (k === "--cert") { out.cert = v; i++; }
    else if (k === "--key") { out.key = v; i++; }
    else if (k === "--compress") { out.compress = true; }
    else { console.error(`unknown argument ${k}`); process.exit(2); }
  }
  if (!["echo", "chat"].includes(out.mode) || !(out.port > 0 && out.port < 65536)) {
    console.error("usage: server.js --port P --mode echo|chat");
    process.exit(2);
  }
  return out;
}

const args = parseArgs(Bun.argv.slice(2));

// workerman-chat stamps messages with date('Y-m-d H:i:s'); format once per second.
let nowText = "";
let nowSecond = -1;
function timeText() {
  const s = Math.floor(Date.now() / 1000);
  if (s !== nowSecond) {
    nowSecond = s;
    const d = new Date(s * 1000);
    const p = (n) => String(n).padStart(2, "0");
    nowText = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }
  return nowText;
}

let nextId = 0;
const clients = new Map(); // client_id -> ws
const rooms = new Map();   // room_id -> Map(client_id -> name), for client_list
const topic = (room) => `room:${room}`;

function onChat(ws, message) {
  if (typeof message !== "string") return;
  let msg;
  try { msg = JSON.parse(message); } catch { ws.close(1003, "bad json"); return; }
  const st = ws.data;
  switch (msg.type) {
    case "pong":
      return;
    case "login": {
      if (msg.room_id === undefined || msg.room_id === null || st.room !== null) { ws.close(1008, "bad login"); return; }
      st.room = String(msg.room_id);
      st.name = String(msg.client_name ?? "");
      clients.set(st.id, ws);
      let members = rooms.get(st.room);
      if (!members) { members = new Map(); rooms.set(st.room, members); }
      const login = { type: "login", client_id: st.id, client_name: st.name, time: timeText() };
      // Published before subscribing, so the newcomer gets only its own copy below.
      server.publish(topic(st.room), JSON.stringify(login));
      members.set(st.id, st.name);
      ws.subscribe(topic(st.room));
      login.client_list = Object.fromEntries(members);
      ws.send(JSON.stringify(login));
      return;
    }
    case "say": {
      if (st.room === null) { ws.close(1008, "not logged in"); return; }
      const to = msg.to_client_id === undefined ? "all" : String(msg.to_client_id);
      const out = JSON.stringify({
        type: "say", from_client_id: st.id, from_client_name: st.name,
        to_client_id: to, content: String(msg.content ?? ""), time: timeText(),
      });
      if (to === "all") {
        server.publish(topic(st.room), out);
      } else {
        const target = clients.get(to);
        if (target) target.send(out);
        ws.send(out);
      }
      return;
    }
    default:
      return;
  }
}

function onChatClose(ws) {
  const st = ws.data;
  if (st.room === null) return;
  clients.delete(st.id);
  const members = rooms.get(st.room);
  members.delete(st.id);
  if (members.size === 0) { rooms.delete(st.room); return; }
  server.publish(topic(st.room), JSON.stringify({
    type: "logout", from_client_id: st.id, from_client_name: st.name, time: timeText(),
  }));
}

const tls = args.cert && args.key ? { cert: Bun.file(args.cert), key: Bun.file(args.key) } : undefined;
const server = Bun.serve({
  hostname: args.host,
  port: args.port,
  tls,
  fetch(req, srv) {
    const data = { id: (++nextId).toString(16).padStart(20, "0"), name: "", room: null };
    if (srv.upgrade(req, { data })) return;
    return new Response("kefu bun peer: WebSocket only\n", { status: 426 });
  },
  websocket: {
    perMessageDeflate: !!args.compress,
    maxPayloadLength: 16 * 1024 * 1024,
    idleTimeout: 960,
    message(ws, message) {
      if (args.mode === "echo") ws.send(message);
      else onChat(ws, message);
    },
    close(ws) {
      if (args.mode === "chat") onChatClose(ws);
    },
  },
});

console.error(`bun peer (${Bun.version}) ${args.mode} on ${tls ? "wss" : "ws"}://${args.host}:${args.port}/`);
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => { server.stop(true); process.exit(0); });
