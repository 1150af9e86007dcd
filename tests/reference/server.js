// Reference SockJS server for validating sockhop's conformance tests.
// Serves the protocol suite's four services with sockjs-node 0.3.24 on
// 127.0.0.1 only.
//
// Usage: node server.js PORT [--heartbeat-delay SECONDS] [--disconnect-delay SECONDS]
'use strict';

const http = require('http');
const sockjs = require('sockjs');

const args = process.argv.slice(2);
const port = Number.parseInt(args[0], 10);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node server.js PORT [--heartbeat-delay S] [--disconnect-delay S]');
  process.exit(2);
}
function seconds(flag, fallback) {
  const i = args.indexOf(flag);
  return i === -1 ? fallback : Math.round(Number.parseFloat(args[i + 1]) * 1000);
}

const common = {
  sockjs_url: '/sockjs-client.js',
  heartbeat_delay: seconds('--heartbeat-delay', 25000),
  disconnect_delay: seconds('--disconnect-delay', 5000),
  log: (severity, line) => { if (severity === 'error') console.error(line); },
};

function echoService(options) {
  const service = sockjs.createServer({ ...common, ...options });
  service.on('connection', (conn) => {
    conn.on('data', (message) => conn.write(message));
  });
  return service;
}

const close = sockjs.createServer(common);
close.on('connection', (conn) => conn.close(3000, 'Go away!'));

const services = {
  '/echo': echoService({ response_limit: 4096 }),
  '/close': close,
  '/disabled_websocket_echo': echoService({ websocket: false }),
  '/cookie_needed_echo': echoService({ jsessionid: true }),
};

const server = http.createServer((req, res) => {
  res.writeHead(404, { 'Content-Type': 'text/plain' });
  res.end('not found\n');
});
for (const [prefix, service] of Object.entries(services)) {
  service.installHandlers(server, { prefix });
}
server.listen(port, '127.0.0.1', () => console.error(`sockjs-node listening on 127.0.0.1:${port}`));
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
