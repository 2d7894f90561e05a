// The obdorch dashboard: a snapshot of the sessions, then every change, from
// the admin listener's Server-Sent Events (/api/events). No framework and no
// build step: rows are kept in a Map and updated in place, so a change costs
// one row whatever the table's size.
'use strict';

const STATES = ['PENDING', 'STARTING', 'READY', 'RUNNING', 'FINISHING', 'FINISHED', 'FAILED', 'INTERRUPTED'];
const LIVE = new Set(['PENDING', 'STARTING', 'READY', 'RUNNING', 'FINISHING']);
const FAILED = new Set(['FAILED', 'INTERRUPTED']);
const RECENT_FAILURE_MS = 15 * 60 * 1000;

const $ = (id) => document.getElementById(id);
const sessions = new Map(); // id -> {data, tr}
const counts = new Map(STATES.map((s) => [s, 0]));
let me = null;
let stateFilter = '';
let textFilter = '';
let selected = '';
let source = null;

// Hooks for automated checks: when the first snapshot was painted
// (milliseconds since navigation), and a promise for a row reaching a state.
const waiters = [];
window.obdDash = {
  firstRenderMs: 0,
  rows: () => sessions.size,
  // waitRow resolves with Date.now() at the first paint that shows session
  // id in state (or any state when state is empty).
  waitRow(id, state) {
    return new Promise((resolve) => {
      const s = sessions.get(id);
      if (s && (!state || s.data.state === state)) { afterPaint(() => resolve(Date.now())); return; }
      waiters.push({ id, state, resolve });
    });
  },
};

function afterPaint(fn) { requestAnimationFrame(() => setTimeout(fn, 0)); }

function text(el, v) { el.textContent = v == null ? '' : String(v); }

function ago(ms) {
  if (!ms) return '';
  let s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return s + 's';
  const m = Math.floor(s / 60); s %= 60;
  if (m < 60) return m + 'm' + (s ? ' ' + s + 's' : '');
  const h = Math.floor(m / 60);
  return h + 'h ' + (m % 60) + 'm';
}

function leaseText(d) {
  if (!d.lease_holder) return '';
  const left = Math.round((d.lease_expire - Date.now()) / 1000);
  return d.lease_holder + (left >= 0 ? ' (' + left + 's left)' : ' (expired)');
}

function recentFailure(d) { return FAILED.has(d.state) && Date.now() - d.updated < RECENT_FAILURE_MS; }

function matches(d) {
  if (stateFilter && d.state !== stateFilter) return false;
  if (!textFilter) return true;
  const hay = [d.id, d.ticket_number, d.ticket_id, d.connector_id, d.vin, d.owner, d.lease_holder, d.reason].join(' ').toLowerCase();
  return hay.includes(textFilter);
}

function makeRow(d) {
  const tr = document.createElement('tr');
  tr.dataset.id = d.id;
  for (let i = 0; i < 8; i++) tr.appendChild(document.createElement('td'));
  tr.cells[0].className = 'state';
  tr.cells[7].className = 'reason';
  fillRow(tr, d);
  return tr;
}

function fillRow(tr, d) {
  const c = tr.cells;
  text(c[0], d.state); c[0].className = 'state s-' + d.state;
  text(c[1], d.ticket_number || (d.ticket_id ? d.ticket_id.slice(0, 8) : ''));
  text(c[2], d.connector_id ? d.connector_id.slice(0, 8) : '');
  c[2].title = d.connector_id || '';
  text(c[3], d.vin);
  text(c[4], d.owner);
  text(c[5], leaseText(d));
  text(c[6], ago(d.created));
  text(c[7], d.reason);
  tr.classList.toggle('recentfail', recentFailure(d));
  tr.classList.toggle('hide', !matches(d));
  tr.classList.toggle('sel', d.id === selected);
}

