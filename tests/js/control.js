/*
 * How the Python test steers a long-running Node script (node_client.js,
 * browser_client.js): the script writes a file when it is ready, the test
 * writes another when the script should stop.
 */
'use strict';

const fs = require('fs');

// Resolves once `path` exists, looking every intervalMs.
function untilFileExists(path, intervalMs) {
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      if (fs.existsSync(path)) {
        clearInterval(timer);
        resolve();
      }
    }, intervalMs || 50);
  });
}

// Written whole or not at all: the test polls for the file and reads it at once.
function writeJsonAtomically(path, value) {
  fs.writeFileSync(path + '.tmp', JSON.stringify(value));
  fs.renameSync(path + '.tmp', path);
}

module.exports = { untilFileExists, writeJsonAtomically };
