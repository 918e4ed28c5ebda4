'use strict';
// Node.js + `ws` peer of kefu for benchmarks: `echo` mode returns every message to its
// sender; `chat` mode speaks the workerman-chat subset (login / say / logout by room).
// Usage: node server.js --port 8282 --mode echo|chat [--host 127.0.0.1] [--compress]
// (--compress: permessage-deflate on, with ws' defaults)
const { WebSocketServer } = require('ws');

function parseArgs(argv) {
  const out = { port: 8282, mode: 'echo', host: '127.0.0.1' };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    if (k === '--port') { out.port = Number(v); i++; }
    else if (k === '--mode') { out.mode = v; i++; }
    else if (k === '--host') { out.host = v; i++; }
    else if (k === '--compress') { out.compress = true; }
    else { console.error(`unknown argument ${k}`); process.exit(2); }
  }
  if (!['echo', 'chat'].includes(out.mode) || !(out.port > 0 && out.port < 65536)) {
    console.error('usage: server.js --port P --mode echo|chat');
    process.exit(2);
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));

// workerman-chat stamps messages with date('Y-m-d H:i:s'); formatting once per second
// keeps that cost out of the per-message path, as any sane implementation would.
let nowText = '';
let nowSecond = -1;
function timeText() {
  const s = Math.floor(Date.now() / 1000);
  if (s !== nowSecond) {
    nowSecond = s;
    const d = new Date(s * 1000);
    const p = (n) => String(n).padStart(2, '0');
    nowText = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }
  return nowText;
}

const wss = new WebSocketServer({
  host: args.host,
  port: args.port,
  perMessageDeflate: !!args.compress,
  maxPayload: 16 * 1024 * 1024,
  clientTracking: false,
});

let nextId = 0;
const clients = new Map(); // client_id -> { ws, name, room }
const rooms = new Map();   // room_id -> Map(client_id -> ws)

// Serialises once and sends the same buffer to every target.
function sendAll(targets, obj) {
  const buf = Buffer.from(JSON.stringify(obj));
  for (const ws of targets) ws.send(buf, { binary: false });
}

function onChatMessage(ws, state, data, isBinary) {
  if (isBinary) return;
  let msg;
  try { msg = JSON.parse(data.toString()); } catch { ws.close(1003, 'bad json'); return; }
  switch (msg.type) {
    case 'pong':
      return;
    case 'login': {
      if (msg.room_id === undefined || msg.room_id === null || state.room !== null) { ws.close(1008, 'bad login'); return; }
      const room = String(msg.room_id);
      const name = String(msg.client_name ?? '');
      state.room = room;
      state.name = name;
      clients.set(state.id, state);
      let members = rooms.get(room);
      if (!members) { members = new Map(); rooms.set(room, members); }
      const login = { type: 'login', client_id: state.id, client_name: name, time: timeText() };
      sendAll(members.values(), login);
      members.set(state.id, ws);
      const list = {};
      for (const id of members.keys()) list[id] = clients.get(id).name;
      login.client_list = list;
      ws.send(JSON.stringify(login));
      return;
    }
    case 'say': {
      if (state.room === null) { ws.close(1008, 'not logged in'); return; }
      const to = msg.to_client_id === undefined ? 'all' : String(msg.to_client_id);
      const out = {
        type: 'say', from_client_id: state.id, from_client_name: state.name,
        to_client_id: to, content: String(msg.content ?? ''), time: timeText(),
      };
      if (to === 'all') {
        sendAll(rooms.get(state.room).values(), out);
      } else {
        const target = clients.get(to);
        const buf = Buffer.from(JSON.stringify(out));
        if (target) target.ws.send(buf, { binary: false });
        ws.send(buf, { binary: false });
      }
      return;
    }
    default:
      return;
  }
}

function onChatClose(state) {
  if (state.room === null) return;
  clients.delete(state.id);
  const members = rooms.get(state.room);
  members.delete(state.id);
  if (members.size === 0) { rooms.delete(state.room); return; }
  sendAll(members.values(), { type: 'logout', from_client_id: state.id, from_client_name: state.name, time: timeText() });
}

wss.on('connection', (ws) => {
  if (args.mode === 'echo') {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    return;
  }
  const state = { id: (++nextId).toString(16).padStart(20, '0'), name: '', room: null, ws };
  ws.on('message', (data, isBinary) => onChatMessage(ws, state, data, isBinary));
  ws.on('close', () => onChatClose(state));
  ws.on('error', () => {});
});

wss.on('listening', () => console.error(`node peer (${process.version}, ws) ${args.mode} on ws://${args.host}:${args.port}/`));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
