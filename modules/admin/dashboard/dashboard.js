// torii's admin dashboard. Reads the admin endpoints of the origin that served it at each
// refresh and draws them; keeps the last HISTORY samples in memory to chart rates and
// latency percentiles (from the stats plugin's Prometheus histograms, diffed over WINDOW
// samples, as Prometheus' rate() and histogram_quantile() would). No library, no network
// access beyond this origin (the page's Content-Security-Policy says so too).
'use strict';

const HISTORY = 150;          // samples kept for the charts
const WINDOW = 5;             // samples a rate or a percentile is computed over
const TOKEN_KEY = 'torii-admin-token';
const CHARTS = [['rps', 'req/s'], ['errors', '%'], ['latency', 'ms'], ['upstream-rps', 'attempts/s'],
                ['upstream-errors', '%'], ['upstream', 'ms']];
const PALETTE = ['#2f5bd3', '#d14d41', '#1a7f37', '#b26a00', '#8250df', '#0a8a8a', '#bf3989',
                 '#57606a'];

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || '',
  interval: 2000,
  timer: 0,
  configGeneration: -1,
  config: null,
  hasBreakers: false,         // the circuit_breaker plugin's endpoint answered at the last load
  samples: [],                // {t, routes: Map, targets: Map}
  series: {rps: new Map(), errors: new Map(), latency: new Map(), upstream: new Map(),
           'upstream-rps': new Map(), 'upstream-errors': new Map()},
  colours: new Map(),
};

class AuthNeeded extends Error {}

// ---- fetching -------------------------------------------------------------------------------

async function get(path, kind) {
  const headers = state.token ? {Authorization: 'Bearer ' + state.token} : {};
  const res = await fetch(path, {headers, cache: 'no-store'});
  if (res.status === 401) throw new AuthNeeded();
  if (res.status === 404) return null;                 // a plugin that is not loaded
  if (!res.ok) throw new Error(path + ': HTTP ' + res.status);
  return kind === 'text' ? res.text() : res.json();
}

// ---- Prometheus text ------------------------------------------------------------------------

// name -> [{labels: {..}, value}]
function parseMetrics(text) {
  const out = new Map();
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let l;
      while ((l = re.exec(m[3])))
        labels[l[1]] = l[2].replace(/\\n/g, '\n').replace(/\\(.)/g, '$1');
    }
    if (!out.has(m[1])) out.set(m[1], []);
    out.get(m[1]).push({labels, value: Number(m[4])});
  }
  return out;
}

function routeKey(l) { return l.server + ' ' + l.location; }
function targetKey(l) { return l.upstream + ' ' + l.target; }

function entry(map, key, make) {
  if (!map.has(key)) map.set(key, make());
  return map.get(key);
}

const newCounts = () => ({requests: 0, errors5xx: 0, limited: 0, inFlight: 0, buckets: new Map()});

// One sample: per route and per target, the counters a rate is made of.
function sampleOf(metrics) {
  const routes = new Map(), targets = new Map(), upstreams = new Map();
  for (const s of metrics.get('torii_http_requests_total') || []) {
    const r = entry(routes, routeKey(s.labels), newCounts);
    r.requests += s.value;
    if (s.labels.status_class === '5xx') r.errors5xx += s.value;
  }
  for (const s of metrics.get('torii_http_error_responses_total') || [])
    if (s.labels.code === '429') entry(routes, routeKey(s.labels), newCounts).limited += s.value;
  for (const s of metrics.get('torii_http_requests_in_flight') || [])
    entry(routes, routeKey(s.labels), newCounts).inFlight = s.value;
  for (const s of metrics.get('torii_http_request_duration_seconds_bucket') || [])
    entry(routes, routeKey(s.labels), newCounts).buckets.set(s.labels.le, s.value);
  for (const s of metrics.get('torii_upstream_requests_total') || []) {
    for (const [map, key] of [[targets, targetKey(s.labels)], [upstreams, s.labels.upstream]]) {
      const t = entry(map, key, newCounts);
      t.requests += s.value;
      if (s.labels.status_class === '5xx' || s.labels.status_class === 'none') t.errors5xx += s.value;
    }
  }
  for (const s of metrics.get('torii_upstream_response_duration_seconds_bucket') || []) {
    for (const [map, key] of [[targets, targetKey(s.labels)], [upstreams, s.labels.upstream]]) {
      const b = entry(map, key, newCounts).buckets;
      b.set(s.labels.le, (b.get(s.labels.le) || 0) + s.value);
    }
  }
  return {t: performance.now(), routes, targets, upstreams};
}

