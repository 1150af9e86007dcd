#!/usr/bin/env node
/*
 * The demo chat page (examples/chat) in Debian's Chromium, driven as a person would:
 * several pages, each in its own browser context, each joins with a name and a
 * transport, says one thing, reads what everyone said and who is online.
 *
 *   node chat_pages.js JOB.json RESULT.json
 *
 * JOB: { chromium, timeoutMs,
 *        pages: [{ id, url, name, transport, pick: "form" | "query", text }] }
 *   pick "form": the driver types the name and picks the transport in the form;
 *   pick "query": url already carries ?transport=&name=, the driver only presses Connect.
 * RESULT: { finished, error?, pages: { id: { selected, transportShown, state, messages:
 *           [{author, text}], online: [name], console, pageErrors, failedRequests, error? } } }
 * RESULT is written at every stage, so a driver stopped on timeout leaves what it saw.
 */
'use strict';

const fs = require('fs');
const path = require('path');
// playwright-core is installed in tests/js (npm install --prefix tests/js).
const { chromium } = require(require.resolve('playwright-core', {
  paths: [path.join(__dirname, '..', 'js')],
}));

const MAX_LOG_LINES = 100;

function record(list, line) {
  if (list.length < MAX_LOG_LINES) {
    list.push(line.slice(0, 1000));
  }
}

async function openPage(browser, spec, result) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('console', (msg) => record(result.console, msg.type() + ': ' + msg.text()));
  page.on('pageerror', (err) => record(result.pageErrors, String(err && err.stack ? err.stack : err)));
  page.on('requestfailed', (req) => {
    const failure = req.failure();
    record(result.failedRequests, req.method() + ' ' + req.url().slice(0, 200) + ' ' +
      (failure ? failure.errorText : ''));
  });
  await page.goto(spec.url, { waitUntil: 'load', timeout: 15000 });
  // Both scripts loaded and chat.js has filled the transport selector.
  await page.waitForFunction(
    () => !!(window.Centrifuge && window.SockJS) && document.querySelectorAll('#transport option').length > 0,
    null, { timeout: 10000 });
  if (spec.pick === 'form') {
    await page.fill('#name', spec.name);
    await page.selectOption('#transport', spec.transport);
  }
  result.selected = await page.inputValue('#transport');
  await page.click('#join');
  return page;
}

async function pageState(page) {
  return page.evaluate(() => ({
    state: document.body.dataset.state,
    transportShown: document.getElementById('transport-in-use').textContent,
    online: [...document.querySelectorAll('#presence li')].map((li) => li.textContent),
    messages: [...document.querySelectorAll('#messages li.message')].map((li) => ({
      author: li.querySelector('.author').textContent,
      text: li.querySelector('.text').textContent,
    })),
  }));
}

async function main() {
  const [jobPath, resultPath] = process.argv.slice(2);
  const job = JSON.parse(fs.readFileSync(jobPath, 'utf8'));
  const output = { finished: false, pages: {} };
  const save = () => fs.writeFileSync(resultPath, JSON.stringify(output));
  const browser = await chromium.launch({
    executablePath: job.chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-proxy-server', '--disable-background-networking'],
    timeout: 30000,
  });
  const pages = {};
  // A stage that throws ends that page's run (recorded in its result), not the others'.
  async function stage(spec, what, action) {
    const result = output.pages[spec.id];
    if (result.error) {
      return;
    }
    try {
      await action(result);
    } catch (err) {
      result.error = what + ': ' + (err && err.message ? err.message : String(err));
    }
    if (pages[spec.id]) {
      Object.assign(result, await pageState(pages[spec.id]).catch(() => ({})));
    }
    save();
  }
  try {
    for (const spec of job.pages) {
      output.pages[spec.id] = { console: [], pageErrors: [], failedRequests: [] };
      await stage(spec, 'open', async (result) => {
        pages[spec.id] = await openPage(browser, spec, result);
      });
    }
    // The pages wait together: one budget per stage, not one per page.
    const budget = (start) => ({ timeout: Math.max(1000, start + job.timeoutMs - Date.now()) });
    const subscribing = Date.now();
    for (const spec of job.pages) {
      await stage(spec, 'subscribe', () => pages[spec.id].waitForSelector(
        'body[data-state="subscribed"]', budget(subscribing)));
    }
    // Everyone is in the channel: now each says one thing.
    for (const spec of job.pages) {
      await stage(spec, 'send', async () => {
        await pages[spec.id].fill('#message', spec.text);
        await pages[spec.id].press('#message', 'Enter');
        // The input is cleared once the hub has accepted the publication.
        await pages[spec.id].waitForFunction(
          () => document.getElementById('message').value === '', null, { timeout: job.timeoutMs });
      });
    }
    const everyText = job.pages.map((spec) => spec.text);
    const receiving = Date.now();
    for (const spec of job.pages) {
      await stage(spec, 'receive', () => pages[spec.id].waitForFunction((texts) => {
        const seen = [...document.querySelectorAll('#messages li.message .text')].map((el) => el.textContent);
        return texts.every((text) => seen.includes(text));
      }, everyText, budget(receiving)));
    }
    const everyName = job.pages.map((spec) => spec.name);
    const listing = Date.now();
    for (const spec of job.pages) {
      await stage(spec, 'presence', () => pages[spec.id].waitForFunction((names) => {
        const online = [...document.querySelectorAll('#presence li')].map((el) => el.textContent);
        return names.every((name) => online.includes(name));
      }, everyName, budget(listing)));
    }
    output.finished = true;
  } catch (err) {
    output.error = String(err && err.stack ? err.stack : err);
  } finally {
    save();
    await browser.close().catch(() => {});
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
