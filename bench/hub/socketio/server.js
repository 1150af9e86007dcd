// Reference server for bench/hub/run.py: Socket.IO 4.8 with @socket.io/redis-adapter,
// shaped like the hub as the benchmarks use it. A client connects over websocket,
// emits "subscribe" with a room name and gets an ack once it has joined; POST
// /api/publish with X-API-Key and {"channel","data"} emits "pub" with the data to that
// room through the adapter (Redis PUBLISH for the other nodes; this node's sockets
// are served directly, as the adapter does).
'use strict';
const http = require('http');
const { Server } = require('socket.io');
const { createAdapter } = require('@socket.io/redis-adapter');
const { createClient } = require('redis');

const port = Number(process.env.PORT || 8082);
const apiKey = process.env.API_KEY || '';
const redisUrl = process.env.REDIS_URL || 'redis://127.0.0.1:6379';

function answer(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function main() {
  const pubClient = createClient({ url: redisUrl });
  const subClient = pubClient.duplicate();
  for (const client of [pubClient, subClient]) {
    client.on('error', (err) => process.stderr.write(`redis error: ${err}\n`));
  }
  await Promise.all([pubClient.connect(), subClient.connect()]);

  const httpServer = http.createServer((req, res) => {
    if (req.method !== 'POST' || req.url !== '/api/publish') {
      answer(res, 404, { error: { code: 104, message: 'not found' } });
      return;
    }
    if (req.headers['x-api-key'] !== apiKey) {
      answer(res, 401, { error: { code: 101, message: 'unauthorized' } });
      return;
    }
    const parts = [];
    req.on('data', (part) => parts.push(part));
    req.on('end', () => {
      let command;
      try {
        command = JSON.parse(Buffer.concat(parts).toString());
      } catch (err) {
        answer(res, 400, { error: { code: 107, message: 'bad request' } });
        return;
      }
      if (typeof command.channel !== 'string' || command.data === undefined) {
        answer(res, 200, { error: { code: 107, message: 'bad request' } });
        return;
      }
      io.to(command.channel).emit('pub', command.data);
      answer(res, 200, { result: {} });
    });
  });

  // Websocket only, as the benchmark's clients connect; no HTTP long-polling.
  const io = new Server(httpServer, {
    transports: ['websocket'],
    adapter: createAdapter(pubClient, subClient),
  });
  io.on('connection', (socket) => {
    socket.on('subscribe', (room, ack) => {
      socket.join(String(room));
      if (typeof ack === 'function') ack('ok');
    });
  });

  httpServer.listen(port, '127.0.0.1', () => process.stdout.write(`listening ${port}\n`));
}

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => process.exit(0));
}
main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
