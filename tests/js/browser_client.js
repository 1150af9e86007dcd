#!/usr/bin/env node
/*
 * sockjs-client 1.6.1 in Debian's Chromium (headless, driven by playwright-core;
 * no browser is downloaded) against a sockhop deployment.
 *
 *   node browser_client.js JOB.json RESULT.json
 *
 * JOB: {
 *   chromium: "/usr/bin/chromium",
 *   messages: [...],                       default messages of every run
 *   runs: [{ id, pageUrl, mode: "echo", url, transport, pingPong, timeoutMs, sessionPrefix }
 *        | { id, pageUrl, mode: "broadcast", url, transports, messages, timeoutMs, sessionPrefix }
 *        | { id, pageUrl, mode: "live", url, transports, rate, timeoutMs, maxMs, drainMs,
 *            sessionPrefix, readyPath, stopPath }
 *        | { id, pageUrl (web/hub.html), mode: "hub-scenario" | "hub-stream" | "hub-live", timeoutMs,
 *            ...the env of web/hub_runner.js's runScenario / runStream }],
 *   askDir: where hub runs ask the test (control.js ask),
 *   parallel: how many runs at once, each in its own tab (default 1)
 * }
 * A live run writes readyPath once its clients are open and sends until stopPath
 * exists (see web/runner.js runLive).
 * Each run gets a fresh page (tab) that loads pageUrl (web/index.html) and
 * calls web/runner.js there. RESULT is rewritten after every run, so a driver
 * killed on timeout still leaves the runs it finished:
 *   { finished: bool, runs: { id: result + userAgent, console, pageErrors, failedRequests } }
 */
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const control = require(path.join(__dirname, 'control.js'));

const MAX_LOG_LINES = 200;

function chromiumArgs() {
  return [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-proxy-server',
  ];
}

function pushBounded(list, line) {
  if (list.length < MAX_LOG_LINES) {
    list.push(line.length > 2000 ? line.slice(0, 2000) + '...' : line);
  }
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(what + ': no answer from the page after ' + ms + ' ms')), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function runOne(context, job, run) {
  const page = await context.newPage();
  const diagnostics = { console: [], pageErrors: [], failedRequests: [] };
  page.on('console', (msg) => pushBounded(diagnostics.console, msg.type() + ': ' + msg.text()));
  page.on('pageerror', (err) => pushBounded(diagnostics.pageErrors, String(err && err.stack ? err.stack : err)));
  page.on('requestfailed', (req) => {
    const failure = req.failure();
    pushBounded(diagnostics.failedRequests,
      req.method() + ' ' + req.url().slice(0, 300) + ' ' + (failure ? failure.errorText : ''));
  });
  try {
    await page.goto(run.pageUrl, { waitUntil: 'load', timeout: 15000 });
    await page.waitForFunction(() => !!(window.SockJS && window.SockhopRunner), null, { timeout: 10000 });
    if (HUB_RUNS[run.mode]) {
      return Object.assign(await runHub(page, job, run), diagnostics);
    }
    let budgetMs = run.timeoutMs;
    if (run.mode === 'live') {
      await page.exposeFunction('sockhopLiveReady',
        (sessionIds) => control.writeJsonAtomically(run.readyPath, sessionIds));
      control.untilFileExists(run.stopPath).then(
        () => page.evaluate(() => window.sockhopLiveStop()).catch(() => {}));
      budgetMs = run.timeoutMs + run.maxMs + run.drainMs;
    }
    const args = {
      mode: run.mode,
      url: run.url,
      transport: run.transport,
      transports: run.transports,
      messages: run.messages || job.messages,
      pingPong: run.pingPong || 0,
      timeoutMs: run.timeoutMs,
      sessionPrefix: run.sessionPrefix,
      rate: run.rate,
      maxMs: run.maxMs,
      drainMs: run.drainMs,
    };
    const evaluation = page.evaluate(async (a) => {
      const opts = Object.assign({ SockJS: window.SockJS }, a);
      let result;
      if (a.mode === 'live') {
        opts.onReady = window.sockhopLiveReady;
        opts.stopped = new Promise((resolve) => { window.sockhopLiveStop = resolve; });
        result = await window.SockhopRunner.runLive(opts);
      } else if (a.mode === 'broadcast') {
        result = await window.SockhopRunner.runBroadcast(opts);
      } else {
        result = await window.SockhopRunner.runEcho(opts);
      }
      result.sockjsVersion = window.SockJS.version;
      result.origin = window.location.origin;
      result.userAgent = navigator.userAgent;
      return result;
    }, args);
    const result = await withTimeout(evaluation, budgetMs + 10000, run.id);
    return Object.assign(result, diagnostics);
  } catch (err) {
    return Object.assign({ error: 'driver: ' + (err && err.message ? err.message : String(err)) }, diagnostics);
  } finally {
    await page.close().catch(() => {});
  }
}

// Hub runs (web/hub.html): mode -> the web/hub_runner.js function the page calls.
const HUB_RUNS = { 'hub-scenario': 'runScenario', 'hub-stream': 'runStream', 'hub-live': 'runLive' };

/*
 * A centrifuge-js run in the page. The page asks the test through the driver
 * (control.ask in the job's askDir); everything else in `run` is the runner's env.
 */
async function runHub(page, job, run) {
  await page.waitForFunction(() => !!(window.Centrifuge && window.HubRunner), null, { timeout: 10000 });
  await page.exposeFunction('hubAsk',
    (what, args, timeoutMs) => control.ask(job.askDir, what, args, timeoutMs));
  const env = Object.assign({}, run, { runner: HUB_RUNS[run.mode] });
  const evaluation = page.evaluate(async (e) => {
    const full = Object.assign({}, e, {
      Centrifuge: window.Centrifuge,
      SockJS: window.SockJS,
      WebSocket: null,
      ask: window.hubAsk,
    });
    const result = await window.HubRunner[e.runner](full);
    result.sockjsVersion = window.SockJS.version;
    result.origin = window.location.origin;
    result.userAgent = navigator.userAgent;
    return result;
  }, env);
  return withTimeout(evaluation, run.timeoutMs + 10000, run.id);
}

async function main() {
  const [jobPath, resultPath] = process.argv.slice(2);
  if (!jobPath || !resultPath) {
    throw new Error('usage: node browser_client.js JOB.json RESULT.json');
  }
  const job = JSON.parse(fs.readFileSync(jobPath, 'utf8'));
  const output = { finished: false, runs: {} };
  const save = () => fs.writeFileSync(resultPath, JSON.stringify(output));
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockhop-chromium-'));
  let context = null;
  try {
    // A persistent context on a fresh directory is how playwright takes --user-data-dir.
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: job.chromium,
      headless: true,
      args: chromiumArgs(),
      timeout: 30000,
    });
    save();
    // job.parallel tabs at a time (default one): each takes the next run not started.
    const pending = job.runs.slice();
    const tab = async () => {
      while (pending.length > 0) {
        const run = pending.shift();
        output.runs[run.id] = await runOne(context, job, run);
        save();
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, job.parallel || 1) }, tab));
    output.finished = true;
    save();
  } finally {
    if (context) {
      await context.close().catch(() => {});
    }
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err && err.stack ? err.stack : err);
    process.exit(2);
  },
);
