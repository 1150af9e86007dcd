/*
 * How the Python test steers a long-running Node script (node_client.js,
 * browser_client.js, hub_node.js): the script writes a file when it is ready,
 * the test writes another when the script should stop; and a script can ask
 * the test for something (a token, publications through the server API) and
 * wait for its answer (tests/clients/jsrun.py answers).
 */
'use strict';

const fs = require('fs');
const path = require('path');

// Resolves once `path` exists, looking every intervalMs; rejects after timeoutMs (if given).
function untilFileExists(path, intervalMs, timeoutMs) {
  const deadline = timeoutMs ? Date.now() + timeoutMs : Infinity;
  return new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      if (fs.existsSync(path)) {
        clearInterval(timer);
        resolve();
      } else if (Date.now() > deadline) {
        clearInterval(timer);
        reject(new Error('no ' + path + ' after ' + timeoutMs + ' ms'));
      }
    }, intervalMs || 50);
  });
}

// Written whole or not at all: the test polls for the file and reads it at once.
function writeJsonAtomically(path, value) {
  fs.writeFileSync(path + '.tmp', JSON.stringify(value));
  fs.renameSync(path + '.tmp', path);
}

let asked = 0;

/*
 * Ask the test for something: writes DIR/ask-N.json {what, args} and resolves
 * with the `value` of DIR/answer-N.json (rejects with its `error`). N counts
 * per process, so every page of one browser driver shares one sequence.
 */
async function ask(dir, what, args, timeoutMs) {
  asked += 1;
  const n = asked;
  writeJsonAtomically(path.join(dir, 'ask-' + n + '.json'), { what: what, args: args || {} });
  const answerPath = path.join(dir, 'answer-' + n + '.json');
  await untilFileExists(answerPath, 10, timeoutMs || 60000);
  const answer = JSON.parse(fs.readFileSync(answerPath, 'utf8'));
  if (answer.error) {
    throw new Error('the test could not answer ' + what + ': ' + answer.error);
  }
  return answer.value;
}

module.exports = { untilFileExists, writeJsonAtomically, ask };