function renderCounts() {
  const box = $('counts');
  if (!box.firstChild) {
    const all = document.createElement('button');
    all.dataset.state = '';
    box.appendChild(all);
    for (const s of STATES) {
      const b = document.createElement('button');
      b.dataset.state = s;
      box.appendChild(b);
    }
    box.addEventListener('click', (e) => {
      const b = e.target.closest('button');
      if (!b) return;
      stateFilter = b.dataset.state;
      refilter();
    });
  }
  for (const b of box.children) {
    const s = b.dataset.state;
    b.textContent = s || 'ALL';
    const n = document.createElement('b');
    n.textContent = s ? counts.get(s) : sessions.size;
    b.appendChild(n);
    b.classList.toggle('sel', s === stateFilter);
  }
  let failures = 0;
  for (const { data } of sessions.values()) if (recentFailure(data)) failures++;
  text($('failures'), failures ? failures + ' session' + (failures > 1 ? 's' : '') + ' failed or were interrupted in the last 15 minutes (highlighted)' : '');
}

function renderShown() {
  let n = 0;
  for (const { data } of sessions.values()) if (matches(data)) n++;
  text($('shown'), n + ' of ' + sessions.size + ' shown');
}

function refilter() {
  for (const { data, tr } of sessions.values()) tr.classList.toggle('hide', !matches(data));
  renderCounts();
  renderShown();
}

function applySnapshot(msg) {
  sessions.clear();
  for (const s of STATES) counts.set(s, 0);
  const rows = msg.sessions.slice().sort((a, b) => b.created - a.created || (a.id < b.id ? -1 : 1));
  const frag = document.createDocumentFragment();
  for (const d of rows) {
    const tr = makeRow(d);
    sessions.set(d.id, { data: d, tr });
    counts.set(d.state, counts.get(d.state) + 1);
    frag.appendChild(tr);
  }
  $('rows').replaceChildren(frag);
  renderCounts();
  renderShown();
  if (selected) showDetail(selected);
  if (!window.obdDash.firstRenderMs) afterPaint(() => { window.obdDash.firstRenderMs = performance.now(); });
  settleWaiters();
}

function applyChange(msg) {
  const d = msg.session;
  const cur = sessions.get(d.id);
  if (cur && cur.data.revision >= d.revision) return; // the snapshot was newer
  if (cur) {
    counts.set(cur.data.state, counts.get(cur.data.state) - 1);
    cur.data = d;
    fillRow(cur.tr, d);
  } else {
    const tr = makeRow(d);
    sessions.set(d.id, { data: d, tr });
    $('rows').prepend(tr);
  }
  counts.set(d.state, counts.get(d.state) + 1);
  renderCounts();
  if (textFilter || stateFilter) renderShown(); else text($('shown'), sessions.size + ' of ' + sessions.size + ' shown');
  if (d.id === selected) showDetail(selected);
  settleWaiters();
}

function settleWaiters() {
  for (let i = waiters.length - 1; i >= 0; i--) {
    const w = waiters[i];
    const s = sessions.get(w.id);
    if (s && (!w.state || s.data.state === w.state)) {
      waiters.splice(i, 1);
      afterPaint(() => w.resolve(Date.now()));
    }
  }
}

function connect() {
  if (source) source.close();
  source = new EventSource('api/events');
  source.onopen = () => { $('conn').className = 'conn on'; text($('conn'), 'live'); };
  source.onerror = () => {
    $('conn').className = 'conn off';
    text($('conn'), source.readyState === EventSource.CLOSED ? 'disconnected' : 'reconnecting');
    if (source.readyState === EventSource.CLOSED) setTimeout(start, 2000); // e.g. the token was revoked
  };
  source.addEventListener('snapshot', (e) => applySnapshot(JSON.parse(e.data)));
  source.addEventListener('session', (e) => applyChange(JSON.parse(e.data)));
  source.addEventListener('stream-error', (e) => text($('error'), 'event stream: ' + JSON.parse(e.data).error));
}

