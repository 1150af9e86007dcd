#!/usr/bin/env node
/*
 * sockjs-client 1.6.1 in Node against a sockhop deployment.
 *
 *   node node_client.js JOB.json RESULT.json
 *
 * JOB: { mode: "echo", url, transport, messages, pingPong, timeoutMs, sessionPrefix }
 *   or { mode: "broadcast", url, transports: [a, b], messages, timeoutMs, sessionPrefix }
 *   or { mode: "live", url, transports, rate, timeoutMs, maxMs, drainMs, sessionPrefix,
 *        readyPath, stopPath }: writes readyPath (the session ids) once every client
 *        is open, sends until stopPath exists (see web/runner.js runLive).
 * RESULT: what web/runner.js reports, plus the sockjs-client version. The exit
 * status is 0 whenever a result was written, whatever it says: judging is the
 * Python test's job.
 */
'use strict';

const fs = require('fs');
const path = require('path');

const SockJS = require('sockjs-client');
const sockjsVersion = require('sockjs-client/package.json').version;
const runner = require(path.join(__dirname, 'web', 'runner.js'));
const control = require(path.join(__dirname, 'control.js'));

async function main() {
  const [jobPath, resultPath] = process.argv.slice(2);
  if (!jobPath || !resultPath) {
    throw new Error('usage: node node_client.js JOB.json RESULT.json');
  }
  const job = JSON.parse(fs.readFileSync(jobPath, 'utf8'));
  const opts = Object.assign({ SockJS: SockJS }, job);
  let result;
  if (job.mode === 'echo') {
    result = await runner.runEcho(opts);
  } else if (job.mode === 'broadcast') {
    result = await runner.runBroadcast(opts);
  } else if (job.mode === 'live') {
    opts.onReady = (sessionIds) => control.writeJsonAtomically(job.readyPath, sessionIds);
    opts.stopped = control.untilFileExists(job.stopPath);
    result = await runner.runLive(opts);
  } else {
    throw new Error('unknown mode ' + job.mode);
  }
  result.sockjsVersion = sockjsVersion;
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
