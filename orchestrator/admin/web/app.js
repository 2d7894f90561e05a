// The obdorch dashboard: a snapshot of the sessions, then every change, from
// the admin listener's Server-Sent Events (/api/events). No framework and no
// build step. Only the rows in view are in the DOM (a fixed row height and two
// spacer rows stand for the rest), so rendering costs the same for 20 or
// 20,000 sessions, and bursts of changes are drawn once per frame.
'use strict';

const STATES = ['PENDING', 'STARTING', 'READY', 'RUNNING', 'FINISHING', 'FINISHED', 'FAILED', 'INTERRUPTED'];
const LIVE = new Set(['PENDING', 'STARTING', 'READY', 'RUNNING', 'FINISHING']);
const FAILED = new Set(['FAILED', 'INTERRUPTED']);
const RECENT_FAILURE_MS = 15 * 60 * 1000;
const ROW_H = 24; // matches tbody tr { height } in app.css
const OVERSCAN = 10;

const $ = (id) => document.getElementById(id);
const sessions = new Map(); // id -> row data
const counts = new Map(STATES.map((s) => [s, 0]));
let order = []; // ids that pass the filters, newest first
const pool = []; // row elements, reused
let me = null;
let stateFilter = '';
let textFilter = '';
let selected = '';
let source = null;
let snapshotSeen = false;
let renderQueued = false;

// Hooks for automated checks: when the first snapshot was painted
// (milliseconds since navigation), and a promise for a row on screen.
const waiters = [];
window.obdDash = {
  firstRenderMs: 0,
  rows: () => sessions.size,
  // waitRow resolves with Date.now() once a frame showing session id's row
  // in state (any state when empty) has been painted.
  waitRow(id, state) {
    return new Promise((resolve) => { waiters.push({ id, state, resolve }); scheduleRender(); });
  },
};

function text(el, v) {
  const s = v == null ? '' : String(v);
  if (el.textContent !== s) el.textContent = s;
}

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

function newer(a, b) { return b.created - a.created || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0); }

function rebuildOrder() {
  const rows = [];
  for (const d of sessions.values()) if (matches(d)) rows.push(d);
  rows.sort(newer);
  order = rows.map((d) => d.id);
}

function makeRow() {
  const tr = document.createElement('tr');
  for (let i = 0; i < 8; i++) tr.appendChild(document.createElement('td'));
  tr.cells[7].className = 'reason';
  return tr;
}

function fillRow(tr, d) {
  const c = tr.cells;
  tr.dataset.id = d.id;
  text(c[0], d.state); c[0].className = 'state s-' + d.state;
  text(c[1], d.ticket_number || (d.ticket_id ? d.ticket_id.slice(0, 8) : ''));
  text(c[2], d.connector_id ? d.connector_id.slice(0, 8) : '');
  c[2].title = d.connector_id || '';
  text(c[3], d.vin);
  text(c[4], d.owner);
  text(c[5], leaseText(d));
  text(c[6], ago(d.created));
  text(c[7], d.reason);
  c[7].title = d.reason || '';
  tr.classList.toggle('recentfail', recentFailure(d));
  tr.classList.toggle('sel', d.id === selected);
}

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => { renderQueued = false; render(); });
}

// render draws the rows in view, the counts and the waiters' checks. It runs
// in an animation frame; a timeout set here runs after that frame's paint.
function render() {
  const sc = $('scroller');
  const first = Math.max(0, Math.floor(sc.scrollTop / ROW_H) - OVERSCAN);
  const last = Math.min(order.length, Math.ceil((sc.scrollTop + sc.clientHeight) / ROW_H) + OVERSCAN);
  const n = Math.max(0, last - first);
  $('above').style.height = first * ROW_H + 'px';
  $('below').style.height = (order.length - first - n) * ROW_H + 'px';
  while (pool.length < n) pool.push(makeRow());
  const frag = document.createDocumentFragment();
  for (let i = 0; i < n; i++) {
    fillRow(pool[i], sessions.get(order[first + i]));
    frag.appendChild(pool[i]);
  }
  for (let i = n; i < pool.length; i++) pool[i].remove();
  $('rows').insertBefore(frag, $('below'));
  renderCounts();

  for (let i = waiters.length - 1; i >= 0; i--) {
    const w = waiters[i];
    const tr = pool.slice(0, n).find((r) => r.dataset.id === w.id);
    if (tr && (!w.state || tr.cells[0].textContent === w.state)) {
      waiters.splice(i, 1);
      setTimeout(() => w.resolve(Date.now()), 0);
    }
  }
  if (snapshotSeen && !window.obdDash.firstRenderMs) {
    setTimeout(() => { window.obdDash.firstRenderMs = performance.now(); }, 0);
  }
}

