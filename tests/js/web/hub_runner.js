/*
 * centrifuge-js against the sockhop hub, shared by Node (require) and the
 * browser page (web/hub.html). Like runner.js, it drives the clients and
 * records what happens to them; the Python tests judge.
 *
 * The test answers what the clients cannot make themselves, through
 * env.ask(what, args) (tests/clients/jsrun.py): JWTs ('connectToken',
 * 'forgedToken', 'subscriptionToken': {token, exp}) and publications through
 * the server API ('publish': [{offset, epoch}] per data item).
 *
 * runScenario: every client feature on one transport, one step after another
 *              (steps go on after a failed one; each reports ok or its error).
 * runStream:   one subscriber per transport on one channel; asks 'ready' once
 *              all are subscribed, then records every publication until each
 *              has the last one, then waits for two server pings at each.
 * runLive:     one client per transport, each subscribed to one channel and
 *              publishing into it at a steady rate while the test changes the
 *              servers under them; records every publish's outcome and every
 *              publication until each has the test's closing marker.
 *
 * env: Centrifuge, SockJS, WebSocket (null: the global one), ask(what, args, timeoutMs),
 *      endpoints {websocket, sockjs}, endpointSets (optional, see endpointsFor),
 *      sessionPrefix, stepTimeoutMs, timeoutMs,
 *      and the run's own fields (see each run).
 * A transport name is 'websocket' (native) or 'sockjs-<sockjs-client transport>'.
 */
