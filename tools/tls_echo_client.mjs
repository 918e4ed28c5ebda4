// Echo load for tools/tls_bench.py: C connections to URL, each sending a SIZE-byte text
// message and waiting for its echo (ping-pong) or keeping DEPTH messages in flight
// (pipelined), for SECS seconds. Prints {"messages": N, "connections": C} as JSON.
//   node tools/tls_echo_client.mjs URL CA C SECS SIZE DEPTH
import fs from "node:fs";
import { createRequire } from "node:module";
const require = createRequire(import.meta.url);
const WebSocket = require("./peers/node/node_modules/ws");

const [url, ca, c, secs, size, depth] = process.argv.slice(2);
const C = Number(c), SECS = Number(secs), DEPTH = Number(depth);
const payload = "x".repeat(Number(size));
const opts = url.startsWith("wss:") ? { ca: fs.readFileSync(ca), perMessageDeflate: false } : { perMessageDeflate: false };
let messages = 0, open = 0, running = false;
const socks = [];
for (let i = 0; i < C; i++) {
  const ws = new WebSocket(url, opts);
  socks.push(ws);
  ws.on("open", () => { if (++open === C) start(); });
  ws.on("message", () => { if (running) { messages++; ws.send(payload); } });
  ws.on("error", (e) => { console.error(String(e)); process.exit(1); });
}
function start() {
  console.error("open");
  // The driver reads this line, then samples the server's CPU.
  process.stderr.write("");
  running = true;
  for (const ws of socks) for (let k = 0; k < DEPTH; k++) ws.send(payload);
  setTimeout(() => {
    running = false;
    console.log(JSON.stringify({ messages, connections: C }));
    for (const ws of socks) ws.terminate();
    process.exit(0);
  }, SECS * 1000);
}
