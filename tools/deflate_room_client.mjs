// Room broadcast with permessage-deflate for tools/tls_bench.py (`room-deflate` mode): N
// clients (Node `ws`, which offers permessage-deflate unless COMPRESS is 0) log in to one
// workerman-chat room; SENDERS of them each send RATE `say` messages per second for SECS
// seconds, a chat line of about SIZE bytes of Chinese and English text. Prints
// {"deliveries", "sent", "bytes_in", "extensions"} as JSON once every delivery arrived (or
// none for 3 s): `bytes_in` is what the clients' sockets read from the first send on
// (frames as sent on the wire, headers included).
//   node tools/deflate_room_client.mjs URL N SENDERS RATE SECS SIZE COMPRESS
import { createRequire } from "node:module";
const require = createRequire(import.meta.url);
const WebSocket = require("./peers/node/node_modules/ws");

const [url, n, senders, rate, secs, size, compress] = process.argv.slice(2);
const N = Number(n), SENDERS = Number(senders), RATE = Number(rate), SECS = Number(secs);
const SIZE = Number(size);
// A customer-service line: words repeat, as they do in real chat, but not one character.
const words = ["您好", "请问", "订单", "发货", "退款", "客服", "稍等", "谢谢", "order", "refund",
  "tracking number", "shipping", "please", "thank you", "today", "地址", "快递", "明天"];
let seed = 7;
function line(k) {
  let s = `#${k} `;
  while (Buffer.byteLength(s) < SIZE) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    s += words[seed % words.length] + (seed % 3 ? " " : "，");
  }
  return s;
}
const opts = { perMessageDeflate: compress !== "0" };
let deliveries = 0, sent = 0, loggedIn = 0, running = false, started = false, bytes0 = 0;
const socks = [];
for (let i = 0; i < N; i++) {
  const ws = new WebSocket(url, opts);
  socks.push(ws);
  ws.on("open", () => ws.send(JSON.stringify({ type: "login", room_id: "1", client_name: `c${i}` })));
  ws.on("message", (data) => {
    const m = JSON.parse(data);
    if (m.type === "login" && m.client_list && ++loggedIn === N) start();
    else if (m.type === "say" && started) deliveries++;
  });
  ws.on("error", (e) => { console.error(String(e)); process.exit(1); });
}
const bytesIn = () => socks.reduce((t, ws) => t + ws._socket.bytesRead, 0);
function start() {
  // The driver reads this line, then samples the server's CPU.
  console.error("open");
  bytes0 = bytesIn();
  running = started = true;
  const tick = 1000 / RATE;
  for (let s = 0; s < SENDERS; s++) {
    const ws = socks[s];
    const t = setInterval(() => {
      if (!running) { clearInterval(t); return; }
      ws.send(JSON.stringify({ type: "say", to_client_id: "all", content: line(sent++) }));
    }, tick);
  }
  setTimeout(() => {
    running = false;
    // Wait for every delivery (each sent line reaches all N clients, the sender included),
    // or until none arrived for 3 s (a lost delivery shows as deliveries < sent * N).
    let last = -1, still = 0;
    const check = setInterval(() => {
      if (deliveries >= sent * N || still >= 30) {
        clearInterval(check);
        console.log(JSON.stringify({
          deliveries, sent, bytes_in: bytesIn() - bytes0, extensions: socks[0].extensions,
        }));
        for (const ws of socks) ws.terminate();
        process.exit(0);
      }
      still = deliveries === last ? still + 1 : 0;
      last = deliveries;
    }, 100);
  }, SECS * 1000);
}