// The figures of one series over the window: rates per second and percentiles in ms.
function windowed(kind, key) {
  const n = state.samples.length;
  if (n < 2) return null;
  const now = state.samples[n - 1], then = state.samples[Math.max(0, n - 1 - WINDOW)];
  const a = now[kind].get(key);
  if (!a) return null;
  const b = then[kind].get(key) || newCounts();
  const secs = (now.t - then.t) / 1000;
  const requests = Math.max(0, a.requests - b.requests);
  const buckets = [];
  for (const [le, v] of a.buckets)
    buckets.push([le === '+Inf' ? Infinity : Number(le), Math.max(0, v - (b.buckets.get(le) || 0))]);
  buckets.sort((x, y) => x[0] - y[0]);
  return {
    rps: secs > 0 ? requests / secs : 0,
    errorPct: requests ? 100 * Math.max(0, a.errors5xx - b.errors5xx) / requests : 0,
    limitedPerSec: secs > 0 ? Math.max(0, a.limited - b.limited) / secs : 0,
    inFlight: a.inFlight,
    p50: quantile(buckets, 0.5), p95: quantile(buckets, 0.95), p99: quantile(buckets, 0.99),
  };
}

// Like Prometheus' histogram_quantile: linear within the bucket the rank falls in; ms.
function quantile(buckets, q) {
  if (!buckets.length) return null;
  const total = buckets[buckets.length - 1][1];
  if (!total) return null;
  const rank = q * total;
  let lower = 0, below = 0;
  for (const [le, count] of buckets) {
    if (count >= rank) {
      if (le === Infinity) return lower * 1000;  // above the last bound: say the bound
      const inBucket = count - below;
      return 1000 * (lower + (le - lower) * (inBucket ? (rank - below) / inBucket : 0));
    }
    lower = le;
    below = count;
  }
  return lower * 1000;
}

// ---- drawing helpers --------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

function fmt(v, digits = 1) {
  if (v == null || Number.isNaN(v)) return '–';
  if (v >= 1000) return Math.round(v).toLocaleString('en');
  return v.toFixed(digits);
}

function ago(seconds) {
  if (seconds < 60) return Math.round(seconds) + ' s';
  if (seconds < 3600) return Math.round(seconds / 60) + ' min';
  if (seconds < 86400) return (seconds / 3600).toFixed(1) + ' h';
  return (seconds / 86400).toFixed(1) + ' d';
}

function colour(name) {
  if (!state.colours.has(name)) state.colours.set(name, PALETTE[state.colours.size % PALETTE.length]);
  return state.colours.get(name);
}

function push(chart, name, value) {
  const s = entry(state.series[chart], name, () => []);
  s.push(value);
  if (s.length > HISTORY) s.shift();
}

// A line chart of every series of `chart`; the canvas carries what it drew in data-*
// attributes (points, last values) for the browser test and for anyone inspecting it.
function drawChart(chart, unit) {
  const canvas = document.getElementById('chart-' + chart);
  const legend = document.getElementById('legend-' + chart);
  const series = [...state.series[chart]].filter(([, v]) => v.some(x => x != null));
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  let max = 0;
  for (const [, v] of series) for (const x of v) if (x != null && x > max) max = x;
  max = max > 0 ? niceCeil(max) : 1;
  const styles = getComputedStyle(document.body);
  const left = 44, bottom = 16, top = 6, right = 6;
  ctx.strokeStyle = styles.getPropertyValue('--line');
  ctx.fillStyle = styles.getPropertyValue('--muted');
  ctx.font = '11px system-ui, sans-serif';
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; ++i) {
    const y = top + (h - top - bottom) * i / 4;
    ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(w - right, y); ctx.stroke();
    ctx.fillText(String(Number((max * (4 - i) / 4).toFixed(2))), 2, y + 4);
  }
  ctx.fillText(unit + ', last ' + Math.round(HISTORY * state.interval / 60000) + ' min', left, h - 3);
  let points = 0;
  const last = {};
  for (const [name, values] of series) {
    ctx.strokeStyle = colour(name);
    ctx.lineWidth = 1.6;
    ctx.beginPath();
    let pen = false;
    values.forEach((v, i) => {
      if (v == null) { pen = false; return; }
      const x = left + (w - left - right) * (i + HISTORY - values.length) / (HISTORY - 1);
      const y = top + (h - top - bottom) * (1 - v / max);
      if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      pen = true;
      ++points;
    });
    ctx.stroke();
    last[name] = values[values.length - 1];
  }
  canvas.dataset.points = String(points);
  canvas.dataset.last = JSON.stringify(last);
  legend.replaceChildren(...series.map(([name]) => {
    const swatch = el('i');
    swatch.style.background = colour(name);
    return el('span', {}, swatch, name);
  }));
}

