// AutoLake command deck: one page, routed by the URL fragment (#/jobs),
// talking to the JSON API under /api/v1/. Every view and action there is
// a statement run as the signed-in user; this page only shows what the
// API returns and offers the actions it says the user may take. Elements
// are built with textContent, never from HTML strings, so no value from
// the lake is ever read as markup.
'use strict';

(() => {
  let me = null;            // the session: user, roles, csrf, views
  let timer = null;         // the live view's refresh
  let current = null;       // the view on screen: {name, refresh}
  const memory = {};        // per-table sort and filter, kept across refreshes

  // ---- DOM helpers ------------------------------------------------------
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'text') el.textContent = v;
      else if (k === 'style') setStyle(el, v);
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  // Styles go through the CSSOM: the Content-Security-Policy refuses
  // style attributes.
  function setStyle(el, text) {
    for (const part of String(text).split(';')) {
      const at = part.indexOf(':');
      if (at > 0) el.style.setProperty(part.slice(0, at).trim(), part.slice(at + 1).trim());
    }
  }
  const SVG = 'http://www.w3.org/2000/svg';
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'text') el.textContent = v;
      else if (k === 'style') setStyle(el, v);
      else el.setAttribute(k, v);
    }
    for (const c of children.flat()) if (c) el.append(c);
    return el;
  }
  const $ = (id) => document.getElementById(id);
  function say(message, bad) {
    const st = $('status');
    st.textContent = message;
    st.className = 'status' + (bad ? ' error' : '');
    clearTimeout(say.t);
    say.t = setTimeout(() => { st.textContent = ''; }, bad ? 9000 : 4000);
  }
  // A control with its label beside it (not wrapped, so the label's text
  // is the control's whole accessible name).
  function field(id, label, control) {
    return h('span', { class: 'field' }, h('label', { for: id }, label), control);
  }
  function empty(text, example) {
    return h('div', { class: 'empty' }, h('p', {}, text), example ? h('pre', {}, example) : null);
  }
  function when(t) {
    if (!t) return '';
    const d = new Date(String(t).replace(' ', 'T').replace(/(\.\d{3})\d+/, '$1') + (/[zZ]|[+-]\d\d:?\d\d$/.test(t) ? '' : 'Z'));
    return isNaN(d) ? String(t) : d.toLocaleString();
  }
  function bytes(n) {
    if (n === null || n === undefined) return '';
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0; let v = Number(n);
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return (i ? v.toFixed(1) : v) + ' ' + u[i];
  }
  function records(result) {
    return result.rows.map((r) => Object.fromEntries(result.columns.map((c, i) => [c.name, r[i]])));
  }

  // ---- the API ----------------------------------------------------------
  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.error && body.error.message) || ('HTTP ' + status));
      this.status = status; this.body = body;
    }
  }
  async function api(method, path, body) {
    const headers = { accept: 'application/json' };
    if (method !== 'GET') {
      headers['content-type'] = 'application/json';
      if (me && me.csrf) headers['x-csrf-token'] = me.csrf;
    }
    const response = await fetch('/api/v1/' + path, {
      method, headers, credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let json = null;
    try { json = await response.json(); } catch (e) { json = null; }
    if (response.status === 401 && path !== 'session') { signedOut('Your session ended: sign in again.'); }
    if (!response.ok) throw new ApiError(response.status, json);
    return json;
  }

  // ---- sign-in ----------------------------------------------------------
  function signedOut(message) {
    me = null; stopTimer();
    $('app').hidden = true; $('signin').hidden = false;
    const err = $('signin-error');
    err.hidden = !message; err.textContent = message || '';
    $('signin-user').focus();
  }
  async function signIn(event) {
    event.preventDefault();
    const err = $('signin-error');
    err.hidden = true;
    const user = $('signin-user').value.trim();
    const password = $('signin-password').value;
    if (!user || !password) { err.textContent = 'Enter a user name and a password.'; err.hidden = false; return; }
    try {
      me = await api('POST', 'session', { user, password });
      $('signin-password').value = '';
      start();
    } catch (e) {
      err.textContent = e.message; err.hidden = false;
      $('signin-password').select();
    }
  }
  async function signOut() {
    try { await api('DELETE', 'session'); } catch (e) { /* gone already */ }
    location.hash = '';
    signedOut('Signed out.');
  }

  // ---- navigation -------------------------------------------------------
  const TITLES = {
    overview: 'Overview', tables: 'Tables', sources: 'Sources', jobs: 'Jobs', models: 'Models',
    drift: 'Drift', devices: 'Devices', lineage: 'Lineage', audit: 'Audit', console: 'SQL console',
  };
  function start() {
    $('signin').hidden = true; $('app').hidden = false;
    $('who').textContent = me.user + ' (' + (me.roles.join(', ') || 'no role') + ')';
    $('lake').textContent = me.lake;
    const list = $('nav-list');
    list.replaceChildren(...me.views.map((v) => h('li', {}, h('a', { href: '#/' + v, 'data-view': v }, TITLES[v]))));
    route();
  }
  function stopTimer() { if (timer) { clearInterval(timer); timer = null; } }
  function route() {
    if (!me) return;
    const [name, ...rest] = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
    const view = me.views.includes(name) ? name : 'overview';
    for (const a of document.querySelectorAll('#nav-list a')) {
      if (a.dataset.view === view) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    }
    if (window.matchMedia('(max-width: 760px)').matches) setMenu(false);
    stopTimer();
    const main = $('main');
    main.replaceChildren(h('h1', {}, TITLES[view]));
    document.title = TITLES[view] + ' · AutoLake';
    const refresh = VIEWS[view](main, rest);
    current = { name: view, refresh };
    if (refresh) {
      refresh();
      timer = setInterval(() => { if (!document.hidden) refresh(); }, REFRESH[view] || 10000);
    }
  }
  const REFRESH = { overview: 10000, jobs: 5000, devices: 3000, drift: 15000, audit: 10000, models: 15000, tables: 15000, sources: 15000, lineage: 30000 };
  function setMenu(open) {
    $('nav').classList.toggle('closed', !open);
    $('menu').setAttribute('aria-expanded', String(open));
  }

  // ---- tables -----------------------------------------------------------
  // A sortable, filterable table whose rows can be replaced (on refresh)
  // without losing the user's sort, filter or focus.
  function dataTable(id, opts) {
    const state = memory[id] || (memory[id] = { sort: opts.sort || null, desc: !!opts.desc, filter: '' });
    const wrap = h('div', { class: 'datatable' });
    const filter = h('input', { type: 'search', id: id + '-filter', value: state.filter, 'aria-controls': id });
    const count = h('span', { class: 'muted', 'aria-live': 'polite' });
    const bar = h('div', { class: 'toolbar' }, field(id + '-filter', 'Filter ' + (opts.label || 'rows'), filter), count);
    const table = h('table', { id });
    if (opts.caption) table.append(h('caption', {}, opts.caption));
    const thead = h('thead'); const tbody = h('tbody');
    table.append(thead, tbody);
    const holder = h('div');
    wrap.append(bar, holder);
    let data = { columns: [], rows: [] };
    filter.addEventListener('input', () => { state.filter = filter.value; draw(); });
    function header() {
      const cols = data.columns.filter((c) => !(opts.hide || []).includes(c.name));
      thead.replaceChildren(h('tr', {}, cols.map((c) => {
        const th = h('th', { scope: 'col' });
        if (state.sort === c.name) th.setAttribute('aria-sort', state.desc ? 'descending' : 'ascending');
        th.append(h('button', { type: 'button', onclick: () => {
          if (state.sort === c.name) state.desc = !state.desc; else { state.sort = c.name; state.desc = false; }
          draw();
        } }, (opts.titles || {})[c.name] || c.name));
        return th;
      }), opts.actions ? h('th', { scope: 'col' }, 'Actions') : null));
      return cols;
    }
    function draw() {
      const cols = header();
      const index = Object.fromEntries(data.columns.map((c, i) => [c.name, i]));
      const needle = state.filter.toLowerCase();
      let rows = data.rows.filter((r) => !needle || r.some((v) => v !== null && String(typeof v === 'object' ? JSON.stringify(v) : v).toLowerCase().includes(needle)));
      if (state.sort && state.sort in index) {
        const i = index[state.sort];
        rows = rows.slice().sort((a, b) => {
          const x = a[i]; const y = b[i];
          const c = x === null ? 1 : y === null ? -1 : (typeof x === 'number' && typeof y === 'number') ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true });
          return state.desc ? -c : c;
        });
      }
      tbody.replaceChildren(...rows.map((r) => {
        const rec = Object.fromEntries(data.columns.map((c, i) => [c.name, r[i]]));
        return h('tr', {}, cols.map((c) => {
          const v = r[index[c.name]];
          const shown = opts.format && opts.format[c.name] ? opts.format[c.name](v, rec) : v;
          const numeric = typeof v === 'number';
          return h('td', { class: numeric ? 'num' : null },
            shown instanceof Node ? shown : h('div', { class: 'cell' }, shown === null || shown === undefined ? '' : String(shown)));
        }), opts.actions ? h('td', {}, opts.actions(rec)) : null);
      }));
      count.textContent = rows.length === data.rows.length ? rows.length + ' rows' + (data.truncated ? ' (first ' + rows.length + ')' : '') : rows.length + ' of ' + data.rows.length + ' rows';
      if (!data.rows.length && opts.empty) holder.replaceChildren(opts.empty);
      else if (holder.firstChild !== scroll) holder.replaceChildren(scroll);
      bar.hidden = !data.rows.length;
    }
    const scroll = h('div', { class: 'scroll' }, table);
    return { el: wrap, update(result) { data = result; draw(); } };
  }
  function fmtTime(v) { return when(v); }
  function badge(text, cls) { return h('span', { class: 'badge ' + (cls || '') }, text); }
  function statusBadge(v) {
    if (v === null || v === undefined || v === '') return '';
    const cls = /fail|denied|error/.test(v) ? 'bad' : /succe|ok|production/.test(v) ? 'ok' : /skip|paused|staging|running/.test(v) ? 'warn' : '';
    return badge(v, cls);
  }

  // ---- charts -----------------------------------------------------------
  const PALETTE = ['#0b6e99', '#b35c00', '#1a7f37', '#a0306a', '#7b5ea7', '#9a6700', '#c62828', '#2f6f6f'];
  // A line chart of series [{name, points: [[time ms, value]], color}],
  // with an optional dashed threshold line and marked points.
  function lineChart(title, series, opts) {
    opts = opts || {};
    const W = 640; const H = 220; const L = 48; const R = 12; const T = 12; const B = 28;
    const all = series.flatMap((x) => x.points);
    const box = h('figure', { class: 'card' });
    box.append(h('figcaption', {}, h('h3', {}, title)));
    if (!all.length) { box.append(h('p', { class: 'muted' }, opts.none || 'No points yet.')); return box; }
    let x0 = Math.min(...all.map((p) => p[0])); let x1 = Math.max(...all.map((p) => p[0]));
    if (x0 === x1) { x0 -= 1000; x1 += 1000; }
    let y0 = opts.min !== undefined ? opts.min : Math.min(0, ...all.map((p) => p[1]));
    let y1 = opts.max !== undefined ? opts.max : Math.max(...all.map((p) => p[1]), opts.threshold || 0);
    if (y1 === y0) y1 = y0 + 1;
    const X = (t) => L + (t - x0) / (x1 - x0) * (W - L - R);
    const Y = (v) => T + (1 - (v - y0) / (y1 - y0)) * (H - T - B);
    const svg = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title + ': ' + series.map((x) => x.name + ', ' + x.points.length + ' points, last ' + fmtNum(x.points.length ? x.points[x.points.length - 1][1] : null)).join('; ') });
    svg.append(s('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }), s('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }));
    for (const v of [y0, (y0 + y1) / 2, y1]) {
      svg.append(s('text', { x: L - 4, y: Y(v) + 4, 'text-anchor': 'end', text: fmtNum(v) }));
      svg.append(s('line', { class: 'axis', x1: L, y1: Y(v), x2: W - R, y2: Y(v), opacity: '.4' }));
    }
    for (const t of [x0, x1]) {
      svg.append(s('text', { x: X(t), y: H - 8, 'text-anchor': t === x0 ? 'start' : 'end', text: new Date(t).toLocaleTimeString() }));
    }
    if (opts.threshold !== undefined && opts.threshold !== null) {
      svg.append(s('line', { class: 'threshold', x1: L, x2: W - R, y1: Y(opts.threshold), y2: Y(opts.threshold) }));
    }
    series.forEach((x, i) => {
      const color = x.color || PALETTE[i % PALETTE.length];
      const pts = x.points.slice().sort((a, b) => a[0] - b[0]);
      svg.append(s('polyline', { fill: 'none', stroke: color, 'stroke-width': 2, points: pts.map((p) => X(p[0]).toFixed(1) + ',' + Y(p[1]).toFixed(1)).join(' ') }));
      for (const p of pts) {
        if (pts.length < 60 || p[2]) {
          svg.append(s('circle', { cx: X(p[0]), cy: Y(p[1]), r: p[2] ? 4.5 : 2.5, fill: p[2] ? 'var(--bad)' : color },
            s('title', { text: x.name + ' ' + new Date(p[0]).toLocaleString() + ': ' + fmtNum(p[1]) + (p[2] ? ' (drift)' : '') })));
        }
      }
    });
    box.append(svg);
    box.append(h('div', { class: 'legend' }, series.map((x, i) => h('span', { style: '--c:' + (x.color || PALETTE[i % PALETTE.length]) }, x.name)),
      opts.threshold !== undefined && opts.threshold !== null ? h('span', { style: '--c: var(--bad)' }, 'threshold ' + fmtNum(opts.threshold)) : null));
    return box;
  }
  function fmtNum(v) {
    if (v === null || v === undefined) return '';
    const a = Math.abs(v);
    return a !== 0 && (a < 0.001 || a >= 1e6) ? Number(v).toExponential(2) : String(Math.round(v * 1000) / 1000);
  }
  function ms(t) { return new Date(String(t).replace(' ', 'T').replace(/(\.\d{3})\d+/, '$1') + (/[zZ]$/.test(t) ? '' : 'Z')).getTime(); }

  // ---- views ------------------------------------------------------------
  // Each view builds its page and returns its refresh (or nothing).
  const VIEWS = {};

  VIEWS.overview = (main) => {
    const cards = h('div', { class: 'cards' });
    const health = h('div');
    const failures = h('div');
    const statements = h('div');
    main.append(cards, h('div', { class: 'grid2' },
      h('section', { 'aria-labelledby': 'h-health' }, h('h2', { id: 'h-health' }, 'Health'), health),
      h('section', { 'aria-labelledby': 'h-fail' }, h('h2', { id: 'h-fail' }, 'Recent job failures'), failures)),
    h('section', { 'aria-labelledby': 'h-st' }, h('h2', { id: 'h-st' }, 'Recent failed or refused statements'), statements));
    return async () => {
      const o = await load('overview'); if (!o) return;
      const c = o.counts;
      const card = (label, value, sub, link) => h('a', { class: 'card card-link', href: link ? '#/' + link : null },
        h('div', { class: 'muted' }, label), h('div', { class: 'figure' }, String(value)), h('div', { class: 'muted' }, sub || ''));
      cards.replaceChildren(
        card('Tables', c.tables, bytes(c.bytes), 'tables'),
        me.views.includes('sources') ? card('Sources', c.sources, '', 'sources') : null,
        me.views.includes('jobs') ? card('Jobs', c.jobs, c.jobs_paused + ' paused, ' + c.jobs_failing + ' failing', 'jobs') : null,
        me.views.includes('models') ? card('Models', c.models, c.model_versions + ' versions, ' + c.models_in_production + ' in production', 'models') : null,
        ...o.devices.map((d) => card(d.device, Math.round(d.utilization * 100) + '%', d.current_work || 'utilisation', 'devices')));
      const a = o.health.audit;
      health.replaceChildren(h('ul', {},
        h('li', {}, 'Lake: ', h('code', {}, o.health.lake)),
        h('li', {}, 'Scheduler: ', o.health.scheduler ? badge('running', 'ok') : badge('off in this server', 'warn')),
        a ? h('li', {}, 'Audit chain: ', a.intact ? badge('intact', 'ok') : badge('broken', 'bad'), ' ', a.detail) : null));
      failures.replaceChildren(o.failures.length ? h('ul', {}, o.failures.map((f) => h('li', {},
        h('a', { href: '#/jobs/' + encodeURIComponent(f.job) }, f.job), ' run ' + f.run + ', ' + when(f.end) + ': ', h('span', { class: 'error' }, f.error || '')))) :
        empty('No failed job runs.'));
      statements.replaceChildren(o.statements.length ? h('ul', {}, o.statements.map((q) => h('li', {},
        when(q.started_at) + ' ' + q.user + ' (' + q.interface + ') ' + q.kind + ': ', statusBadge(q.outcome), ' ', h('span', { class: 'error' }, q.error || '')))) :
        empty('No failed statements.'));
    };
  };

  VIEWS.tables = (main, [selected]) => {
    const details = h('section', { 'aria-live': 'polite' });
    const list = dataTable('tables', {
      label: 'tables', sort: 'name', caption: 'Lake tables you may read',
      hide: ['location', 'partition_columns'],
      format: { created_at: fmtTime, bytes: (v) => bytes(v), name: (v, r) => h('a', { href: '#/tables/' + encodeURIComponent(r.schema + '.' + v) }, v) },
      empty: empty('No tables you may read yet. Create one in the SQL console, for example:', 'CREATE TABLE sandbox.t AS SELECT 1 AS x'),
    });
    main.append(list.el, details);
    if (selected) showTable(details, selected);
    return async () => { const t = await load('tables'); if (t) list.update(t); };
  };
  async function showTable(box, name) {
    const [schema, table] = name.split('.');
    box.replaceChildren(h('h2', {}, name));
    const t = await load('tables/' + encodeURIComponent(schema) + '/' + encodeURIComponent(table));
    if (!t) return;
    const cols = dataTable('columns-' + name, { label: 'columns', caption: 'Columns' });
    cols.update(t.columns);
    const history = dataTable('history-' + name, {
      label: 'versions', sort: 'version', desc: true, caption: 'History (time travel: pick a version to preview)',
      hide: ['operation_parameters'], format: { timestamp: fmtTime },
      empty: empty('A system table: AutoLake computes it when read, so it has no versions.'),
    });
    history.update(t.history || { columns: [], rows: [] });
    const versions = t.history ? records(t.history).map((r) => r.version) : [];
    const select = h('select', { id: 'preview-version', disabled: !versions.length }, h('option', { value: '' }, 'latest'), versions.map((v) => h('option', { value: String(v) }, 'version ' + v)));
    const preview = h('div');
    const show = async () => {
      const q = select.value ? '?version=' + select.value : '';
      const p = await load('tables/' + encodeURIComponent(schema) + '/' + encodeURIComponent(table) + '/preview' + q);
      if (!p) return;
      const d = dataTable('preview-' + name, { label: 'rows', caption: 'First rows' + (select.value ? ' as of version ' + select.value : '') });
      d.update(p); preview.replaceChildren(d.el);
    };
    box.append(h('div', { class: 'grid2' }, h('div', {}, cols.el), h('div', {}, history.el)),
      h('h3', {}, 'Preview'), h('div', { class: 'toolbar' }, field('preview-version', 'Version', select), h('button', { type: 'button', onclick: show }, 'Show rows')), preview);
  }

  VIEWS.sources = (main) => {
    const list = dataTable('sources', {
      label: 'sources', sort: 'name', caption: 'Sources', format: { created_at: fmtTime },
      empty: empty('No sources yet. Connect one in the SQL console, for example:', "CREATE SOURCE crm TYPE postgres OPTIONS (url 'postgres://user@host/db')"),
    });
    const syncs = dataTable('syncs', { label: 'syncs', caption: 'Recent syncs', format: { time: fmtTime }, empty: empty('No syncs yet: SYNC TABLE lake.s.t FROM src.schema.table') });
    main.append(list.el, h('h2', {}, 'Syncs'), syncs.el);
    return async () => { const s = await load('sources'); if (s) { list.update(s.sources); syncs.update(s.syncs); } };
  };

  VIEWS.jobs = (main, [selected]) => {
    let actions = {};
    const runBox = h('section', { 'aria-live': 'polite' });
    const act = async (job, what, button) => {
      button.disabled = true;
      try {
        const r = await api('POST', 'jobs/' + encodeURIComponent(job) + '/' + what);
        const run = records(r.result)[0];
        say(r.statement + ': ' + (run && run.status ? run.status + (run.run ? ' (run ' + run.run + ')' : '') : 'done'));
        if (what === 'run') location.hash = '#/jobs/' + encodeURIComponent(job);
      } catch (e) { say(e.message, true); }
      button.disabled = false;
      refresh();
    };
    const list = dataTable('jobs', {
      label: 'jobs', sort: 'name', caption: 'Jobs',
      hide: ['created_at', 'input_versions', 'watermark', 'window', 'last_start'],
      titles: { last_run: 'last run', next_run: 'next run', last_status: 'status', last_error: 'last error' },
      format: {
        name: (v) => h('a', { href: '#/jobs/' + encodeURIComponent(v) }, v),
        next_run: fmtTime, last_status: statusBadge, paused: (v) => v ? badge('paused', 'warn') : 'no',
        statement: (v) => h('div', { class: 'cell' }, h('code', {}, v)),
      },
      actions: (r) => {
        const a = actions[r.name] || {};
        const lag = a.lag_seconds === null || a.lag_seconds === undefined ? '' : 'lag ' + fmtNum(a.lag_seconds) + ' s';
        return h('div', { class: 'actions' },
          lag ? h('span', { class: 'muted' }, lag) : null,
          a.can_pause && !r.paused ? h('button', { type: 'button', onclick: (e) => act(r.name, 'pause', e.target), 'aria-label': 'Pause job ' + r.name }, 'Pause') : null,
          a.can_resume && r.paused ? h('button', { type: 'button', onclick: (e) => act(r.name, 'resume', e.target), 'aria-label': 'Resume job ' + r.name }, 'Resume') : null,
          a.can_run ? h('button', { type: 'button', class: 'primary', onclick: (e) => act(r.name, 'run', e.target), 'aria-label': 'Run job ' + r.name + ' now' }, 'Run now') : null);
      },
      empty: empty('No jobs yet. Schedule one in the SQL console, for example:', "CREATE JOB nightly EVERY '1 hour' AS INSERT INTO t SELECT * FROM table_changes('lake.s.src')"),
    });
    const runs = dataTable('runs', { label: 'runs', sort: 'run', desc: true, caption: 'Runs', format: { start: fmtTime, end: fmtTime, status: statusBadge, error: (v) => v ? h('div', { class: 'cell error' }, v) : '' } });
    main.append(list.el, runBox);
    const refresh = async () => {
      const j = await load('jobs'); if (!j) return;
      actions = j.actions; list.update(j.jobs);
      if (selected) {
        const r = await load('jobs/' + encodeURIComponent(selected) + '/runs');
        if (r) { runBox.replaceChildren(h('h2', {}, 'Runs of ' + selected), runs.el); runs.update(r); }
      }
    };
    return refresh;
  };

  VIEWS.models = (main) => {
    let actions = {};
    const change = async (r, select, button) => {
      button.disabled = true;
      try { const x = await api('POST', 'models/' + encodeURIComponent(r.name) + '/stage', { version: r.version, stage: select.value }); say(x.statement + ': done'); } catch (e) { say(e.message, true); }
      button.disabled = false; refresh();
    };
    const list = dataTable('models', {
      label: 'models', sort: 'name', caption: 'Model versions',
      hide: ['features', 'sql'],
      format: {
        stage: statusBadge, created_at: fmtTime,
        metrics: (v) => { try { return h('div', { class: 'cell' }, Object.entries(JSON.parse(v)).map(([k, x]) => k + ' ' + fmtNum(x)).join(', ')); } catch (e) { return v; } },
        lineage: (v) => h('div', { class: 'cell' }, v), train_seconds: (v) => fmtNum(v), device_busy_ratio: (v) => v === null ? '' : Math.round(v * 100) + '%',
      },
      actions: (r) => {
        if (!(actions[r.name] || {}).can_stage) return '';
        const id = 'stage-' + r.name + '-' + r.version;
        const select = h('select', { id, 'aria-label': 'Stage of ' + r.name + ' version ' + r.version },
          ['none', 'staging', 'production', 'archived'].map((st) => h('option', { value: st, selected: st === r.stage }, st)));
        return h('div', { class: 'actions' }, select, h('button', { type: 'button', onclick: (e) => change(r, select, e.target) }, 'Set stage'));
      },
      empty: empty('No models yet. Train one in the SQL console, for example:', "CREATE MODEL churn TYPE logistic_regression OPTIONS (target 'churned') AS SELECT * FROM lake.crm.customers"),
    });
    main.append(list.el);
    const refresh = async () => { const m = await load('models'); if (m) { actions = m.actions; list.update(m.models); } };
    return refresh;
  };

  VIEWS.drift = (main) => {
    const pick = h('select', { id: 'drift-monitor' }, h('option', { value: '' }, 'every monitor'));
    const charts = h('div', { class: 'charts' });
    const monitors = dataTable('monitors', { label: 'monitors', caption: 'Monitors', format: { created_at: fmtTime } });
    main.append(h('div', { class: 'toolbar' }, field('drift-monitor', 'Monitor or job', pick)), charts, h('h2', {}, 'Monitors'), monitors.el);
    let last = null;
    const draw = () => {
      if (!last) return;
      const rows = records(last.metrics).filter((r) => !pick.value || r.monitor === pick.value);
      const groups = {};
      for (const r of rows) (groups[r.monitor + ' · ' + r.column + ' (' + r.test + ')'] ||= []).push(r);
      const keys = Object.keys(groups).sort();
      charts.replaceChildren(...(keys.length ? keys.map((k) => {
        const g = groups[k];
        const threshold = g[0].test === 'ks' || g[0].test === 'chi2' ? null : g[0].threshold;
        return lineChart(k, [
          { name: 'statistic', points: g.map((r) => [ms(r.run_at), r.statistic, r.drift_detected]) },
          g.some((r) => r.p_value !== null) ? { name: 'p-value', points: g.filter((r) => r.p_value !== null).map((r) => [ms(r.run_at), r.p_value]) } : null,
        ].filter(Boolean), { threshold, min: 0 });
      }) : [empty('No drift checks have run yet. Watch a table with a monitor, for example:', "CREATE MONITOR orders_drift ON lake.s.orders REFERENCE (VERSION AS OF 0) SCHEDULE '@daily'")]));
    };
    pick.addEventListener('change', draw);
    return async () => {
      const d = await load('drift'); if (!d) return;
      last = d; monitors.update(d.monitors);
      const names = [...new Set(records(d.metrics).map((r) => r.monitor))].sort();
      const chosen = pick.value;
      pick.replaceChildren(h('option', { value: '' }, 'every monitor'), names.map((n) => h('option', { value: n, selected: n === chosen }, n)));
      draw();
    };
  };

  VIEWS.devices = (main) => {
    const now = dataTable('devices', { label: 'devices', caption: 'Devices now', format: { since: fmtTime, memory_total_bytes: bytes, memory_used_bytes: bytes, utilization: (v) => Math.round(v * 100) + '%', busy_seconds: fmtNum, idle_seconds: fmtNum } });
    const charts = h('div', { class: 'charts' });
    main.append(now.el, charts);
    return async () => {
      const d = await load('devices'); if (!d) return;
      now.update(d.devices);
      const byDevice = {};
      for (const r of records(d.history)) (byDevice[r.device] ||= []).push(r);
      const names = Object.keys(byDevice).sort();
      const idle = names.map((n) => {
        const rs = byDevice[n]; const pts = [];
        for (let i = 1; i < rs.length; i++) {
          const dt = (ms(rs[i].at) - ms(rs[i - 1].at)) / 1000;
          if (dt > 0) pts.push([ms(rs[i].at), Math.max(0, Math.min(1, (rs[i].idle_seconds - rs[i - 1].idle_seconds) / dt))]);
        }
        return { name: n + ' idle', points: pts };
      });
      charts.replaceChildren(
        lineChart('Utilisation', names.map((n) => ({ name: n, points: byDevice[n].map((r) => [ms(r.at), r.utilization]) })), { min: 0, max: 1, none: 'No readings yet: the server reads its devices every second.' }),
        lineChart('Idle share of each second', idle, { min: 0, max: 1, none: 'No readings yet.' }),
        lineChart('Memory used (GiB)', names.map((n) => ({ name: n, points: byDevice[n].map((r) => [ms(r.at), r.memory_used_bytes / 1073741824]) })), { min: 0 }));
    };
  };

  VIEWS.lineage = (main) => {
    const box = h('div', { class: 'card' });
    const text = h('section', { 'aria-labelledby': 'h-edges' });
    main.append(h('p', { class: 'muted' }, 'Sources → tables → models → jobs → tables. Select a node (or Tab to it and press Enter) to light up what it feeds and what feeds it.'), box, text);
    return async () => {
      const g = await load('lineage'); if (!g) return;
      drawGraph(box, g);
      const names = Object.fromEntries(g.nodes.map((n) => [n.id, n.kind + ' ' + n.name]));
      text.replaceChildren(h('h2', { id: 'h-edges' }, 'Edges'), g.edges.length ? h('ul', {}, g.edges.map((e) => h('li', {}, names[e.from] + ' → ' + names[e.to]))) :
        empty('No lineage yet: sync a source into a table, train a model on it, or schedule a job.'));
    };
  };
  const KIND_ORDER = { source: 0, table: 1, model: 2, job: 3, monitor: 3 };
  function drawGraph(box, g) {
    if (!g.nodes.length) { box.replaceChildren(empty('Nothing you may see yet.')); return; }
    // Layers: the longest path from a node with no inputs, kinds kept in order.
    const layer = Object.fromEntries(g.nodes.map((n) => [n.id, KIND_ORDER[n.kind] || 0]));
    for (let pass = 0; pass < g.nodes.length; pass++) {
      let moved = false;
      for (const e of g.edges) {
        if (layer[e.to] <= layer[e.from] && layer[e.from] + 1 < g.nodes.length + 4) { layer[e.to] = layer[e.from] + 1; moved = true; }
      }
      if (!moved) break;
    }
    const layers = {};
    for (const n of g.nodes) (layers[layer[n.id]] ||= []).push(n);
    const keys = Object.keys(layers).map(Number).sort((a, b) => a - b);
    const NW = 170; const NH = 44; const GX = 70; const GY = 18;
    const pos = {};
    keys.forEach((k, i) => layers[k].sort((a, b) => a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name)).forEach((n, j) => { pos[n.id] = { x: 10 + i * (NW + GX), y: 10 + j * (NH + GY) }; }));
    const W = 20 + keys.length * (NW + GX) - GX;
    const H = 20 + Math.max(...keys.map((k) => layers[k].length)) * (NH + GY) - GY;
    const svg = s('svg', { class: 'graph', viewBox: `0 0 ${W} ${H}`, role: 'group', 'aria-label': 'Lineage graph, ' + g.nodes.length + ' objects and ' + g.edges.length + ' edges' });
    svg.append(s('defs', {}, s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' }, s('path', { d: 'M0,0 L10,5 L0,10 z', fill: 'var(--muted)' }))));
    const edges = g.edges.filter((e) => pos[e.from] && pos[e.to]).map((e) => {
      const a = pos[e.from]; const b = pos[e.to];
      const x1 = a.x + NW; const y1 = a.y + NH / 2; const x2 = b.x; const y2 = b.y + NH / 2;
      const back = x2 <= x1;
      const d = back ? `M${a.x + NW / 2},${a.y + NH} C${a.x + NW / 2},${a.y + NH + 40} ${b.x + NW / 2},${b.y + NH + 40} ${b.x + NW / 2},${b.y + NH}`
        : `M${x1},${y1} C${x1 + GX / 2},${y1} ${x2 - GX / 2},${y2} ${x2},${y2}`;
      const path = s('path', { class: 'edge', d, 'marker-end': 'url(#arrow)' });
      path.dataset.from = e.from; path.dataset.to = e.to;
      return path;
    });
    svg.append(...edges);
    const nodes = g.nodes.map((n) => {
      const p = pos[n.id];
      const label = n.name.length > 24 ? n.name.slice(0, 23) + '…' : n.name;
      const el = s('g', { class: 'node', transform: `translate(${p.x},${p.y})`, tabindex: 0, role: 'button', style: `--k: var(--${n.kind})`, 'aria-label': n.kind + ' ' + n.name + (n.detail ? ' (' + n.detail + ')' : '') },
        s('title', { text: n.kind + ' ' + n.name + (n.detail ? ' · ' + n.detail : '') }),
        s('rect', { width: NW, height: NH, rx: 8 }),
        s('text', { class: 'kind', x: 10, y: 15, text: n.kind + (n.detail ? ' · ' + n.detail : '') }),
        s('text', { x: 10, y: 33, text: label }));
      const light = () => {
        const near = new Set([n.id]);
        for (const e of edges) {
          const on = e.dataset.from === n.id || e.dataset.to === n.id;
          e.classList.toggle('lit', on);
          if (on) { near.add(e.dataset.from); near.add(e.dataset.to); }
        }
        for (const m of nodes) m.el.classList.toggle('lit', near.has(m.id));
      };
      el.addEventListener('click', light);
      el.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); light(); } });
      return { id: n.id, el };
    });
    svg.append(...nodes.map((n) => n.el));
    box.replaceChildren(h('div', { style: 'overflow-x:auto' }, svg));
    svg.style.minWidth = Math.min(W, 900) + 'px';
  }

  VIEWS.audit = (main) => {
    const banner = h('div', { 'aria-live': 'polite' });
    const user = h('input', { id: 'audit-user', name: 'user', size: 12 });
    const iface = h('select', { id: 'audit-interface', name: 'interface' }, ['', 'cli', 'flight_sql', 'web', 'job', 'demo', 'embedded'].map((v) => h('option', { value: v }, v || 'any')));
    const outcome = h('select', { id: 'audit-outcome', name: 'outcome' }, ['', 'success', 'failure', 'denied'].map((v) => h('option', { value: v }, v || 'any')));
    const kind = h('input', { id: 'audit-kind', name: 'kind', size: 14, placeholder: 'e.g. RUN JOB' });
    const text = h('input', { id: 'audit-text', name: 'text', type: 'search', size: 16 });
    const form = h('form', { class: 'toolbar', role: 'search', 'aria-label': 'Audit filters' },
      field('audit-user', 'User', user), field('audit-interface', 'Interface', iface), field('audit-outcome', 'Outcome', outcome),
      field('audit-kind', 'Kind', kind), field('audit-text', 'Text', text), h('button', { type: 'submit', class: 'primary' }, 'Apply'));
    const list = dataTable('audit', {
      label: 'entries', caption: 'Audit log, newest first', format: { time: fmtTime, outcome: statusBadge, statement: (v) => h('div', { class: 'cell' }, h('code', {}, v)), error: (v) => v ? h('div', { class: 'cell error' }, v) : '' },
      hide: ['query_id'], empty: empty('No entries match these filters.'),
    });
    main.append(banner, form, list.el);
    const refresh = async () => {
      const q = new URLSearchParams();
      for (const [k, el] of [['user', user], ['interface', iface], ['outcome', outcome], ['kind', kind], ['text', text]]) if (el.value.trim()) q.set(k, el.value.trim());
      const a = await load('audit?' + q.toString()); if (!a) return;
      const v = a.verify;
      banner.replaceChildren(v ? h('div', { class: 'banner ' + (v.intact ? 'ok' : 'bad') }, 'VERIFY AUDIT LOG: ' + (v.intact ? 'chain intact' : 'chain broken') + ', ' + v.detail) : '');
      list.update(a.entries);
    };
    form.addEventListener('submit', (e) => { e.preventDefault(); refresh(); });
    return refresh;
  };

  VIEWS.console = (main) => {
    const area = h('textarea', { id: 'sql', spellcheck: 'false', 'aria-describedby': 'sql-help' });
    area.value = memory.sql || 'SELECT * FROM system.tables';
    area.addEventListener('input', () => { memory.sql = area.value; });
    const out = h('section', { 'aria-live': 'polite', 'aria-label': 'Result' });
    const run = async (prefix) => {
      const sql = (prefix || '') + area.value;
      out.replaceChildren(h('p', { class: 'muted' }, 'Running…'));
      try {
        const r = await api('POST', 'sql', { sql });
        delete memory.result;
        const t = dataTable('result', { label: 'rows', caption: r.kind + ' · ' + r.result.rows.length + ' row(s) · ' + fmtNum(r.seconds) + ' s' });
        t.update(r.result);
        out.replaceChildren(t.el);
      } catch (e) {
        const err = (e.body && e.body.error) || {};
        const parts = [h('p', { class: 'error', role: 'alert' }, e.message)];
        if (err.line) {
          const offset = prefix && err.line === 1 ? prefix.length : 0;
          const line = sql.split('\n')[err.line - 1] || '';
          const col = Math.max(1, err.column - offset);
          parts.push(h('pre', {}, (prefix && err.line === 1 ? line.slice(prefix.length) : line) + '\n' + ' '.repeat(col - 1), h('span', { class: 'caret' }, '^ line ' + err.line + ', column ' + col)));
          const lines = area.value.split('\n');
          const at = lines.slice(0, err.line - 1).reduce((n, l) => n + l.length + 1, 0) + col - 1;
          area.focus(); area.setSelectionRange(at, at + 1);
        }
        out.replaceChildren(...parts);
      }
    };
    area.addEventListener('keydown', (e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); run(); } });
    main.append(h('label', { for: 'sql' }, 'SQL statements (run as ' + me.user + ', governed and audited like any other)'), area,
      h('p', { id: 'sql-help', class: 'muted' }, 'Ctrl+Enter runs. The last statement\'s rows are shown, at most 1000.'),
      h('div', { class: 'toolbar' }, h('button', { type: 'button', class: 'primary', onclick: () => run() }, 'Run'),
        h('button', { type: 'button', onclick: () => run('EXPLAIN ANALYZE ') }, 'EXPLAIN ANALYZE')), out);
    return null;
  };

  // Loads a view's data; an error is shown and the view keeps what it had.
  async function load(path) {
    try { return await api('GET', path); } catch (e) {
      if (e.status !== 401) say(e.message, true);
      return null;
    }
  }

  // ---- start ------------------------------------------------------------
  document.addEventListener('DOMContentLoaded', async () => {
    $('signin-form').addEventListener('submit', signIn);
    $('signout').addEventListener('click', signOut);
    $('menu').addEventListener('click', () => setMenu($('nav').classList.contains('closed')));
    if (window.matchMedia('(max-width: 760px)').matches) setMenu(false);
    window.addEventListener('hashchange', route);
    document.addEventListener('visibilitychange', () => { if (!document.hidden && current && current.refresh) current.refresh(); });
    try { me = await api('GET', 'session'); start(); } catch (e) { signedOut(); }
  });
})();