(function (root, factory) {
  if (typeof module === 'object' && module.exports) {
    module.exports = factory(require('./runner.js'));
  } else {
    root.HubRunner = factory(root.SockhopRunner);
  }
}(typeof self !== 'undefined' ? self : this, function (sockhop) {
  'use strict';

  var Hub = sockhop.Hub;
  var errorText = sockhop.errorText;
  var MAX_EVENTS = 400;
  var MAX_WIRE = 300;
  var MAX_LINE = 600;
  var CLIENT_EVENTS = ['connecting', 'connected', 'disconnected', 'error', 'subscribing',
    'subscribed', 'unsubscribed', 'publication', 'join', 'leave'];
  var SUB_EVENTS = ['subscribing', 'subscribed', 'unsubscribed', 'error', 'join', 'leave'];

  function plain(value) {
    try {
      return value === undefined ? null : JSON.parse(JSON.stringify(value));
    } catch (err) {
      return String(value);
    }
  }

  function pushBounded(list, item, max) {
    if (list.length < max) {
      list.push(item);
    } else if (list.length === max) {
      list.push('... (more left out)');
    }
  }

  function publicationOf(ctx) {
    var info = ctx.info ? { user: ctx.info.user, client: ctx.info.client,
      connInfo: plain(ctx.info.connInfo), chanInfo: plain(ctx.info.chanInfo) } : null;
    // null, not absent, for what a publication lacks: the test reads every key.
    return { channel: ctx.channel, data: plain(ctx.data),
      offset: ctx.offset === undefined ? null : ctx.offset, info: info, tags: plain(ctx.tags) };
  }

  /*
   * What went over one client's transports, both ways: the newline-delimited
   * JSON lines (bounded), plus every line worth judging on (unsubscribe pushes,
   * replies to refresh commands, close frames) whatever the bound.
   */
  function Wire(onRecord) {
    this.onRecord = onRecord;
    this.lines = [];
    this.unsubscribePushes = [];
    this.refreshCommands = {};
    this.refreshReplies = [];
    this.closes = [];
    this.pings = 0;
    this.pongs = 0;
  }

  Wire.prototype.record = function (direction, data) {
    var text = typeof data === 'string' ? data : String(data);
    var self = this;
    text.split('\n').forEach(function (line) {
      if (!line) {
        return;
      }
      if (line === '{}') {
        if (direction === '<') {
          self.pings += 1;
        } else {
          self.pongs += 1;
        }
      }
      var shown = line.length > MAX_LINE ? line.slice(0, MAX_LINE) + '...' : line;
      pushBounded(self.lines, direction + ' ' + shown, MAX_WIRE);
      var frame;
      try {
        frame = JSON.parse(line);
      } catch (err) {
        return;
      }
      if (direction === '>' && frame.refresh) {
        self.refreshCommands[frame.id] = true;
      } else if (direction === '<' && frame.id && self.refreshCommands[frame.id]) {
        self.refreshReplies.push(frame);
      } else if (direction === '<' && frame.push && frame.push.unsubscribe) {
        self.unsubscribePushes.push(frame.push);
      }
    });
    // Waits on the wire (pings) need a poke: no client event comes with a ping.
    this.onRecord();
  };

  // A transport constructor that records what its sockets send and receive.
  function recording(Real, wire, onCreate) {
    return function RecordedSocket(url, second, third) {
      var sock;
      if (arguments.length >= 3) {
        sock = new Real(url, second, third);
      } else if (second !== undefined) {
        sock = new Real(url, second);
      } else {
        sock = new Real(url);
      }
      if (onCreate) {
        onCreate(sock);
      }
      sock.addEventListener('message', function (e) { wire.record('<', e.data); });
      sock.addEventListener('close', function (e) {
        wire.closes.push({ code: e.code, reason: e.reason });
        pushBounded(wire.lines, 'close ' + e.code + ' ' + e.reason, MAX_WIRE);
      });
      var send = sock.send.bind(sock);
      sock.send = function (data) {
        wire.record('>', data);
        return send(data);
      };
      return sock;
    };
  }

  /*
   * One centrifuge-js client on the run's transport, recording its events,
   * its subscriptions' events and publications, its token requests, the SockJS
   * session ids it used and its wire.
   * options: name, user, token, getToken (async () => {token, exp}), extra Centrifuge options.
   */
  function Peer(env, hub, options) {
    var self = this;
    this.name = options.name;
    this.user = options.user;
    this.hub = hub;
    this.events = [];
    this.publications = [];
    this.connectedCount = 0;
    this.tokenRequests = [];
    this.sessionIds = [];
    this.sockjsUsed = [];
    this.subs = {};
    this.wire = new Wire(function () { hub.poke(); });
    this.started = Date.now();
    var config = {
      token: options.token || '',
      minReconnectDelay: 100,
      maxReconnectDelay: 2000,
      timeout: env.commandTimeoutMs || 10000,
      name: 'js',
    };
    if (options.getToken) {
      config.getToken = function () {
        self.tokenRequests.push({ at: Date.now() - self.started, state: self.client.state });
        return options.getToken().then(function (answer) { return answer.token; });
      };
    }
    var endpoints;
    var urls = options.endpoints || env.endpoints;
    if (env.transport === 'websocket') {
      endpoints = urls.websocket;
      config.websocket = recording(env.WebSocket || WebSocket, this.wire);
    } else {
      var sockjsTransport = env.transport.replace(/^sockjs-/, '');
      endpoints = [{ transport: 'sockjs', endpoint: urls.sockjs }];
      config.sockjs = recording(env.SockJS, this.wire, function (sock) {
        // Read at open: sockjs-client forgets its transport once closed.
        sock.addEventListener('open', function () { self.sockjsUsed.push(sock.transport || null); });
      });
      config.sockjsOptions = {
        transports: [sockjsTransport],
        // Our own ids, so the test finds this client's requests in the proxy's log.
        sessionId: function () {
          var id = env.sessionPrefix + '-' + self.name + '-' + sockhop.randomToken();
          self.sessionIds.push(id);
          return id;
        },
      };
    }
    this.client = new env.Centrifuge(endpoints, config);
    CLIENT_EVENTS.forEach(function (event) {
      self.client.on(event, function (ctx) {
        var entry = { at: Date.now() - self.started, event: event, ctx: plain(ctx) };
        if (event === 'publication') {
          self.publications.push(publicationOf(ctx));
          entry.ctx = { channel: ctx.channel, offset: ctx.offset };
        } else if (event === 'connected') {
          self.connectedCount += 1;
        }
        pushBounded(self.events, entry, MAX_EVENTS);
        hub.poke();
      });
    });
  }

  Peer.prototype.connect = function () {
    this.client.connect();
  };

  Peer.prototype.eventsOf = function (name, channel) {
    return this.events.filter(function (e) {
      return e.event === name && (channel === undefined || (e.ctx && e.ctx.channel === channel));
    });
  };

  Peer.prototype.state = function () {
    return this.client.state;
  };

  // Why waiting for this client is pointless: it is disconnected (and so will not reconnect).
  Peer.prototype.broken = function () {
    if (this.client.state !== 'disconnected') {
      return null;
    }
    var last = this.eventsOf('disconnected').pop();
    return this.name + ' disconnected: ' + (last ? last.ctx.code + ' ' + last.ctx.reason : '?');
  };

  // The first connecting or disconnected event after the first connected one, or null.
  Peer.prototype.troubleSinceConnected = function () {
    var seen = false;
    for (var i = 0; i < this.events.length; i++) {
      var name = this.events[i].event;
      if (seen && (name === 'connecting' || name === 'disconnected')) {
        return this.events[i];
      }
      seen = seen || name === 'connected';
    }
    return null;
  };

  Peer.prototype.subscription = function (channel, options) {
    var self = this;
    var sub = {
      channel: channel,
      events: [],
      publications: [],
      subscribedCount: 0,
      handle: this.client.newSubscription(channel, options || {}),
    };
    SUB_EVENTS.concat(['publication']).forEach(function (event) {
      sub.handle.on(event, function (ctx) {
        if (event === 'publication') {
          // round: how many times the subscription had been subscribed when it arrived.
          sub.publications.push(Object.assign(publicationOf(ctx), { round: sub.subscribedCount }));
        } else {
          if (event === 'subscribed') {
            sub.subscribedCount += 1;
          }
          pushBounded(sub.events, { at: Date.now() - self.started, event: event, ctx: plain(ctx) },
            MAX_EVENTS);
        }
        self.hub.poke();
      });
    });
    this.subs[channel] = sub;
    return sub;
  };

  Peer.prototype.disconnect = function () {
    try {
      this.client.disconnect();
    } catch (ignored) {
      // already disconnected
    }
  };

  Peer.prototype.report = function () {
    var subs = {};
    var self = this;
    Object.keys(this.subs).forEach(function (channel) {
      var sub = self.subs[channel];
      subs[channel] = { events: sub.events, publications: sub.publications, state: sub.handle.state };
    });
    return {
      name: this.name,
      user: this.user,
      state: this.client.state,
      events: this.events,
      publications: this.publications,
      subs: subs,
      tokenRequests: this.tokenRequests,
      sessionIds: this.sessionIds,
      sockjsUsed: this.sockjsUsed,
      wire: {
        lines: this.wire.lines,
        unsubscribePushes: this.wire.unsubscribePushes,
        refreshReplies: this.wire.refreshReplies,
        closes: this.wire.closes,
        pings: this.wire.pings,
        pongs: this.wire.pongs,
      },
      connectedCount: this.connectedCount,
    };
  };

  /*
   * The URLs of the index-th client: env.endpointSets (when given) are the same hub
   * on several ports, one origin each, because a browser holds at most six
   * connections per origin and every polling or streaming client holds one.
   */
  function endpointsFor(env, index) {
    var sets = env.endpointSets;
    return sets && sets.length ? sets[index % sets.length] : env.endpoints;
  }

  function subscribedCtx(sub) {
    var found = sub.events.filter(function (e) { return e.event === 'subscribed'; });
    return found.length ? found[found.length - 1].ctx : null;
  }

  function hasData(publications, key, value) {
    return publications.some(function (p) { return p.data && p.data[key] === value; });
  }

  // Runs one named step; a failure is recorded and the run goes on.
  async function step(result, name, body) {
    var started = Date.now();
    var record = { ok: false };
    result.steps[name] = record;
    try {
      Object.assign(record, (await body()) || {});
      record.ok = true;
    } catch (err) {
      record.error = errorText(err);
    }
    record.ms = Date.now() - started;
  }

  function sleepWithPokes(hub, ms) {
    return new Promise(function (resolve) {
      setTimeout(function () { hub.poke(); resolve(); }, ms);
    });
  }

  /*
   * env also has: channels {room, server, private}, users {alice, bob, refresher,
   * expired, forged}, refreshTtl (s), expiredCloseDelayMs, pingIntervalMs.
   * Steps: refreshConnect, connect, serverSubscription, subscribe, join,
   * apiPublish, clientPublish, presence, history, serverPublication,
   * privateChannel, privateDenied, leave, recovery, serverRecovery, badToken,
   * expiredToken, refresh.
   */
  async function runScenario(env) {
    var hub = new Hub();
    var started = Date.now();
    var result = { transport: env.transport, channels: env.channels, users: env.users,
      steps: {}, peers: {} };
    var peers = [];
    var ch = env.channels;
    var users = env.users;

    function waitFor(what, pred, peer) {
      return hub.waitFor(what, pred, Date.now() + env.stepTimeoutMs,
        peer ? function () { return peer.broken(); } : null);
    }

    function token(what, args) {
      return function () { return env.ask(what, args); };
    }

    function newPeer(options) {
      var peer = new Peer(env, hub, Object.assign({ endpoints: endpointsFor(env, peers.length) },
        options));
      peers.push(peer);
      return peer;
    }

    async function connected(peer) {
      peer.connect();
      await waitFor(peer.name + ' connected', function () { return peer.connectedCount > 0; }, peer);
      return plain(peer.eventsOf('connected')[0].ctx);
    }

    async function subscribed(peer, sub, count) {
      sub.handle.subscribe();
      await waitFor(peer.name + ' subscribed to ' + sub.channel,
        function () { return sub.subscribedCount >= (count || 1); }, peer);
      return subscribedCtx(sub);
    }

    var refresher, alice, bob, room, roomB, privateSub;
    try {
      // First, so that its wait for the token's expiry overlaps the other steps.
      await step(result, 'refreshConnect', async function () {
        var answer = await env.ask('connectToken', { user: users.refresher, ttl: env.refreshTtl });
        refresher = newPeer({ name: 'refresher', user: users.refresher, token: answer.token,
          getToken: token('connectToken', { user: users.refresher, ttl: 3600 }) });
        var ctx = await connected(refresher);
        // Subscribed, as an application's clients are, while the pings come.
        await subscribed(refresher, refresher.subscription(ch.room + '-refresher'));
        return { exp: answer.exp, ctx: ctx };
      });

      await step(result, 'connect', async function () {
        var answer = await env.ask('connectToken', { user: users.alice, ttl: 3600,
          channels: [ch.server], info: { name: 'Alice' } });
        alice = newPeer({ name: 'alice', user: users.alice, token: answer.token,
          getToken: token('connectToken', { user: users.alice, ttl: 3600,
            channels: [ch.server], info: { name: 'Alice' } }) });
        return { ctx: await connected(alice) };
      });

      await step(result, 'serverSubscription', async function () {
        await waitFor('server-side subscription to ' + ch.server, function () {
          return alice.eventsOf('subscribed', ch.server).length > 0;
        }, alice);
        return { ctx: alice.eventsOf('subscribed', ch.server)[0].ctx };
      });

      await step(result, 'subscribe', async function () {
        room = alice.subscription(ch.room, { joinLeave: true });
        return { ctx: await subscribed(alice, room) };
      });

      await step(result, 'join', async function () {
        var answer = await env.ask('connectToken', { user: users.bob, ttl: 3600,
          info: { name: 'Bob' } });
        bob = newPeer({ name: 'bob', user: users.bob, token: answer.token });
        var bobCtx = await connected(bob);
        roomB = bob.subscription(ch.room, { joinLeave: true });
        await subscribed(bob, roomB);
        await waitFor('alice sees bob join', function () {
          return room.events.some(function (e) {
            return e.event === 'join' && e.ctx.info.client === bobCtx.client;
          });
        }, alice);
        return { bobClient: bobCtx.client };
      });

      await step(result, 'apiPublish', async function () {
        var data = [{ api: 1 }, { api: 2 }, { api: 3 }];
        var published = await env.ask('publish', { channel: ch.room, data: data });
        await waitFor('three API publications at alice and bob', function () {
          return hasData(room.publications, 'api', 3) && hasData(roomB.publications, 'api', 3);
        }, alice);
        return { published: published };
      });

      await step(result, 'clientPublish', async function () {
        var text = 'hello from alice';
        await room.handle.publish({ text: text });
        await waitFor('alice\'s publication at alice and bob', function () {
          return hasData(room.publications, 'text', text) && hasData(roomB.publications, 'text', text);
        }, alice);
        return { text: text };
      });

      await step(result, 'presence', async function () {
        var presence = await room.handle.presence();
        var stats = await room.handle.presenceStats();
        return { clients: plain(presence.clients), stats: plain(stats) };
      });

      await step(result, 'history', async function () {
        var history = await room.handle.history({ limit: 10 });
        return { publications: history.publications.map(publicationOf), offset: history.offset,
          epoch: history.epoch };
      });

      await step(result, 'serverPublication', async function () {
        var published = await env.ask('publish', { channel: ch.server, data: [{ server: 1 }] });
        await waitFor('publication of the server-side subscription', function () {
          return hasData(alice.publications, 'server', 1);
        }, alice);
        return { published: published };
      });

      await step(result, 'privateChannel', async function () {
        privateSub = alice.subscription(ch.private, {
          getToken: function (ctx) {
            return env.ask('subscriptionToken', { user: users.alice, channel: ctx.channel })
              .then(function (answer) { return answer.token; });
          },
        });
        var ctx = await subscribed(alice, privateSub);
        var published = await env.ask('publish', { channel: ch.private, data: [{ secret: 1 }] });
        await waitFor('publication of the private channel', function () {
          return hasData(privateSub.publications, 'secret', 1);
        }, alice);
        return { ctx: ctx, published: published };
      });

      await step(result, 'privateDenied', async function () {
        var denied = bob.subscription(ch.private);
        denied.handle.subscribe();
        await waitFor('bob unsubscribed from the private channel', function () {
          return denied.events.some(function (e) { return e.event === 'unsubscribed'; });
        }, bob);
        return { events: denied.events };
      });

      // By unsubscribing: a disconnect over a polling transport reaches the hub only
      // when the session times out (how long is the presence tests' business).
      await step(result, 'leave', async function () {
        var bobClient = result.steps.join.bobClient;
        roomB.handle.unsubscribe();
        await waitFor('alice sees bob leave', function () {
          return room.events.some(function (e) {
            return e.event === 'leave' && e.ctx.info.client === bobClient;
          });
        }, alice);
      });

      await step(result, 'recovery', async function () {
        var before = room.subscribedCount;
        alice.disconnect();
        await waitFor('alice disconnected', function () {
          return alice.state() === 'disconnected';
        });
        var data = [{ missed: 1 }, { missed: 2 }, { missed: 3 }];
        var published = await env.ask('publish', { channel: ch.room, data: data });
        var serverPublished = await env.ask('publish', { channel: ch.server,
          data: [{ serverMissed: 1 }] });
        alice.connect();
        await waitFor('alice resubscribed to ' + ch.room, function () {
          return room.subscribedCount > before;
        }, alice);
        await waitFor('the missed publications', function () {
          return hasData(room.publications, 'missed', 3);
        }, alice);
        return { ctx: subscribedCtx(room), published: published, serverPublished: serverPublished };
      });

      await step(result, 'serverRecovery', async function () {
        await waitFor('the missed publication of the server-side subscription', function () {
          return hasData(alice.publications, 'serverMissed', 1);
        }, alice);
        var subscribedEvents = alice.eventsOf('subscribed', ch.server);
        return { ctx: subscribedEvents[subscribedEvents.length - 1].ctx };
      });

      await step(result, 'badToken', async function () {
        var answer = await env.ask('forgedToken', { user: users.forged });
        var forged = newPeer({ name: 'forged', user: users.forged, token: answer.token });
        forged.connect();
        await waitFor('the forged token\'s client disconnected', function () {
          return forged.eventsOf('disconnected').length > 0;
        });
        return { ctx: forged.eventsOf('disconnected')[0].ctx };
      });

      await step(result, 'expiredToken', async function () {
        var answer = await env.ask('connectToken', { user: users.expired, ttl: -60 });
        var expired = newPeer({ name: 'expired', user: users.expired, token: answer.token,
          getToken: token('connectToken', { user: users.expired, ttl: 3600 }) });
        var ctx = await connected(expired);
        return { ctx: ctx, errors: expired.eventsOf('error').map(function (e) { return e.ctx; }),
          tokenRequests: expired.tokenRequests };
      });

      await step(result, 'refresh', async function () {
        if (!refresher) {
          throw new Error('the refresher never connected');
        }
        var exp = result.steps.refreshConnect.exp * 1000;
        await hub.waitFor('the refresher asking for a new token', function () {
          return refresher.tokenRequests.length > 0;
        }, exp + env.stepTimeoutMs, function () { return refresher.broken(); });
        // Past the old token's expiry plus the hub's close delay: still the same connection.
        // And idle for longer than a ping interval (the hub pings an idle connection),
        // so a ping and its pong cross the wire.
        var until = Math.max(exp + env.expiredCloseDelayMs, Date.now() + env.pingIntervalMs) + 1500;
        while (Date.now() < until && !refresher.troubleSinceConnected()) {
          await sleepWithPokes(hub, Math.min(200, Math.max(0, until - Date.now())));
        }
        var trouble = refresher.troubleSinceConnected();
        if (trouble) {
          throw new Error('the refresher lost its connection: ' + JSON.stringify(trouble));
        }
        return { tokenRequests: refresher.tokenRequests, heldPastExpMs: Date.now() - exp };
      });
    } finally {
      peers.forEach(function (peer) {
        peer.disconnect();
        result.peers[peer.name] = peer.report();
      });
      result.elapsedMs = Date.now() - started;
    }
    return result;
  }

  /*
   * One subscriber of env.channel per transport of env.transports, each with a
   * connection token of its own user (env.userPrefix-transport), connecting;
   * added to `peers` one by one, so a failure half-way still reports those made.
   */
  async function addSubscribers(env, hub, peers) {
    for (var i = 0; i < env.transports.length; i++) {
      var transport = env.transports[i];
      var user = env.userPrefix + '-' + transport;
      var answer = await env.ask('connectToken', { user: user, ttl: 3600 });
      var peer = new Peer(Object.assign({}, env, { transport: transport }), hub,
        { name: transport, user: user, token: answer.token, endpoints: endpointsFor(env, i) });
      peer.subscription(env.channel);
      peers.push(peer);
      peer.connect();
      peer.subs[env.channel].handle.subscribe();
    }
  }

  function lastOffsetAtLeast(peers, channel, offset) {
    return peers.every(function (p) {
      var pubs = p.subs[channel].publications;
      return pubs.length > 0 && pubs[pubs.length - 1].offset >= offset;
    });
  }

  // A subscriber's report: offsets and data are what the test checks (the full
  // publication list is long), and its subscription's events.
  function subscriberReport(peer, channel) {
    var sub = peer.subs[channel];
    var report = peer.report();
    report.offsets = sub.publications.map(function (p) { return p.offset; });
    report.data = sub.publications.map(function (p) { return p.data; });
    report.subs = {};
    report.subs[channel] = { events: sub.events, state: sub.handle.state };
    delete report.publications;
    return report;
  }

  /*
   * env also has: channel, transports (one subscriber each), users prefix,
   * expect (publications each subscriber should end with), token per
   * subscriber from 'connectToken'. Asks 'ready' once every subscriber is
   * subscribed (answered when the test has published), then waits until each
   * has `expect` publications with offsets up to `lastOffset` from the answer.
   */
  async function runStream(env) {
    var hub = new Hub();
    var started = Date.now();
    var deadline = started + env.timeoutMs;
    var result = { channel: env.channel, subscribers: {}, error: null, stage: 'connecting' };
    var peers = [];
    try {
      await addSubscribers(env, hub, peers);
      result.stage = 'subscribing';
      await hub.waitFor('every subscriber subscribed', function () {
        return peers.every(function (p) { return p.subs[env.channel].subscribedCount > 0; });
      }, deadline, function () {
        for (var j = 0; j < peers.length; j++) {
          var why = peers[j].broken();
          if (why) {
            return why;
          }
        }
        return null;
      });
      result.stage = 'ready';
      var go = await env.ask('ready', { transports: env.transports }, env.timeoutMs);
      result.stage = 'receiving';
      var last = go.lastOffset;
      await hub.waitFor('offset ' + last + ' at every subscriber', function () {
        return lastOffsetAtLeast(peers, env.channel, last);
      }, deadline);
      // Two pings each: the second one proves the first pong was taken (a
      // reconnect in between shows in connectedCount).
      result.stage = 'pings';
      await hub.waitFor('two pings at every subscriber', function () {
        return peers.every(function (p) { return p.wire.pings >= 2; });
      }, deadline);
      result.stage = 'done';
    } catch (err) {
      result.error = errorText(err);
    } finally {
      peers.forEach(function (peer) {
        result.subscribers[peer.name] = subscriberReport(peer, env.channel);
        peer.disconnect();
      });
      result.elapsedMs = Date.now() - started;
    }
    return result;
  }

  /*
   * A subscriber pushed past the history window. env also has: channel (in a
   * namespace with a small history_size), user, before, after (how many
   * publications before and after the stall), resubscribeTimeoutMs. Asks
   * 'publish' for `before`, waits for them, asks 'stall' (the test stops this
   * process, publishes more than the history keeps, resumes it; answers their
   * positions), waits for the resubscription, then asks 'publish' for `after`
   * and waits until the last of those arrives.
   */
  async function runFallBehind(env) {
    var hub = new Hub();
    var started = Date.now();
    var deadline = started + env.timeoutMs;
    var result = { channel: env.channel, transport: env.transport, error: null, stage: 'connecting' };
    var peer = null;
    var sub = null;
    var broken = function () { return peer.broken(); };
    try {
      var answer = await env.ask('connectToken', { user: env.user, ttl: 3600 });
      peer = new Peer(env, hub, { name: 'subscriber', user: env.user, token: answer.token });
      sub = peer.subscription(env.channel);
      peer.connect();
      sub.handle.subscribe();
      await hub.waitFor('subscribed', function () { return sub.subscribedCount > 0; }, deadline, broken);
      result.stage = 'before';
      var data = [];
      for (var i = 0; i < env.before; i++) {
        data.push({ before: i });
      }
      result.before = await env.ask('publish', { channel: env.channel, data: data });
      await hub.waitFor('the publications before the stall', function () {
        return hasData(sub.publications, 'before', env.before - 1);
      }, deadline, broken);
      result.stage = 'stall';
      result.stall = await env.ask('stall', { channel: env.channel });
      // Publish the rest only once resubscribed, so that none of it is before the
      // position a recovered:false resubscription starts from. Without a
      // resubscription, go on anyway: the test says what was missing.
      result.stage = 'resubscribe';
      try {
        await hub.waitFor('resubscribed', function () { return sub.subscribedCount > 1; },
          Math.min(deadline, Date.now() + env.resubscribeTimeoutMs), broken);
      } catch (err) {
        result.resubscribeError = errorText(err);
      }
      result.stage = 'after';
      data = [];
      for (var j = 0; j < env.after; j++) {
        data.push({ after: j });
      }
      result.after = await env.ask('publish', { channel: env.channel, data: data });
      var last = result.after[result.after.length - 1].offset;
      await hub.waitFor('offset ' + last, function () {
        return sub.publications.some(function (p) { return p.offset === last; });
      }, deadline, broken);
      result.stage = 'done';
    } catch (err) {
      result.error = errorText(err);
    } finally {
      if (peer) {
        result.subscriber = peer.report();
        result.publications = sub.publications.map(function (p) {
          return { offset: p.offset, round: p.round };
        });
        peer.disconnect();
      }
      result.elapsedMs = Date.now() - started;
    }
    return result;
  }

  /*
   * env also has: channel (client publish allowed, history and recovery on),
   * transports (one client each), userPrefix, rate (publications per second per
   * client), settleMs (how long a publish may take once the sending stops),
   * finalMs (how long the closing marker may take to reach every client).
   * Asks 'start' once every client is subscribed (answered once every script's
   * clients are, so that none misses another's first publications), then asks
   * 'live' once they all publish; its answer comes when the test wants the
   * sending stopped. Once every publish has settled, asks
   * 'final' and waits until every client has the answer's {offset} (the test's
   * marker, published after every client's last publish).
   */
  async function runLive(env) {
    var hub = new Hub();
    var started = Date.now();
    var deadline = started + env.timeoutMs;
    var result = { channel: env.channel, clients: {}, error: null, stage: 'connecting' };
    var peers = [];
    var sending = [];
    var stopped = false;
    function publishLoop(peer) {
      peer.published = { ok: [], failed: [] };
      var n = 0;
      var inFlight = [];
      var timer = setInterval(function () {
        if (stopped) {
          return;
        }
        var data = { peer: peer.user, n: n };
        var sentAt = Date.now() - peer.started;
        n += 1;
        var call = peer.client.publish(env.channel, data).then(function () {
          peer.published.ok.push(data.n);
        }, function (err) {
          peer.published.failed.push({ n: data.n, at: sentAt, error: plain(err) });
        });
        inFlight.push(call);
      }, Math.max(1, Math.round(1000 / env.rate)));
      return function stop() {
        clearInterval(timer);
        return Promise.all(inFlight);
      };
    }
    try {
      await addSubscribers(env, hub, peers);
      result.stage = 'subscribing';
      await hub.waitFor('every client subscribed', function () {
        return peers.every(function (p) { return p.subs[env.channel].subscribedCount > 0; });
      }, deadline, null);
      result.stage = 'start';
      await env.ask('start', {}, Math.max(1, deadline - Date.now()));
      result.stage = 'live';
      sending = peers.map(publishLoop);
      await env.ask('live', { transports: env.transports }, Math.max(1, deadline - Date.now()));
      stopped = true;
      result.stage = 'settling';
      await Promise.race([
        Promise.all(sending.map(function (stop) { return stop(); })),
        sleepWithPokes(hub, env.settleMs),
      ]);
      result.stage = 'final';
      var last = (await env.ask('final', {}, Math.max(1, deadline - Date.now()))).offset;
      // A client resubscribed with recovered:false at or past the marker has it too:
      // its stream position says so (the test judges what it missed).
      await hub.waitFor('offset ' + last + ' at every client', function () {
        return peers.every(function (p) {
          var told = subscribedCtx(p.subs[env.channel]);
          return lastOffsetAtLeast([p], env.channel, last) ||
            (told && told.streamPosition && told.streamPosition.offset >= last);
        });
      }, Math.min(deadline, Date.now() + env.finalMs), null);
      result.stage = 'done';
    } catch (err) {
      result.error = errorText(err);
    } finally {
      stopped = true;
      peers.forEach(function (peer) {
        var report = subscriberReport(peer, env.channel);
        report.published = peer.published || { ok: [], failed: [] };
        result.clients[peer.name] = report;
        peer.disconnect();
      });
      result.elapsedMs = Date.now() - started;
    }
    return result;
  }

  return {
    runScenario: runScenario,
    runStream: runStream,
    runLive: runLive,
    runFallBehind: runFallBehind,
    Peer: Peer,
  };
}));
