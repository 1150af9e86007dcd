// Reference server for bench/run.py: sockjs-node 0.3.24 with /echo and /broadcast
// shaped like sockhop's example services (echo response_limit 4096; broadcast
// writes every message to every open connection).
'use strict';
const http = require('http');
const sockjs = require('sockjs');

const port = Number(process.env.PORT || 8081);
const heartbeatMs = Number(process.env.HEARTBEAT_DELAY_MS || 25000);
const quiet = { log: () => {} };

const echo = sockjs.createServer({ ...quiet, response_limit: 4096, heartbeat_delay: heartbeatMs });
echo.on('connection', (conn) => {
  conn.on('data', (message) => conn.write(message));
});

const broadcast = sockjs.createServer({ ...quiet, heartbeat_delay: heartbeatMs });
const open = new Set();
broadcast.on('connection', (conn) => {
  open.add(conn);
  conn.on('data', (message) => {
    for (const other of open) other.write(message);
  });
  conn.on('close', () => open.delete(conn));
});

const server = http.createServer();
echo.installHandlers(server, { prefix: '/echo' });
broadcast.installHandlers(server, { prefix: '/broadcast' });
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${port}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => process.exit(0));
}
