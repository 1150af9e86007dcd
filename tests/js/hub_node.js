#!/usr/bin/env node
/*
 * centrifuge-js 5.7.4 in Node against the sockhop hub: natively over
 * websocket (the `ws` package as its WebSocket) and over SockJS
 * (sockjs-client 1.6.1 as its `sockjs`).
 *
 *   node hub_node.js JOB.json RESULT.json
 *
 * JOB: { mode: "scenario" | "stream" | "live" | "fallBehind", askDir, ...the run's env
 *        (see web/hub_runner.js) }. The script asks the test through files in
 * askDir (control.js ask). RESULT: what web/hub_runner.js reports, plus the
 * client versions. Exit status 0 whenever a result was written.
 */
'use strict';

const fs = require('fs');
const path = require('path');

const { Centrifuge } = require('centrifuge');
const SockJS = require('sockjs-client');
const WebSocket = require('ws');
const control = require(path.join(__dirname, 'control.js'));
const hubRunner = require(path.join(__dirname, 'web', 'hub_runner.js'));

const RUNS = {
  scenario: hubRunner.runScenario,
  stream: hubRunner.runStream,
  live: hubRunner.runLive,
  fallBehind: hubRunner.runFallBehind,
};

async function main() {
  const [jobPath, resultPath] = process.argv.slice(2);
  if (!jobPath || !resultPath) {
    throw new Error('usage: node hub_node.js JOB.json RESULT.json');
  }
  const job = JSON.parse(fs.readFileSync(jobPath, 'utf8'));
  const run = RUNS[job.mode];
  if (!run) {
    throw new Error('unknown mode ' + job.mode);
  }
  const env = Object.assign({}, job, {
    Centrifuge: Centrifuge,
    SockJS: SockJS,
    WebSocket: WebSocket,
    ask: (what, args, timeoutMs) => control.ask(job.askDir, what, args, timeoutMs),
  });
  const result = await run(env);
  // centrifuge's package.json is not among its exports: read the file.
  const manifest = path.join(__dirname, 'node_modules', 'centrifuge', 'package.json');
  result.centrifugeVersion = JSON.parse(fs.readFileSync(manifest, 'utf8')).version;
  result.sockjsVersion = require('sockjs-client/package.json').version;
  result.nodeVersion = process.version;
  fs.writeFileSync(resultPath, JSON.stringify(result));
}

main().then(
  // Exit at once: closed transports may leave keep-alive sockets behind.
  () => process.exit(0),
  (err) => {
    console.error(err && err.stack ? err.stack : err);
    process.exit(2);
  },
);