function niceCeil(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

// ---- sections ---------------------------------------------------------------------------------

function renderOverview(status, upstreams, breakers) {
  let targets = 0, up = 0;
  for (const u of Object.values(upstreams ? upstreams.upstreams : {}))
    for (const t of u.targets) { ++targets; up += t.health === 'up'; }
  const open = breakers ? breakers.breakers.filter(b => b.state !== 'closed').length : null;
  let rps = 0;
  const last = state.samples[state.samples.length - 1];
  if (last) for (const key of last.routes.keys()) rps += (windowed('routes', key) || {rps: 0}).rps;
  const cards = [
    ['requests/s', fmt(rps), ''],
    ['connections', String(status.connections.active), ''],
    ['generation', String(status.generation), ''],
    ['reloads', status.reloads + (status.reload_failures ? ' (' + status.reload_failures + ' failed)' : ''),
     status.reload_failures ? 'warn' : ''],
    ['workers', String(status.workers.length), ''],
    ['draining generations', String(status.draining_generations.length), status.draining ? 'warn' : ''],
    ['targets up', up + ' / ' + targets, up < targets ? 'bad' : 'good'],
    ['open breakers', open == null ? '–' : String(open), open ? 'bad' : ''],
    ['uptime', ago(status.uptime), ''],
  ];
  document.getElementById('overview').replaceChildren(...cards.map(([label, value, cls]) =>
    el('div', {class: 'card', 'data-card': label},
       el('div', {class: 'label', text: label}), el('div', {class: 'value ' + cls, text: value}))));
  document.getElementById('version').textContent =
    'v' + status.version + ' · ' + status.config + ' · master ' + status.master;
}

function chainCell(loc) {
  const box = el('div', {class: 'chain'});
  const add = (phase, members) => {
    if (!members || !members.length) return;
    box.append(el('span', {},
      el('span', {class: 'phase', text: phase + ': '}),
      ...members.map((m, i) => el('span', {class: m.from === 'inherited' ? 'inherited' : '',
        title: m.from === 'own' ? 'this location' : m.from === 'inherited' ?
          'inherited from [[server]]' : 'from [[server]], switched on here',
        text: (i ? ', ' : '') + m.plugin}))));
  };
  const c = loc.chain;
  add('pre_route', c.pre_route);
  add('access', c.access);
  if (c.balance) add('balance', [{plugin: c.balance.balancer, from: 'own'}, ...c.balance.admitters]);
  add('upstream', c.upstream);
  add('response', c.response);
  add('log', c.log);
  for (const off of loc.disabled) box.append(el('span', {class: 'off', title: 'enabled = false', text: off}));
  if (!box.childElementCount) box.append(el('span', {class: 'muted', text: 'no plugins'}));
  return box;
}

function renderLocations(config, haveMetrics) {
  const body = document.querySelector('#locations tbody');
  const rows = [];
  for (const server of config.servers) {
    if (server.protocol !== 'http') continue;
    for (const loc of server.locations) {
      const key = server.listen[0] + ' ' + loc.path;
      const w = windowed('routes', key);
      const to = loc.upstream ? 'upstream ' + loc.upstream : 'return ' + loc.return;
      rows.push(el('tr', {'data-location': loc.path, 'data-server': server.listen[0]},
        el('td', {text: server.listen.join(', ') + (server.tls ? ' (tls)' : '')}),
        el('td', {text: loc.path}), el('td', {text: to}), el('td', {}, chainCell(loc)),
        el('td', {class: 'num', 'data-field': 'rps', text: w ? fmt(w.rps) : '–'}),
        el('td', {class: 'num' + (w && w.errorPct > 1 ? ' bad' : ''), text: w ? fmt(w.errorPct) : '–'}),
        el('td', {class: 'num', 'data-field': 'limited', text: w ? fmt(w.limitedPerSec) : '–'}),
        el('td', {class: 'num', text: w ? fmt(w.p50) : '–'}),
        el('td', {class: 'num', text: w ? fmt(w.p95) : '–'}),
        el('td', {class: 'num', text: w ? fmt(w.p99) : '–'}),
        el('td', {class: 'num', text: w ? String(w.inFlight) : '–'})));
      if (w) {
        push('rps', key, w.rps);
        push('errors', key, w.errorPct);
        push('latency', key, w.p99);
      }
    }
  }
  body.replaceChildren(...rows);
  document.getElementById('no-stats').hidden = haveMetrics;
}

function healthBadge(t) {
  const cls = t.health === 'up' ? 'good' : t.health === 'down' ? 'bad' : 'warn';
  const text = t.drain ? t.health + ', draining' : t.health;
  return el('span', {class: 'pill ' + cls, 'data-health': t.health, text});
}

function renderUpstreams(upstreams) {
  const box = document.getElementById('upstreams');
  const parts = [];
  for (const [name, u] of Object.entries(upstreams ? upstreams.upstreams : {})) {
    const check = u.health_check ? u.health_check.type + ' check every ' +
      u.health_check.interval_ms / 1000 + ' s' : 'no active check';
    const disc = u.discovery ? ' · discovery ' + (u.discovery.type || '') +
      (u.discovery.failing ? ' (failing)' : '') : '';
    const rows = u.targets.map(t => {
      const w = windowed('targets', name + ' ' + t.address);
      const last = t.check ? t.check.result + (t.check.message ? ': ' + t.check.message : '') : '–';
      const reason = t.down_reason ? t.down_reason : t.last_failure ? t.last_failure.reason || '' : '';
      return el('tr', {'data-target': t.address},
        el('td', {text: t.address}), el('td', {}, healthBadge(t)),
        el('td', {class: 'num', text: String(t.weight)}),
        el('td', {class: 'num', 'data-field': 'in_flight', text: String(t.in_flight)}),
        el('td', {class: 'num', text: w ? fmt(w.rps) : '–'}),
        el('td', {class: 'num' + (w && w.errorPct > 1 ? ' bad' : ''), text: w ? fmt(w.errorPct) : '–'}),
        el('td', {class: 'num', text: w ? fmt(w.p99) : '–'}),
        el('td', {text: t.source}), el('td', {class: 'muted', text: last + (reason ? ' · ' + reason : '')}));
    });
    const w = windowed('upstreams', name);
    if (w) {
      push('upstream', name, w.p99);
      push('upstream-rps', name, w.rps);
      push('upstream-errors', name, w.errorPct);
    }
    parts.push(el('div', {class: 'upstream', 'data-upstream': name},
      el('h3', {}, 'upstream ' + name + ' ',
         el('span', {class: 'muted', text: '· ' + u.balancer + ' · ' + u.protocol + ' · ' + check + disc})),
      el('div', {class: 'scroll'}, el('table', {},
        el('thead', {}, el('tr', {}, ...['target', 'health', 'weight', 'in flight', 'attempts/s',
          'failed %', 'p99 ms', 'source', 'last check'].map((h, i) =>
          el('th', {class: i >= 2 && i <= 6 ? 'num' : '', text: h})))),
        el('tbody', {}, ...rows)))));
  }
  box.replaceChildren(...(parts.length ? parts : [el('p', {class: 'muted', text: 'No upstreams.'})]));
}

function renderBreakers(breakers) {
  document.getElementById('no-breakers').hidden = breakers != null;
  document.getElementById('breakers').hidden = breakers == null;
  if (!breakers) return;
  const rows = breakers.breakers.map(b => el('tr', {'data-breaker': b.name, 'data-state': b.state},
    el('td', {text: b.name}), el('td', {text: b.scope}),
    el('td', {}, el('span', {class: 'pill ' + (b.state === 'closed' ? 'good' : b.state === 'open' ? 'bad' : 'warn'),
      text: b.state.replace('_', '-')})),
    el('td', {text: ago(b.in_state_ms / 1000) + (b.half_open_in_ms != null ?
      ' (half-open in ' + ago(b.half_open_in_ms / 1000) + ')' : '')}),
    el('td', {class: 'num', text: String(b.window_requests)}),
    el('td', {class: 'num', text: String(b.window_errors)}),
    el('td', {class: 'num', text: String(b.opened)}),
    el('td', {class: 'num', text: String(b.rejected)})));
  document.querySelector('#breakers tbody').replaceChildren(...rows);
}

function renderGenerations(status) {
  const now = Date.now() / 1000;
  const draining = status.draining_generations.map(g => el('tr', {},
    el('td', {text: String(g.generation)}), el('td', {text: g.closing ? 'closing' : 'draining'}),
    el('td', {text: g.workers.map(w => w.pid + ' (' + w.connections + ')').join(', ')})));
  draining.unshift(el('tr', {}, el('td', {text: String(status.generation)}),
    el('td', {class: 'good', text: 'serving'}), el('td', {text: status.workers.join(', ')})));
  document.querySelector('#draining tbody').replaceChildren(...draining);
  const reloads = status.reload_history.slice().reverse().map(r => el('tr', {},
    el('td', {text: ago(now - r.at) + ' ago'}),
    el('td', {class: r.ok ? 'good' : 'bad', text: r.ok ? 'ok' : 'failed: ' + r.error}),
    el('td', {text: String(r.generation)})));
  if (!reloads.length)
    reloads.push(el('tr', {}, el('td', {class: 'muted', colspan: '3',
      text: 'No reload since the master started ' + ago(now - status.config_loaded) + ' ago.'})));
  document.querySelector('#reloads tbody').replaceChildren(...reloads);
}

// ---- the refresh loop ---------------------------------------------------------------------------

function setConn(text, cls) {
  const c = document.getElementById('conn');
  c.textContent = text;
  c.className = 'pill ' + cls;
}

async function refresh() {
  try {
    const status = await get('/status');
    let breakers = null;
    if (status.generation !== state.configGeneration || !state.config) {
      // A new generation may have loaded or dropped plugins: ask again what is there.
      [state.config, breakers] = await Promise.all([get('/config'), get('/circuit_breakers')]);
      state.hasBreakers = breakers != null;
      state.configGeneration = status.generation;
    } else if (state.hasBreakers) {
      breakers = await get('/circuit_breakers');
    }
    const [upstreams, metricsText] = await Promise.all([get('/upstreams'), get('/metrics', 'text')]);
    if (metricsText != null) {
      state.samples.push(sampleOf(parseMetrics(metricsText)));
      if (state.samples.length > HISTORY) state.samples.shift();
    }
    document.getElementById('token-form').hidden = true;
    document.getElementById('main').hidden = false;
    renderOverview(status, upstreams, breakers);
    renderLocations(state.config, metricsText != null);
    renderUpstreams(upstreams);
    renderBreakers(breakers);
    renderGenerations(status);
    for (const [chart, unit] of CHARTS)
      drawChart(chart, unit);
    setConn('live · ' + new Date().toLocaleTimeString('en-GB'), 'good');
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
  } catch (e) {
    if (e instanceof AuthNeeded) {
      document.getElementById('token-form').hidden = false;
      document.getElementById('main').hidden = true;
      document.getElementById('token-error').textContent = state.token ? 'wrong token' : '';
      setConn('token needed', 'warn');
    } else {
      setConn('unreachable: ' + e.message, 'bad');
    }
  }
}

function schedule() {
  clearTimeout(state.timer);
  if (!state.interval) return;
  state.timer = setTimeout(async () => { await refresh(); schedule(); }, state.interval);
}

function start() {
  const params = new URLSearchParams(location.search);
  const select = document.getElementById('interval');
  if (params.has('interval')) {
    const opt = el('option', {value: params.get('interval'), text: params.get('interval') + ' ms'});
    select.append(opt);
    select.value = params.get('interval');
  }
  state.interval = Number(select.value);
  select.addEventListener('change', () => { state.interval = Number(select.value); schedule(); });
  document.getElementById('window-text').textContent = Math.round(WINDOW * state.interval / 1000) + ' s';
  document.getElementById('token-form').addEventListener('submit', ev => {
    ev.preventDefault();
    state.token = document.getElementById('token').value.trim();
    sessionStorage.setItem(TOKEN_KEY, state.token);
    refresh().then(schedule);
  });
  window.addEventListener('resize', () => {
    for (const [chart, unit] of CHARTS)
      drawChart(chart, unit);
  });
  refresh().then(schedule);
}

document.addEventListener('DOMContentLoaded', start);
