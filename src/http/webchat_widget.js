/*
 * threadcart web chat widget: one <script src=".../webchat/widget.js" data-key="wc_..." async> on any
 * site gives a chat launcher and panel. No build step, no dependency, no global but `window.threadcart`.
 *
 * It renders in a Shadow DOM (the site's CSS stays out), keeps the visitor token in localStorage (the
 * conversation survives reloads and later visits), reads the conversation's history, then follows its
 * event stream with fetch() (EventSource cannot send the token in a header, and the token never goes in
 * a URL), reconnecting by itself with Last-Event-ID.
 */
(() => {
  'use strict';
  if (window.threadcart) return; // The tag twice on one page: one widget.

  // `async` scripts have no currentScript in some browsers: find the tag by its src.
  const tag =
    document.currentScript || document.querySelector('script[src$="/webchat/widget.js"][data-key]');
  const key = tag && tag.dataset.key;
  if (!key) return;
  const base = new URL(tag.src, location.href).origin;
  const api = `${base}/webchat/v1/conversations`;
  const storeKey = `threadcart:${key}`;
  const PAGE = 200;
  const MAX_BACKOFF_MS = 30000;

  // ---- Storage (private modes throw or forget: the chat then lasts as long as the page) ----
  const storage = {
    read(store, name) {
      try {
        return window[store].getItem(name);
      } catch (_) {
        return null;
      }
    },
    write(store, name, value) {
      try {
        if (value === null) window[store].removeItem(name);
        else window[store].setItem(name, value);
      } catch (_) {
        /* not kept */
      }
    },
  };
  function saved() {
    try {
      const v = JSON.parse(storage.read('localStorage', storeKey));
      return v && typeof v.token === 'string' ? v : null;
    } catch (_) {
      return null;
    }
  }
  const save = (c) =>
    storage.write('localStorage', storeKey, c && JSON.stringify({ token: c.token, conversation_id: c.id }));
  // Whether the panel was open, per tab: it stays open from page to page of the shop.
  const openKey = `${storeKey}:open`;

  // ---- The DOM: static markup only; every piece of data goes in through textContent and attributes ----
  const host = document.createElement('div');
  host.id = 'threadcart-chat';
  const root = host.attachShadow({ mode: 'open' });
  root.innerHTML = `
<style>
  :host { all: initial; }
  * { box-sizing: border-box; }
  .w { --accent: var(--threadcart-accent, #0b57d0); --ink: #1d1d1f; --muted: #5f6368;
       font: 15px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); }
  button, input, a { font: inherit; }
  :focus-visible { outline: 3px solid #ffbf00; outline-offset: 2px; }
  .sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0);
    white-space: nowrap; }
  .launcher { position: fixed; right: 16px; bottom: 16px; z-index: 2147483000; display: flex; gap: 8px;
    align-items: center; padding: 12px 18px; border: 0; border-radius: 999px; background: var(--accent);
    color: #fff; font-weight: 600; box-shadow: 0 4px 16px rgba(0,0,0,.25); cursor: pointer; }
  .launcher svg { width: 22px; height: 22px; fill: currentColor; }
  .panel { position: fixed; right: 16px; bottom: 80px; z-index: 2147483001; width: 370px;
    height: min(600px, calc(100vh - 100px)); display: flex; flex-direction: column; background: #fff;
    border-radius: 12px; box-shadow: 0 8px 32px rgba(0,0,0,.3); overflow: hidden; }
  .panel[hidden] { display: none; }
  header { display: flex; align-items: center; justify-content: space-between; padding: 10px 12px 10px 16px;
    background: var(--accent); color: #fff; }
  h2 { margin: 0; font-size: 16px; }
  .close { border: 0; background: transparent; color: #fff; font-size: 24px; line-height: 1; width: 40px;
    height: 40px; border-radius: 50%; cursor: pointer; }
  .scroll { flex: 1; overflow-y: auto; padding: 12px; background: #f5f6f8; overscroll-behavior: contain; }
  ol { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 8px; }
  li { display: flex; flex-direction: column; align-items: flex-start; max-width: 100%; }
  li.in { align-items: flex-end; }
  .bubble { margin: 0; padding: 8px 12px; border-radius: 14px; background: #fff; border: 1px solid #e0e0e0;
    max-width: 85%; white-space: pre-wrap; overflow-wrap: anywhere; }
  li.in .bubble { background: var(--accent); border-color: var(--accent); color: #fff; }
  .actions, .qr { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 6px; }
  .qr { justify-content: flex-end; margin-top: 10px; }
  .btn { display: inline-block; padding: 6px 12px; border: 1px solid var(--accent); border-radius: 999px;
    background: #fff; color: var(--accent); text-decoration: none; cursor: pointer; text-align: center; }
  .btn.pay { background: var(--accent); color: #fff; font-weight: 600; }
  .cards { display: flex; gap: 8px; overflow-x: auto; max-width: 100%; padding-bottom: 4px;
    scroll-snap-type: x mandatory; }
  .card { flex: 0 0 220px; scroll-snap-align: start; background: #fff; border: 1px solid #e0e0e0;
    border-radius: 12px; overflow: hidden; display: flex; flex-direction: column; }
  .card img { width: 100%; aspect-ratio: 4 / 3; object-fit: cover; background: #eee; display: block; }
  .card .body { padding: 8px 10px; display: flex; flex-direction: column; gap: 2px; flex: 1; }
  .card .title { margin: 0; font-weight: 600; }
  .card .title a { color: inherit; }
  .card .subtitle { margin: 0; color: var(--muted); font-size: 14px; white-space: pre-wrap; }
  .card .actions { flex-direction: column; margin-top: auto; padding-top: 6px; }
  .receipt { background: #fff; border: 1px solid #e0e0e0; border-radius: 12px; padding: 10px 12px;
    max-width: 85%; min-width: 220px; }
  .receipt h3 { margin: 0 0 4px; font-size: 15px; }
  .receipt p { margin: 0 0 6px; color: var(--muted); font-size: 14px; }
  table { border-collapse: collapse; width: 100%; font-size: 14px; }
  th, td { padding: 3px 0; text-align: left; vertical-align: top; font-weight: normal; }
  td { text-align: right; padding-left: 12px; white-space: nowrap; }
  tr.total th, tr.total td { font-weight: 700; border-top: 1px solid #ccc; }
  .status { margin: 0; padding: 0 12px; color: #b3261e; font-size: 14px; }
  .status:not(:empty) { padding: 6px 12px; }
  form { display: flex; gap: 8px; padding: 10px; border-top: 1px solid #e0e0e0; background: #fff; }
  input { flex: 1; min-width: 0; padding: 10px 12px; border: 1px solid #8a8f98; border-radius: 999px; }
  .send { padding: 10px 16px; border: 0; border-radius: 999px; background: var(--accent); color: #fff;
    font-weight: 600; cursor: pointer; }
  .send:disabled { opacity: .6; cursor: wait; }
  /* A phone: the whole screen; 100dvh keeps the input above the browser's bars and the keyboard. */
  @media (max-width: 480px) {
    .panel { inset: 0; width: 100%; height: 100vh; height: 100dvh; border-radius: 0; }
    .card { flex-basis: 75%; }
  }
</style>
<div class="w">
  <button type="button" class="launcher" aria-expanded="false" aria-controls="tc-panel">
    <svg viewBox="0 0 24 24" aria-hidden="true">
      <path d="M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z"/>
    </svg>
    <span>Chat with us</span>
  </button>
  <section class="panel" id="tc-panel" role="dialog" aria-label="Chat with us" hidden>
    <header>
      <h2>Chat with us</h2>
      <button type="button" class="close" aria-label="Close the chat">×</button>
    </header>
    <div class="scroll">
      <ol class="log" role="log" aria-live="polite" aria-label="Messages"></ol>
      <div class="qr" role="group" aria-label="Suggested replies"></div>
    </div>
    <p class="status" role="status" aria-live="polite"></p>
    <form>
      <label class="sr" for="tc-input">Your message</label>
      <input id="tc-input" type="text" autocomplete="off" maxlength="2000" placeholder="Write a message…">
      <button type="submit" class="send">Send</button>
    </form>
  </section>
</div>`;
  const $ = (s) => root.querySelector(s);
  const launcher = $('.launcher');
  const panel = $('.panel');
  const scroller = $('.scroll');
  const log = $('.log');
  const quick = $('.qr');
  const status = $('.status');
  const form = $('form');
  const input = $('input');
  const sendButton = $('.send');

  // ---- Building messages ----
  function el(name, attrs, ...children) {
    const e = document.createElement(name);
    for (const [k, v] of Object.entries(attrs || {})) if (v != null) e.setAttribute(k, v);
    for (const c of children) if (c != null) e.append(c);
    return e;
  }
  // Only http(s) links and pictures: a `javascript:` URL from anywhere never becomes clickable.
  function safeUrl(u) {
    try {
      const url = new URL(u);
      return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
    } catch (_) {
      return null;
    }
  }
  const money = (m) => (m ? `${m.amount} ${m.currency}` : '');

  /** A button of a message: a link (opening in a new tab; pay links look primary) or a postback. */
  function action(b) {
    if (!b || typeof b.title !== 'string') return null;
    if (b.url) {
      const href = safeUrl(b.url);
      if (!href) return null;
      return el('a', { class: b.pay ? 'btn pay' : 'btn', href, target: '_blank', rel: 'noopener' }, b.title);
    }
    if (typeof b.payload !== 'string') return null;
    const button = el('button', { type: 'button', class: 'btn' }, b.title);
    button.addEventListener('click', () => tap(b));
    return button;
  }
  const actions = (list) =>
    Array.isArray(list) && list.length ? el('div', { class: 'actions' }, ...list.map(action)) : null;

  function card(c) {
    const image = safeUrl(c.image_url);
    const link = safeUrl(c.default_url);
    const title = link
      ? el('a', { href: link, target: '_blank', rel: 'noopener' }, c.title || '')
      : c.title || '';
    return el(
      'div',
      { class: 'card', role: 'group', 'aria-label': c.title || null },
      image && el('img', { src: image, alt: '', loading: 'lazy' }),
      el(
        'div',
        { class: 'body' },
        el('p', { class: 'title' }, title),
        c.subtitle ? el('p', { class: 'subtitle' }, c.subtitle) : null,
        actions(c.buttons),
      ),
    );
  }

  function receipt(r) {
    const row = (name, value, cls) =>
      el('tr', { class: cls || null }, el('th', { scope: 'row' }, name), el('td', {}, value));
    const body = el('tbody');
    for (const l of r.lines || []) {
      const name = `${l.title}${l.subtitle ? ` (${l.subtitle})` : ''}${l.quantity ? ` × ${l.quantity}` : ''}`;
      body.append(row(name, money(l.price)));
    }
    if (r.subtotal && (r.adjustments || []).length) body.append(row('Subtotal', money(r.subtotal)));
    for (const a of r.adjustments || []) body.append(row(a.name, `−${money(a.amount)}`));
    body.append(row('Total', money(r.total), 'total'));
    const orderUrl = safeUrl(r.order_url);
    return el(
      'div',
      { class: 'receipt' },
      el('h3', {}, `Receipt · order ${r.order_number}`),
      el('p', {}, [r.recipient_name, r.payment_method].filter(Boolean).join(' · ')),
      el('table', {}, body),
      orderUrl &&
        el('p', {}, el('a', { href: orderUrl, target: '_blank', rel: 'noopener' }, 'See the order')),
    );
  }

  function render(m) {
    const mine = m.direction === 'in';
    const li = el('li', { class: mine ? 'in' : 'out', 'data-id': m.id, 'data-author': m.author || null });
    // Screen readers hear who speaks; the sides say it to the eye.
    li.append(el('span', { class: 'sr' }, mine ? 'You:' : 'Shop:'));
    if (typeof m.text === 'string' && m.text) li.append(el('p', { class: 'bubble' }, m.text));
    const buttons = !mine && actions(m.buttons);
    if (buttons) li.append(buttons);
    if (Array.isArray(m.cards) && m.cards.length) {
      li.append(el('div', { class: 'cards' }, ...m.cards.map(card)));
    }
    if (m.receipt) li.append(receipt(m.receipt));
    if (m.at) li.title = new Date(m.at).toLocaleString();
    return li;
  }

  // ---- The conversation shown ----
  const shown = new Map(); // id → message
  let lastId = null;

  /** Shows a message once, in id order (ids are time-ordered; a catch-up may bring an older one late). */
  function add(m) {
    if (!m || typeof m.id !== 'string' || shown.has(m.id)) return;
    shown.set(m.id, m);
    const nearBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
    let before = null;
    for (let e = log.lastElementChild; e && e.dataset.id > m.id; e = e.previousElementSibling) before = e;
    log.insertBefore(render(m), before);
    if (!lastId || m.id > lastId) {
      lastId = m.id;
      showQuickReplies(m);
    }
    if (nearBottom || m.direction === 'in') scroller.scrollTop = scroller.scrollHeight;
  }

  /** Quick replies belong to the last message only: replaced by each new one, gone once tapped. */
  function showQuickReplies(m) {
    quick.replaceChildren();
    if (m.direction !== 'out' || !Array.isArray(m.quick_replies)) return;
    for (const q of m.quick_replies) {
      const b = action({ title: q.title, payload: q.payload });
      if (b) quick.append(b);
    }
  }

  function clearShown() {
    shown.clear();
    lastId = null;
    log.replaceChildren();
    quick.replaceChildren();
  }

  const say = (text) => {
    status.textContent = text;
  };

  // ---- The API ----
  let conversation = null; // { id, token } once opened on this page
  let opening = Promise.resolve();

  const auth = (token) => (token ? { Authorization: `Bearer ${token}` } : {});
  function post(path, body, token) {
    return fetch(api + path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...auth(token) },
      body: JSON.stringify(body),
    });
  }
  /** The token is not (or no longer) the visitor's: start again as a new visitor. */
  const lostToken = (res) => res.status === 401 || res.status === 404;

  /** What the page tells the server about this visit: page, campaign, ref, name, locale. */
  function arrival(ref) {
    const body = { key };
    if (ref) body.ref = String(ref).slice(0, 200);
    if (/^https?:/.test(location.href)) body.page_url = location.href.slice(0, 2048);
    const params = new URLSearchParams(location.search);
    const utm = {};
    for (const k of ['utm_source', 'utm_medium', 'utm_campaign', 'utm_content', 'utm_term']) {
      const v = params.get(k);
      if (v) utm[k] = v.slice(0, 200);
    }
    if (Object.keys(utm).length) body.utm = utm;
    if (tag.dataset.name) body.name = tag.dataset.name;
    const locale = tag.dataset.locale || navigator.language;
    if (locale) body.locale = locale.slice(0, 35);
    return body;
  }

  /**
   * Opens or resumes the conversation (a `ref` makes a touch the bot answers), then reads the history
   * and follows the stream. Calls run one after the other, so a click during the first open waits.
   */
  function connect(ref) {
    opening = opening.catch(() => {}).then(() => openConversation(ref));
    opening.catch(() => say('The chat is not available right now. Please try again later.'));
    return opening;
  }

  async function openConversation(ref) {
    if (conversation && !ref) return;
    const known = conversation || saved();
    const body = arrival(ref);
    let res = await post('', body, known && known.token);
    if (known && lostToken(res)) {
      save(null);
      res = await post('', body, null);
    }
    if (!res.ok) {
      const problem = await res.json().catch(() => ({}));
      if (problem.code === 'origin_not_allowed') {
        console.warn(`threadcart: add ${location.origin} to the web chat's allowed origins`);
      }
      throw new Error(`opening the conversation answered ${res.status}`);
    }
    const data = await res.json();
    const fresh = !conversation || conversation.id !== data.conversation_id;
    conversation = { id: data.conversation_id, token: data.visitor_token };
    save(conversation);
    say('');
    if (fresh) {
      const c = conversation;
      clearShown();
      try {
        await history(c, null);
      } catch (_) {
        /* the stream's catch-up reads it */
      }
      if (c === conversation) follow(c);
    }
  }

  /** The token was refused: forget it and start a new conversation. */
  function restart() {
    stopStream();
    conversation = null;
    save(null);
    clearShown();
    return connect();
  }

  /** Reads the messages after `after` (all with null), page by page while pages come full. */
  async function history(c, after) {
    for (;;) {
      const q = new URLSearchParams({ limit: String(PAGE) });
      if (after) q.set('after', after);
      const res = await fetch(`${api}/${c.id}/messages?${q}`, { headers: auth(c.token), cache: 'no-store' });
      if (c !== conversation) return;
      if (lostToken(res)) return void restart();
      if (!res.ok) throw new Error('The messages could not be loaded.');
      const { data } = await res.json();
      data.forEach(add);
      if (data.length < PAGE) return;
      after = data[data.length - 1].id;
    }
  }

  // ---- The event stream ----
  let stream = null; // the AbortController of the open stream
  let retryTimer = null;
  let failures = 0;

  function stopStream() {
    clearTimeout(retryTimer);
    retryTimer = null;
    if (stream) stream.abort();
    stream = null;
  }

  /** Follows the conversation's events until the stream ends, then again after a backoff. */
  async function follow(c) {
    stopStream();
    const ctl = new AbortController();
    stream = ctl;
    const headers = { ...auth(c.token), Accept: 'text/event-stream' };
    // The server replays what came after this one: nothing is missed across reconnections.
    if (lastId) headers['Last-Event-ID'] = lastId;
    const from = lastId;
    try {
      const res = await fetch(`${api}/${c.id}/events`, { headers, signal: ctl.signal, cache: 'no-store' });
      if (lostToken(res)) return void restart();
      if (!res.ok || !res.body) throw new Error(`stream answered ${res.status}`);
      failures = 0;
      // Without a last id the stream starts after the newest message: one written between the history
      // and now is read from the list instead.
      if (!from) history(c, null).catch(() => {});
      await readEvents(res.body, ctl.signal);
    } catch (_) {
      /* the network or the server: reconnect below */
    }
    if (stream !== ctl || ctl.signal.aborted) return;
    const delay = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** failures);
    failures += 1;
    retryTimer = setTimeout(() => follow(c), delay);
  }

  /** Parses Server-Sent Events (`event`, `data`; comments ignored) and shows each message. */
  async function readEvents(body, signal) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    let type = 'message';
    let data = [];
    while (!signal.aborted) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      // The server ends lines with \n; a \r\n split across chunks is kept whole by leaving a trailing \r.
      const lines = buffer.split(/\r?\n/);
      buffer = lines.pop();
      for (const line of lines) {
        if (line === '') {
          if (type === 'message' && data.length) {
            try {
              add(JSON.parse(data.join('\n')));
            } catch (_) {
              /* not a message */
            }
          }
          type = 'message';
          data = [];
        } else if (!line.startsWith(':')) {
          const i = line.indexOf(':');
          const field = i < 0 ? line : line.slice(0, i);
          const v = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
          if (field === 'event') type = v;
          else if (field === 'data') data.push(v);
        }
      }
    }
  }

  // A tab coming back, or the network: reconnect now rather than at the end of a long backoff.
  function reconnectNow() {
    if (retryTimer && conversation && document.visibilityState === 'visible') {
      failures = 0;
      follow(conversation);
    }
  }
  document.addEventListener('visibilitychange', reconnectNow);
  window.addEventListener('online', reconnectNow);

  // ---- Sending ----
  const clientId = () =>
    crypto.randomUUID
      ? crypto.randomUUID()
      : Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0'))
          .join('');

  /** Posts what the visitor says; a network failure or a 5xx is retried once with the same client_id
   *  (the server takes it once). Answers whether it was taken. */
  async function send(body) {
    sendButton.disabled = true;
    say('');
    try {
      await connect();
      if (!conversation) return false;
      const c = conversation;
      const message = { ...body, client_id: clientId() };
      for (let attempt = 0; attempt < 2; attempt += 1) {
        let res = null;
        try {
          res = await post(`/${c.id}/messages`, message, c.token);
        } catch (_) {
          /* offline: retried */
        }
        if (res && res.ok) return true;
        if (res && lostToken(res)) {
          await restart();
          break;
        }
        if (res && res.status < 500 && res.status !== 429) break;
        if (attempt === 0) await new Promise((r) => setTimeout(r, 1000));
      }
      say('Your message could not be sent. Please try again.');
      return false;
    } catch (_) {
      say('Your message could not be sent. Please try again.');
      return false;
    } finally {
      sendButton.disabled = false;
    }
  }

  function tap(b) {
    quick.replaceChildren();
    send({ payload: b.payload, title: b.title });
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text || sendButton.disabled) return;
    if (await send({ text })) input.value = '';
    input.focus();
  });

  // ---- Opening and closing ----
  /** Opens the panel (on `ref` when given) and moves the focus into it. */
  function open(options) {
    show(true);
    return connect((options && options.ref) || null);
  }

  function show(focus) {
    const wasOpen = !panel.hidden;
    panel.hidden = false;
    launcher.setAttribute('aria-expanded', 'true');
    storage.write('sessionStorage', openKey, '1');
    if (!wasOpen) {
      if (focus) input.focus();
      scroller.scrollTop = scroller.scrollHeight;
    }
  }

  function close() {
    if (panel.hidden) return;
    panel.hidden = true;
    launcher.setAttribute('aria-expanded', 'false');
    storage.write('sessionStorage', openKey, null);
    launcher.focus();
  }

  // The tag's own data-ref is the page's topic: the first open from the launcher brings it up.
  let pageRef = tag.dataset.ref || null;
  launcher.addEventListener('click', () => {
    if (!panel.hidden) return close();
    const ref = pageRef;
    pageRef = null;
    open({ ref });
  });
  $('.close').addEventListener('click', close);
  panel.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') {
      e.preventDefault();
      close();
    }
  });
  // "Ask about it in the chat" buttons anywhere on the page, even ones added later.
  document.addEventListener('click', (e) => {
    const source = e.target instanceof Element ? e.target.closest('[data-threadcart-ref]') : null;
    if (!source) return;
    e.preventDefault();
    open({ ref: source.getAttribute('data-threadcart-ref') });
  });

  window.threadcart = { open, close };

  function start() {
    document.body.append(host);
    const linked = new URLSearchParams(location.search).get('tc_ref');
    if (linked) open({ ref: linked });
    // Open on the previous page of this tab: open again, without taking the page's focus.
    else if (storage.read('sessionStorage', openKey)) {
      show(false);
      connect();
    }
  }
  if (document.body) start();
  else document.addEventListener('DOMContentLoaded', start);
})();