function renderCounts() {
  const box = $('counts');
  if (!box.firstChild) {
    for (const s of [''].concat(STATES)) {
      const b = document.createElement('button');
      b.type = 'button';
      b.dataset.state = s;
      b.append(s || 'ALL', document.createElement('b'));
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
    text(b.lastChild, s ? counts.get(s) : sessions.size);
    b.classList.toggle('sel', s === stateFilter);
  }
  let failures = 0;
  for (const d of sessions.values()) if (recentFailure(d)) failures++;
  text($('failures'), failures ? failures + ' session' + (failures > 1 ? 's' : '') + ' failed or were interrupted in the last 15 minutes (highlighted)' : '');
  text($('shown'), order.length + ' of ' + sessions.size + ' shown');
}

function refilter() {
  rebuildOrder();
  scheduleRender();
}

function applySnapshot(msg) {
  sessions.clear();
  for (const s of STATES) counts.set(s, 0);
  for (const d of msg.sessions) {
    sessions.set(d.id, d);
    counts.set(d.state, counts.get(d.state) + 1);
  }
  rebuildOrder();
  snapshotSeen = true;
  scheduleRender();
  if (selected) showDetail(selected);
}

function applyChange(msg) {
  const d = msg.session;
  const cur = sessions.get(d.id);
  if (cur && cur.revision >= d.revision) return; // the snapshot was newer
  if (cur) counts.set(cur.state, counts.get(cur.state) - 1);
  sessions.set(d.id, d);
  counts.set(d.state, counts.get(d.state) + 1);
  const at = cur ? order.indexOf(d.id) : -1;
  const want = matches(d);
  if (at >= 0 && !want) {
    order.splice(at, 1);
  } else if (at < 0 && want) {
    let i = 0;
    while (i < order.length && newer(sessions.get(order[i]), d) < 0) i++;
    order.splice(i, 0, d.id);
  }
  scheduleRender();
  if (d.id === selected) showDetail(selected);
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
  scheduleRender();
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

// start asks who the caller is and opens the event stream at the same time,
// so the snapshot does not wait for the answer.
async function start() {
  connect();
  const res = await fetch('api/me');
  if (res.status === 401) {
    if (source) { source.close(); source = null; }
    $('app').hidden = true; $('login').hidden = false; $('logout').hidden = true;
    text($('who'), '');
    return;
  }
  if (!res.ok) {
    if (source) { source.close(); source = null; }
    text($('error'), 'api/me: ' + (await errorOf(res)));
    setTimeout(start, 2000);
    return;
  }
  me = await res.json();
  text($('who'), me.name + ' (' + me.role + ')');
  $('logout').hidden = !me.auth;
  $('login').hidden = true; $('app').hidden = false;
  scheduleRender();
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
  await fetch('api/logout', { method: 'POST', headers: { 'Content-Type': 'application/json' } });
  if (source) { source.close(); source = null; }
  me = null;
  start();
}

document.addEventListener('DOMContentLoaded', () => {
  $('login').addEventListener('submit', login);
  $('logout').addEventListener('click', logout);
  $('interrupt').addEventListener('submit', interrupt);
  $('close').addEventListener('click', () => { selected = ''; $('detail').hidden = true; scheduleRender(); });
  $('rows').addEventListener('click', (e) => {
    const tr = e.target.closest('tr');
    if (tr && tr.dataset.id) showDetail(tr.dataset.id);
  });
  $('scroller').addEventListener('scroll', scheduleRender, { passive: true });
  window.addEventListener('resize', scheduleRender);
  let t = 0;
  $('filter').addEventListener('input', (e) => {
    clearTimeout(t);
    t = setTimeout(() => { textFilter = e.target.value.trim().toLowerCase(); refilter(); }, 120);
  });
  // Ages, lease countdowns and the recent-failure highlight move with the clock.
  setInterval(scheduleRender, 5000);
  start();
});
