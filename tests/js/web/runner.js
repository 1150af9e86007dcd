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
      var broken = function () {
        for (var c = 0; c < clients.length; c++) {
          var reason = clients[c].brokenReason();
          if (reason) {
            return reason;
          }
        }
        return null;
      };
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

  return { runEcho: runEcho, runBroadcast: runBroadcast };
}));