async function showDetail(id) {
  selected = id;
  for (const { data, tr } of sessions.values()) tr.classList.toggle('sel', data.id === id);
  const res = await fetch('api/sessions/' + encodeURIComponent(id));
  if (selected !== id) return;
  if (!res.ok) { text($('error'), 'session ' + id + ': ' + (await errorOf(res))); return; }
  const d = await res.json();
  $('detail').hidden = false;
  text($('d-title'), d.id);
  const fields = [
    ['state', d.state], ['ticket', [d.ticket_number, d.ticket_id].filter(Boolean).join(' · ')],
    ['connector', d.connector_id], ['VIN', d.vin], ['owner', d.owner],
    ['runner lease', leaseText(d)], ['openOBD', [d.openobd_session_id, d.openobd_state].filter(Boolean).join(' · ')],
    ['endpoint', d.grpc_endpoint], ['created', new Date(d.created).toLocaleString()],
    ['updated', new Date(d.updated).toLocaleString()], ['actor', d.actor], ['reason', d.reason],
    ['buses', (d.buses || []).map((b) => b.name).join(', ')],
    ['result', d.result ? JSON.stringify(d.result) : ''],
  ];
  const dl = $('d-fields');
  dl.replaceChildren();
  for (const [k, v] of fields) {
    if (!v) continue;
    const dt = document.createElement('dt'); text(dt, k);
    const dd = document.createElement('dd'); text(dd, v);
    dl.append(dt, dd);
  }
  const ol = $('d-history');
  ol.replaceChildren();
  for (const h of d.history) {
    const li = document.createElement('li');
    text(li, new Date(h.time).toLocaleTimeString() + '  ' + (h.from ? h.from + ' → ' : '') + h.to +
      (h.actor ? '  by ' + h.actor : '') + (h.reason ? ': ' + h.reason : ''));
    ol.appendChild(li);
  }
  $('interrupt').hidden = !(me && me.role === 'admin' && LIVE.has(d.state));
}

async function errorOf(res) {
  try { return (await res.json()).error || res.statusText; } catch { return res.status + ' ' + res.statusText; }
}

async function interrupt(e) {
  e.preventDefault();
  const id = selected;
  const reason = $('reason').value.trim();
  text($('interrupt-msg'), 'interrupting…');
  const res = await fetch('api/sessions/' + encodeURIComponent(id) + '/interrupt', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ reason }),
  });
  text($('interrupt-msg'), res.ok ? 'interrupted' : 'refused: ' + (await errorOf(res)));
  if (res.ok) $('reason').value = '';
}

async function start() {
  const res = await fetch('api/me');
  if (res.status === 401) {
    $('app').hidden = true; $('login').hidden = false; $('logout').hidden = true;
    text($('who'), '');
    return;
  }
  if (!res.ok) { text($('error'), 'api/me: ' + (await errorOf(res))); setTimeout(start, 2000); return; }
  me = await res.json();
  text($('who'), me.name + ' (' + me.role + ')');
  $('logout').hidden = !me.auth;
  $('login').hidden = true; $('app').hidden = false;
  connect();
}

async function login(e) {
  e.preventDefault();
  const res = await fetch('api/login', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token: $('token').value }),
  });
  if (!res.ok) { text($('login-error'), await errorOf(res)); return; }
  $('token').value = ''; text($('login-error'), '');
  start();
}

async function logout() {
  await fetch('api/logout', { method: 'POST' });
  if (source) { source.close(); source = null; }
  me = null;
  start();
}

document.addEventListener('DOMContentLoaded', () => {
  $('login').addEventListener('submit', login);
  $('logout').addEventListener('click', logout);
  $('interrupt').addEventListener('submit', interrupt);
  $('close').addEventListener('click', () => { selected = ''; $('detail').hidden = true; refilter(); });
  $('rows').addEventListener('click', (e) => { const tr = e.target.closest('tr'); if (tr) showDetail(tr.dataset.id); });
  let t = 0;
  $('filter').addEventListener('input', (e) => {
    clearTimeout(t);
    t = setTimeout(() => { textFilter = e.target.value.trim().toLowerCase(); refilter(); }, 120);
  });
  // Ages, lease countdowns and the recent-failure highlight move with the clock.
  setInterval(() => {
    for (const { data, tr } of sessions.values()) {
      if (tr.classList.contains('hide')) continue;
      text(tr.cells[6], ago(data.created));
      if (data.lease_holder) text(tr.cells[5], leaseText(data));
      tr.classList.toggle('recentfail', recentFailure(data));
    }
  }, 5000);
  start();
});
