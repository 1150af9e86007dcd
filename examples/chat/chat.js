/*
 * The demo chat: centrifuge-js 5 against sockhop's hub, over a native websocket
 * with SockJS as the fallback, or over one transport a person picks.
 *
 * Plain browser JavaScript, no build step. Centrifuge and SockJS are globals from
 * the two script tags of index.html. The page asks /demo/token (served by
 * `sockhop serve --demo` only) for a connection token in the name typed in.
 */
'use strict';

(function () {
  const DEFAULT_CHANNEL = 'lobby';
  // sockjs-client 1.6 transport names (xdr-* exist only in Internet Explorer 8-10).
  const SOCKJS_TRANSPORTS = [
    'websocket', 'xhr-streaming', 'xhr-polling', 'eventsource', 'iframe-eventsource',
    'htmlfile', 'iframe-htmlfile', 'iframe-xhr-polling', 'jsonp-polling',
  ];
  const AUTO = 'auto';
  const CHOICES = [AUTO, 'websocket'].concat(SOCKJS_TRANSPORTS.map((name) => 'sockjs-' + name));

  const params = new URLSearchParams(window.location.search);
  const channel = params.get('channel') || DEFAULT_CHANNEL;
  const $ = (id) => document.getElementById(id);
  let client = null;
  let subscription = null;
  let online = new Map(); // user -> number of connections in the channel

  function setState(state, detail) {
    document.body.dataset.state = state;
    $('state').textContent = detail ? state + ' (' + detail + ')' : state;
  }

  function showTransport(name) {
    document.body.dataset.transport = name;
    $('transport-in-use').textContent = name;
  }

  /* centrifuge-js endpoints and SockJS options for one choice of the selector. */
  function transportsFor(choice) {
    const secure = window.location.protocol === 'https:';
    const websocket = {
      transport: 'websocket',
      endpoint: (secure ? 'wss://' : 'ws://') + window.location.host + '/connection/websocket',
    };
    const sockjs = {
      transport: 'sockjs',
      endpoint: window.location.origin + '/connection/sockjs',
    };
    if (choice === 'websocket') {
      return { endpoints: [websocket], sockjsTransports: SOCKJS_TRANSPORTS };
    }
    if (choice.startsWith('sockjs-')) {
      return { endpoints: [sockjs], sockjsTransports: [choice.slice('sockjs-'.length)] };
    }
    return { endpoints: [websocket, sockjs], sockjsTransports: SOCKJS_TRANSPORTS };
  }

  async function fetchToken(name) {
    const response = await fetch('/demo/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: name }),
    });
    if (response.ok) {
      return (await response.json()).token;
    }
    const reason = 'token: HTTP ' + response.status + ' ' + (await response.text());
    if (response.status >= 400 && response.status < 500) {
      // centrifuge-js gives up on UnauthorizedError, and retries on any other error.
      throw new Centrifuge.UnauthorizedError(reason);
    }
    throw new Error(reason);
  }

  function addMessage(author, text, kind) {
    const item = document.createElement('li');
    item.className = kind;
    const who = document.createElement('b');
    who.className = 'author';
    who.textContent = author;
    const what = document.createElement('span');
    what.className = 'text';
    what.textContent = text;
    item.append(who, ' ', what);
    $('messages').append(item);
    item.scrollIntoView({ block: 'nearest' });
  }

  function renderOnline() {
    const list = $('presence');
    list.replaceChildren(...[...online.keys()].sort().map((user) => {
      const item = document.createElement('li');
      item.textContent = user;
      return item;
    }));
  }

  function countOnline(user, change) {
    const count = (online.get(user) || 0) + change;
    if (count > 0) {
      online.set(user, count);
    } else {
      online.delete(user);
    }
    renderOnline();
  }

  async function loadPresence(sub) {
    try {
      const result = await sub.presence();
      online = new Map();
      for (const info of Object.values(result.clients)) {
        online.set(info.user, (online.get(info.user) || 0) + 1);
      }
      renderOnline();
      $('presence-panel').hidden = false;
    } catch (err) {
      // Presence is optional: a configuration without it still chats.
      $('presence-panel').hidden = true;
    }
  }

  function subscribe(centrifuge) {
    const sub = centrifuge.newSubscription(channel);
    sub.on('subscribing', (ctx) => setState('subscribing', ctx.reason));
    sub.on('subscribed', (ctx) => {
      setState('subscribed', ctx.recovered ? 'recovered' : '');
      loadPresence(sub);
    });
    sub.on('unsubscribed', (ctx) => setState('unsubscribed', ctx.code + ' ' + ctx.reason));
    sub.on('error', (ctx) => addMessage('error', ctx.error.message, 'error'));
    sub.on('publication', (ctx) => {
      const data = ctx.data || {};
      addMessage(String(data.name || '?'), String(data.text || ''), 'message');
    });
    sub.on('join', (ctx) => countOnline(ctx.info.user, +1));
    sub.on('leave', (ctx) => countOnline(ctx.info.user, -1));
    sub.subscribe();
    return sub;
  }

  function connect(name, choice) {
    if (client) {
      client.disconnect();
    }
    const { endpoints, sockjsTransports } = transportsFor(choice);
    showTransport('none');
    online = new Map();
    renderOnline();
    client = new Centrifuge(endpoints, {
      sockjs: window.SockJS,
      sockjsOptions: { transports: sockjsTransports },
      getToken: () => fetchToken(name),
      debug: params.has('debug'),
    });
    client.on('connecting', (ctx) => setState('connecting', ctx.reason));
    client.on('connected', (ctx) => {
      showTransport(ctx.transport);
      setState('connected');
    });
    client.on('disconnected', (ctx) => {
      showTransport('none');
      setState('disconnected', ctx.code + ' ' + ctx.reason);
    });
    client.on('error', (ctx) => console.warn('centrifuge:', ctx.type, ctx.error));
    subscription = subscribe(client);
    client.connect();
    $('channel-name').textContent = channel;
    $('room').hidden = false;
  }

  async function send(event) {
    event.preventDefault();
    const input = $('message');
    const text = input.value.trim();
    if (!text || !subscription) {
      return;
    }
    try {
      await subscription.publish({ name: $('name').value.trim(), text: text });
      input.value = '';
    } catch (err) {
      addMessage('error', 'not sent: ' + (err.message || err.code), 'error');
    }
  }

  function start() {
    const select = $('transport');
    for (const choice of CHOICES) {
      const option = document.createElement('option');
      option.value = choice;
      option.textContent = choice === AUTO ? 'auto (websocket, then SockJS)' : choice;
      select.append(option);
    }
    const picked = params.get('transport');
    select.value = CHOICES.includes(picked) ? picked : AUTO;
    $('name').value = params.get('name') || '';
    $('join-form').addEventListener('submit', (event) => {
      event.preventDefault();
      connect($('name').value.trim(), select.value);
    });
    $('send-form').addEventListener('submit', send);
  }

  start();
})();
