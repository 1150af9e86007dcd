/*
 * The client side of the real-client tests, shared by Node (require) and the
 * browser page (<script>). It drives sockjs-client and records what arrives;
 * it judges nothing: the Python tests compare the received lists with what
 * they asked to send.
 *
 * runEcho:      one SockJS client on one forced transport sends `messages`
 *               to an echo service and records every message it receives.
 * runBroadcast: two clients on two transports join a broadcast service; they
 *               take turns sending `messages`, and each message must reach
 *               both before the next one goes out.
 * runLive:      several clients (one per transport) send numbered messages to
 *               an echo service at a steady rate until told to stop, then wait
 *               for the last echoes (live load while the servers restart).
 */
(function (root, factory) {
  if (typeof module === 'object' && module.exports) {
    module.exports = factory();
  } else {
    root.SockhopRunner = factory();
  }
}(typeof self !== 'undefined' ? self : this, function () {
  'use strict';

  function randomToken() {
    return Math.random().toString(36).slice(2, 10);
  }

  function errorText(err) {
    return err && err.message ? err.message : String(err);
  }

  // Wakes the waiting conditions whenever a client records an event.
  function Hub() {
    this.waiters = [];
  }

  Hub.prototype.poke = function () {
    var pending = this.waiters;
    this.waiters = [];
    pending.forEach(function (check) { check(); });
  };

  // Resolves when pred() holds; rejects when broken() returns a reason or the deadline passes.
  Hub.prototype.waitFor = function (what, pred, deadline, broken) {
    var hub = this;
    return new Promise(function (resolve, reject) {
      var timer = null;
      function check() {
        if (pred()) {
          clearTimeout(timer);
          resolve();
          return;
        }
        var reason = broken ? broken() : null;
        if (reason) {
          clearTimeout(timer);
          reject(new Error('while waiting for ' + what + ': ' + reason));
          return;
        }
        hub.waiters.push(check);
      }
      timer = setTimeout(function () {
        var index = hub.waiters.indexOf(check);
        if (index >= 0) {
          hub.waiters.splice(index, 1);
        }
        reject(new Error('timed out waiting for ' + what));
      }, Math.max(0, deadline - Date.now()));
      check();
    });
  };

  // One sockjs-client connection that records everything that happens to it.
  function Client(hub, SockJS, url, transport, sessionPrefix) {
    var self = this;
    this.transport = transport;
    this.sessionIds = [];
    this.received = [];
    this.events = [];
    this.used = null;
    this.opened = false;
    this.closeEvent = null;
    this.sock = new SockJS(url, null, {
      transports: [transport],
      // Our own ids, so the test can find this session's requests in the proxy's log.
      sessionId: function () {
        var id = sessionPrefix + '-' + randomToken();
        self.sessionIds.push(id);
        return id;
      },
    });
    this.sock.onopen = function () {
      self.opened = true;
      self.used = self.sock.transport || null;
      self.events.push('open via ' + self.used);
      hub.poke();
    };
    this.sock.onmessage = function (e) {
      self.received.push(e.data);
      hub.poke();
    };
    this.sock.onclose = function (e) {
      self.closeEvent = { code: e.code, reason: e.reason, wasClean: e.wasClean };
      self.events.push('close ' + e.code + ' ' + e.reason);
      hub.poke();
    };
  }

  Client.prototype.brokenReason = function () {
    if (this.closeEvent) {
      return this.transport + ' client closed: ' + this.closeEvent.code + ' ' + this.closeEvent.reason;
    }
    return null;
  };

  // Why the first closed client of several closed, or null.
  function firstBrokenReason(clients) {
    for (var c = 0; c < clients.length; c++) {
      var reason = clients[c].brokenReason();
      if (reason) {
        return reason;
      }
    }
    return null;
  }

  Client.prototype.close = function () {
    try {
      this.sock.close();
    } catch (ignored) {
      // already closed
    }
  };

  Client.prototype.report = function () {
    return {
      requested: this.transport,
      used: this.used,
      sessionIds: this.sessionIds,
      received: this.received,
      events: this.events,
      closeEvent: this.closeEvent,
    };
  };

  /*
   * opts: SockJS, url, transport, messages, pingPong (how many of the first
   * messages are sent one at a time, each after the previous echo arrived;
   * the rest go out back to back), timeoutMs, sessionPrefix.
   * Done when the last message has come back (it is unique).
   */
  async function runEcho(opts) {
    var started = Date.now();
    var deadline = started + opts.timeoutMs;
    var hub = new Hub();
    var result = { transport: opts.transport, error: null, stage: 'connecting', sent: 0 };
    var client;
    try {
      client = new Client(hub, opts.SockJS, opts.url, opts.transport, opts.sessionPrefix);
      var broken = function () { return client.brokenReason(); };
      await hub.waitFor('open', function () { return client.opened; }, deadline, broken);
      var messages = opts.messages;
      var pingPong = Math.min(opts.pingPong, messages.length);
      result.stage = 'one at a time';
      for (let i = 0; i < pingPong; i++) {
        client.sock.send(messages[i]);
        result.sent = i + 1;
        const count = i + 1;
        await hub.waitFor('echo of message ' + i, function () {
          return client.received.length >= count;
        }, deadline, broken);
      }
      result.stage = 'back to back';
      for (let j = pingPong; j < messages.length; j++) {
        client.sock.send(messages[j]);
        result.sent = j + 1;
      }
      var last = messages[messages.length - 1];
      await hub.waitFor('echo of the last message', function () {
        return client.received.length > 0 && client.received.indexOf(last) >= 0;
      }, deadline, broken);
      result.stage = 'done';
    } catch (err) {
      result.error = errorText(err);
    } finally {
      if (client) {
        Object.assign(result, client.report());
        client.close();
      }
      result.elapsedMs = Date.now() - started;
    }
    return result;
  }

  /*
   * opts: SockJS, url, transports (two), messages, timeoutMs, sessionPrefix.
   * Message k is sent by client k % 2 once every client has every earlier one.
   */
  async function runBroadcast(opts) {
    var started = Date.now();
    var deadline = started + opts.timeoutMs;
    var hub = new Hub();
    var result = { transports: opts.transports, error: null, stage: 'connecting', sent: 0 };
    var clients = [];
    try {
      opts.transports.forEach(function (transport, index) {
        clients.push(new Client(hub, opts.SockJS, opts.url, transport, opts.sessionPrefix + '-' + index));
      });
      var broken = function () { return firstBrokenReason(clients); };
      await hub.waitFor('every client open', function () {
        return clients.every(function (c) { return c.opened; });
      }, deadline, broken);
      result.stage = 'exchanging';
      for (let k = 0; k < opts.messages.length; k++) {
        clients[k % clients.length].sock.send(opts.messages[k]);
        result.sent = k + 1;
        const count = k + 1;
        await hub.waitFor('message ' + k + ' at every client', function () {
          return clients.every(function (c) { return c.received.length >= count; });
        }, deadline, broken);
      }
      result.stage = 'done';
    } catch (err) {
      result.error = errorText(err);
    } finally {
      result.clients = clients.map(function (c) { return c.report(); });
      clients.forEach(function (c) { c.close(); });
      result.elapsedMs = Date.now() - started;
    }
    return result;
  }

  /*
   * opts: SockJS, url, transports, rate (messages per second per client),
   * timeoutMs (to open every client), maxMs (sending stops by itself after it),
   * drainMs (after the stop: how long the last echoes may take), sessionPrefix,
   * onReady(sessionIds) (called once every client is open; may return a promise),
   * stopped (a promise: stop sending when it resolves).
   * Client c sends "<sessionPrefix>-<transport>:<n>" for n = 0, 1, ... while it is
   * open. A client that closes is not reopened: the close is the finding.
   */
  async function runLive(opts) {
    var started = Date.now();
    var hub = new Hub();
    var result = { transports: opts.transports, error: null, stage: 'connecting' };
    var clients = [];
    var timer = null;
    try {
      opts.transports.forEach(function (transport) {
        var client = new Client(hub, opts.SockJS, opts.url, transport, opts.sessionPrefix + '-' + transport);
        client.label = opts.sessionPrefix + '-' + transport;
        client.sent = [];
        clients.push(client);
      });
      await hub.waitFor('every client open', function () {
        return clients.every(function (c) { return c.opened; });
      }, started + opts.timeoutMs, function () { return firstBrokenReason(clients); });
      await opts.onReady(clients.map(function (c) { return c.sessionIds; }));
      result.stage = 'sending';
      var stop = false;
      var stopBy = function (why) {
        return function () {
          if (!stop) {
            stop = true;
            result.stoppedBy = why;
            hub.poke();
          }
        };
      };
      opts.stopped.then(stopBy('signal'));
      var cap = setTimeout(stopBy('maxMs'), opts.maxMs);
      timer = setInterval(function () {
        clients.forEach(function (c) {
          if (c.sock.readyState === 1) { // OPEN: a closing client would drop it silently
            var message = c.label + ':' + c.sent.length;
            c.sock.send(message);
            c.sent.push(message);
          }
        });
      }, 1000 / opts.rate);
      // The cap stops it first; this deadline only bounds the wait.
      await hub.waitFor('the stop', function () { return stop; }, Date.now() + opts.maxMs + 5000, null);
      clearInterval(timer);
      clearTimeout(cap);
      timer = null;
      result.stage = 'draining';
      await hub.waitFor('the last echo at every client', function () {
        return clients.every(function (c) {
          return c.closeEvent || c.sent.length === 0
            || c.received.indexOf(c.sent[c.sent.length - 1]) >= 0;
        });
      }, Date.now() + opts.drainMs, null);
      result.stage = 'done';
    } catch (err) {
      result.error = errorText(err);
    } finally {
      if (timer) {
        clearInterval(timer);
      }
      result.clients = clients.map(function (c) {
        return Object.assign(c.report(), { sent: c.sent });
      });
      clients.forEach(function (c) { c.close(); });
      result.elapsedMs = Date.now() - started;
    }
    return result;
  }

  // Hub (the waiting helper) and errorText serve web/hub_runner.js too.
  return {
    runEcho: runEcho,
    runBroadcast: runBroadcast,
    runLive: runLive,
    Hub: Hub,
    errorText: errorText,
    randomToken: randomToken,
  };
}));
