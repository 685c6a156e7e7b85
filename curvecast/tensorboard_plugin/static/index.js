// The curvecast tab: one run's forecast drawn as inline SVG. A self-contained ES module (no build step, no network
// beyond this TensorBoard): TensorBoard loads it in an iframe whose base URL is /data/plugin/curvecast/ and calls
// render(). Everything that comes from the run (names, messages) is set as text, never parsed as HTML.
// What the server sends is read through normalize(): any field may be missing or of another type, and any array long,
// so the drawing code sees only finite numbers, strings and bounded arrays, and never spreads an array into a call.

const SVG = 'http://www.w3.org/2000/svg';
const COLORS = {observed: '#777', forecast: '#1f77b4', target: '#d62728', lr: '#2ca02c', stop: '#9467bd'};
const SEVERITY = {info: '#1f77b4', warning: '#ff7f0e', critical: '#d62728'};
const MAX_POINTS = 2000;  // per series drawn: the server sends fewer; a longer one is thinned here too
const MAX_ITEMS = 200;  // anomalies, stops, warnings
const MAX_RUNS = 2000;  // rows of the ranking
const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22',
  '#17becf'];

export async function render() {
  document.head.appendChild(el('style', {}, STYLE));
  const root = el('div', {id: 'cc-root'});
  document.body.appendChild(root);
  const listed = await getJson('./runs');
  const runs = Array.isArray(listed) ? listed.filter(isString) : [];
  if (!runs.length) {
    root.appendChild(el('p', {id: 'cc-empty'}, 'No run holds curvecast data yet: add Curvecast() to a Trainer ' +
      'with a TensorBoardLogger, and its forecasts appear here.'));
    return;
  }
  // A run's colour follows its place among all the runs: the same in every view and across reloads.
  runs.forEach((run, i) => state.colors.set(run, runColor(i)));
  const select = el('select', {id: 'cc-run-select'});
  select.appendChild(el('option', {value: COMPARE}, `compare runs (${runs.length})`));
  for (const run of runs) select.appendChild(el('option', {value: run}, run));
  // A link can name the run and the axis: .../plugin_entry.html?name=curvecast&run=NAME (or view=compare)&log=1
  const params = new URLSearchParams(window.location.search);
  if (params.has('log')) state.log = params.get('log') === '1';
  const wanted = params.get('run');
  select.value = wanted && runs.includes(wanted) ? wanted : runs.length > 1 || params.get('view') === COMPARE
    ? COMPARE : runs[0];
  const logBox = el('input', {type: 'checkbox', id: 'cc-log'});
  const reload = el('button', {id: 'cc-reload'}, 'reload');
  const view = el('div', {id: 'cc-view'});
  root.append(el('div', {class: 'cc-bar'}, [el('span', {}, 'view '), select,
    el('label', {}, [logBox, ' log axis']), reload]), view);
  state.view = view;
  state.logBox = logBox;
  const show = async () => {
    if (select.value === COMPARE) {
      const query = state.chosen === null ? '' : '?' + new URLSearchParams(
        state.chosen.size ? [...state.chosen].map((r) => ['run', r]) : [['run', '']]);
      state.data = {compare: await getJson('./compare' + query)};
    } else {
      state.data = {run: await getJson('./run?' + new URLSearchParams({run: select.value}))};
    }
    redraw();
  };
  state.show = show;
  state.open = (run) => { select.value = run; show(); };
  select.addEventListener('change', show);
  reload.addEventListener('click', show);
  logBox.addEventListener('change', () => { state.log = !!logBox.checked; redraw(); });
  // The charts take the page's width: drawn again (from the data already here) when the window is resized.
  let resizing = 0;
  if (typeof window.addEventListener === 'function') {
    window.addEventListener('resize', () => { clearTimeout(resizing); resizing = setTimeout(redraw, 150); });
  }
  // TensorBoard's own reload does not reach a plugin's iframe: a live run is redrawn every 30 s while in view.
  setInterval(() => { if (!document.hidden) show(); }, 30000);
  await show();
}

const COMPARE = 'compare';
const state = {view: null, logBox: null, log: null, drawnLog: false, data: {}, chosen: null, colors: new Map(),
  show: null, open: null};

function redraw() {
  if (!state.view) return;
  const {run, compare} = state.data;
  let node;
  if (compare !== undefined) node = compare ? drawOrExplain(compare, drawComparison) : el('p', {}, 'No comparison.');
  else node = run ? drawOrExplain(run, drawRun) : el('p', {}, 'No curvecast data in this run.');
  state.view.replaceChildren(node);
  // A mark per drawing, for timing the page (benchmarks/tab_many_runs.py reads it).
  if (typeof performance === 'object' && typeof performance.mark === 'function') performance.mark('cc-drawn');
}

// The width the charts take: the page's, less its margins.
function pageWidth() {
  const root = document.getElementById ? document.getElementById('cc-root') : null;
  const w = root && finite(root.clientWidth) && root.clientWidth > 0 ? root.clientWidth : 900;
  return Math.max(480, Math.floor(w));
}

// Whether the value axis is logarithmic: as the box says once touched, else when every value is positive and they
// span 30-fold or more (a loss falling 1000-fold).
function useLog(values) {
  let log = state.log;
  if (log === null) {
    const v = values.filter(finite);
    log = v.length > 1 && minOf(v) > 0 && maxOf(v) / minOf(v) >= 30;
  }
  if (state.logBox) state.logBox.checked = log;
  state.drawnLog = log;  // the view's other value charts follow it
  return log;
}

function runColor(i) {
  return i < PALETTE.length ? PALETTE[i] : `hsl(${Math.round((i * 137.508) % 360)}, 65%, 42%)`;
}

function colorOf(run) {
  return state.colors.get(run) || '#555';
}

async function getJson(url) {
  try {
    const response = await fetch(url);
    return response.ok ? await response.json() : null;
  } catch (error) {
    return null;  // TensorBoard gone or a body that is not JSON: as no data
  }
}

function drawOrExplain(raw, draw) {
  try {
    return draw === drawRun ? drawRun(normalize(raw)) : draw(normalizeComparison(raw));
  } catch (error) {  // a last guard: the page stays up and says why the view is not drawn
    return el('p', {id: 'cc-error'}, `Could not draw this view: ${error}`);
  }
}

function drawRun(data) {
  const f = data.forecast;
  const section = el('section', {class: 'cc-run', 'data-run': data.run});
  section.appendChild(el('h2', {}, data.run));
  section.appendChild(el('p', {class: 'cc-summary', id: 'cc-summary'}, summaryText(data)));
  section.appendChild(el('h3', {}, `${data.monitor}: observed, forecast to the horizon, target`));
  section.appendChild(mainChart(data));
  section.appendChild(el('h3', {}, `forecast of the final ${data.monitor}, at each forecast`));
  section.appendChild(finalChart(data, f));
  section.appendChild(el('h3', {}, 'learning rate: so far and planned'));
  section.appendChild(lrChart(data));
  section.appendChild(eventsTable(data));
  if (data.warnings.length) {
    section.appendChild(el('h3', {}, 'what could not be read from the run'));
    section.appendChild(el('ul', {id: 'cc-warnings'}, data.warnings.map((w) => el('li', {}, w))));
  }
  return section;
}

// -- the runs compared --------------------------------------------------------------------------------------------

function drawComparison(data) {
  const section = el('section', {class: 'cc-compare', id: 'cc-compare'});
  const ranked = data.rows.filter((r) => r.rank !== null).length;
  section.appendChild(el('h2', {}, `${data.rows.length} runs compared`));
  let note = `Ranked by forecast final value, ${data.mode === 'max' ? 'highest' : 'lowest'} first (${ranked} of ` +
    `${data.rows.length} runs have a forecast). Chance to end best: the chance a run ends better than the best ` +
    'forecast among the others, as `curvecast analyze DIR` gives it.';
  if (data.horizons.length > 1) {
    note += ` The runs are forecast to their own horizons (${data.horizons.slice(0, 5).map(stepText).join(', ')}` +
      `${data.horizons.length > 5 ? ', ...' : ''}).`;
  }
  section.appendChild(el('p', {class: 'cc-summary', id: 'cc-compare-summary'}, note));
  section.appendChild(el('h3', {}, `${data.drawn.length} of them drawn: observed, forecast (dashed) with its band, ` +
    'target'));
  section.appendChild(data.drawn.length ? compareChart(data) : el('p', {class: 'cc-none', id: 'cc-none-drawn'},
    'No run chosen: tick runs in the table to draw them.'));
  const pick = (runs) => { state.chosen = new Set(runs); state.show(); };
  section.appendChild(el('div', {class: 'cc-bar'}, [
    el('span', {}, 'draw '),
    button('cc-draw-best', `best ${Math.min(10, data.rows.length)}`, () => { state.chosen = null; state.show(); }),
    button('cc-draw-all', 'all', () => pick(data.rows.map((r) => r.run))),
    button('cc-draw-none', 'none', () => pick([])),
  ]));
  section.appendChild(rankingTable(data));
  if (data.warnings.length) {
    section.appendChild(el('h3', {}, 'what could not be read from the runs'));
    section.appendChild(el('ul', {id: 'cc-warnings'}, data.warnings.map((w) => el('li', {}, w))));
  }
  return section;
}

function compareChart(data) {
  const ys = [];
  let xMax = 1;
  for (const r of data.drawn) {
    for (const p of r.observed) ys.push(p[1]);
    for (const p of r.curve) ys.push(p[1], p[2], p[3]);
    if (r.target !== null) ys.push(r.target);
    xMax = Math.max(xMax, r.horizon ?? 0, maxOf(r.observed.map((p) => p[0])), maxOf(r.curve.map((p) => p[0])));
  }
  const c = chart(0, xMax, minOf(ys), maxOf(ys), 380, 'cc-compare-chart', useLog(ys));
  for (const r of data.drawn) {  // the bands first: every line stays on top of them
    const band = r.curve.filter((p) => finite(p[2]) && finite(p[3]));
    if (band.length > 1) {
      const outline = [...band.map((p) => [p[0], p[3]]), ...band.slice().reverse().map((p) => [p[0], p[2]])];
      c.path(outline, 'cc-cmp-band', {fill: colorOf(r.run), 'fill-opacity': 0.12, stroke: 'none', 'data-run': r.run},
        true);
    }
  }
  for (const r of data.drawn) {
    c.path(r.observed, 'cc-cmp-observed', {stroke: colorOf(r.run), 'stroke-width': 1.3, 'data-run': r.run},
      false, r.run);
    if (r.curve.length > 1) {
      c.path(r.curve.map((p) => [p[0], p[1]]), 'cc-cmp-forecast', {stroke: colorOf(r.run), 'stroke-width': 2,
        'stroke-dasharray': '6 4', 'data-run': r.run}, false, `${r.run}: forecast`);
    }
  }
  const targets = [...new Set(data.drawn.map((r) => r.target).filter((t) => t !== null))];
  for (const t of targets) {
    const owners = data.drawn.filter((r) => r.target === t);
    const color = targets.length === 1 ? COLORS.target : colorOf(owners[0].run);
    c.hline(t, 'cc-target', color, `target ${fmt(t)}${targets.length > 1 ? ` (${owners[0].run})` : ''}`);
  }
  const legend = data.drawn.map((r) => [r.run, colorOf(r.run)]);
  if (targets.length === 1) legend.push(['target', COLORS.target]);
  return c.legend(legend);
}

function rankingTable(data) {
  const chosen = new Set(data.drawn.map((r) => r.run));
  const pct = data.rows.find((r) => r.interval !== null)?.interval ?? 0.8;
  const head = el('tr', {}, ['draw', 'rank', 'run', 'monitor', 'last step', 'last', 'forecast final',
    `${Math.round(100 * pct)}% interval`, 'horizon', 'target', 'P(target)', 'chance to end best']
    .map((h) => el('th', {}, h)));
  const rows = data.rows.map((r) => {
    const box = el('input', {type: 'checkbox', class: 'cc-draw', 'data-run': r.run});
    box.checked = chosen.has(r.run);
    box.addEventListener('change', () => {
      const next = new Set(chosen);
      if (box.checked) next.add(r.run); else next.delete(r.run);
      state.chosen = next;
      state.show();
    });
    const name = el('a', {href: '#', class: 'cc-open', title: 'this run alone'}, r.run);
    name.addEventListener('click', (event) => { event.preventDefault(); state.open(r.run); });
    const interval = r.final_lo === null || r.final_hi === null ? '' : `${fmt(r.final_lo)} to ${fmt(r.final_hi)}`;
    const cells = [
      el('td', {}, [box]), el('td', {class: 'cc-rank'}, r.rank === null ? '-' : String(r.rank)),
      el('td', {}, [el('i', {class: 'cc-swatch', style: `background:${colorOf(r.run)}`}), name]),
      el('td', {}, r.monitor), el('td', {}, r.last_step === null ? '' : stepText(r.last_step)),
      el('td', {}, r.last === null ? '' : fmt(r.last)),
      el('td', {class: 'cc-final-value'}, r.final === null ? 'no forecast yet'
        : r.ended_at === null ? fmt(r.final) : `ended at step ${stepText(r.ended_at)}`),
      el('td', {}, interval), el('td', {}, r.horizon === null ? '' : stepText(r.horizon)),
      el('td', {}, r.target === null ? '' : fmt(r.target)),
      el('td', {}, r.prob_target === null ? '' : `${Math.round(100 * r.prob_target)}%`),
      el('td', {class: 'cc-chance'}, r.chance_best === null ? 'n/a' : `${pctText(r.chance_best)}`),
    ];
    return el('tr', {class: 'cc-rank-row', 'data-run': r.run}, cells);
  });
  return el('table', {id: 'cc-ranking'}, [head, ...rows]);
}

function pctText(p) {
  const v = 100 * p;
  return v > 0 && v < 1 ? '<1%' : v < 100 && v > 99 ? '>99%' : `${Math.round(v)}%`;
}

function button(id, label, onClick) {
  const b = el('button', {id}, label);
  b.addEventListener('click', onClick);
  return b;
}

// -- what the server sent, as the drawing code reads it -----------------------------------------------------------

function normalize(raw) {
  const d = isObject(raw) ? raw : {};
  const history = isObject(d.final_history) ? d.final_history : {};
  const planned = isObject(d.planned_lr) ? d.planned_lr : {};
  const anomalies = list(d.anomalies).filter(isObject).map((a) => ({step: num(a.step), severity: text(a.severity),
    kind: text(a.kind), series: text(a.series), message: text(a.message), value: num(a.value)}))
    .filter((a) => a.step !== null);
  const stops = list(d.stops).filter(isObject).map((s) => ({step: num(s.step), message: text(s.message)}))
    .filter((s) => s.step !== null);
  return {
    run: text(d.run),
    monitor: text(d.monitor) || 'loss',
    observed: pairs(d.observed),
    forecast: isObject(d.forecast) ? normalizeForecast(d.forecast) : null,
    final_history: {final: pairs(history.final), final_lo: pairs(history.final_lo),
      final_hi: pairs(history.final_hi)},
    lr: pairs(d.lr),
    planned_lr: thin(columns(planned.steps, [planned.lrs]).filter((p) => finite(p[1]))),
    anomalies: anomalies.slice(-MAX_ITEMS),
    stops: stops.slice(-MAX_ITEMS),
    warnings: list(d.warnings).map(text).filter(Boolean).slice(0, MAX_ITEMS),
  };
}

function normalizeComparison(raw) {
  const d = isObject(raw) ? raw : {};
  const rows = list(d.runs).filter(isObject).slice(0, MAX_RUNS).map((r) => {
    const row = {run: text(r.run), monitor: text(r.monitor) || 'loss', mode: text(r.mode)};
    for (const k of ['rank', 'step', 'horizon', 'last_step', 'last', 'final', 'final_lo', 'final_hi', 'interval',
      'target', 'prob_target', 'chance_best', 'ended_at']) row[k] = num(r[k]);
    return row;
  }).filter((r) => r.run);
  const drawn = list(d.drawn).filter(isObject).slice(0, MAX_RUNS).map((r) => {
    const curve = isObject(r.curve) ? r.curve : {};
    return {run: text(r.run), observed: pairs(r.observed), target: num(r.target), horizon: num(r.horizon),
      curve: thin(columns(curve.steps, [curve.mean, curve.lo, curve.hi]).filter((p) => finite(p[1])))};
  }).filter((r) => r.run);
  return {mode: text(d.mode) === 'max' ? 'max' : 'min', horizons: list(d.horizons).filter(finite).slice(0, MAX_ITEMS),
    rows, drawn, warnings: list(d.warnings).map(text).filter(Boolean).slice(0, MAX_ITEMS)};
}

function normalizeForecast(f) {
  const curve = isObject(f.curve) ? f.curve : {};
  const out = {curve: thin(columns(curve.steps, [curve.mean, curve.lo, curve.hi]).filter((p) => finite(p[1])))};
  for (const k of ['step', 'horizon', 'last_step', 'interval', 'final', 'final_lo', 'final_hi', 'target',
    'prob_target', 'step_to_target', 'reached_at', 'observed', 'best', 'ended_at']) out[k] = num(f[k]);
  out.ended_by = text(f.ended_by);
  return out;
}

// [[x, y], ...] of the points of `value` whose x and y are finite, thinned to MAX_POINTS.
function pairs(value) {
  const out = [];
  for (const p of list(value)) if (Array.isArray(p) && finite(p[0]) && finite(p[1])) out.push([p[0], p[1]]);
  return thin(out);
}

// Rows [x, a, b, ...] from a column of steps and columns of values: a step that is not a number drops its row, a
// value that is not one is null.
function columns(steps, values) {
  const xs = list(steps);
  const cols = values.map(list);
  const out = [];
  for (let i = 0; i < xs.length; i++) {
    if (finite(xs[i])) out.push([xs[i], ...cols.map((c) => num(c[i]))]);
  }
  return out;
}

// At most MAX_POINTS rows, in x order: per bucket, its lowest and highest row (a spike stays), first and last kept.
function thin(rows) {
  if (rows.length <= MAX_POINTS) return rows;
  const buckets = Math.floor((MAX_POINTS - 2) / 2);
  const out = [rows[0]];
  for (let b = 0; b < buckets; b++) {
    const start = 1 + Math.floor((b * (rows.length - 2)) / buckets);
    const stop = 1 + Math.floor(((b + 1) * (rows.length - 2)) / buckets);
    let lo = -1, hi = -1;
    for (let i = start; i < stop; i++) {
      if (!finite(rows[i][1])) continue;
      if (lo < 0 || rows[i][1] < rows[lo][1]) lo = i;
      if (hi < 0 || rows[i][1] > rows[hi][1]) hi = i;
    }
    if (lo < 0 && stop > start) out.push(rows[start]);
    else if (lo >= 0) for (const i of lo === hi ? [lo] : [Math.min(lo, hi), Math.max(lo, hi)]) out.push(rows[i]);
  }
  out.push(rows[rows.length - 1]);
  return out;
}

function list(value) {
  return Array.isArray(value) ? value : [];
}

function isObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isString(value) {
  return typeof value === 'string';
}

function num(value) {
  return finite(value) ? value : null;
}

function text(value) {
  return isString(value) ? value : finite(value) ? String(value) : '';
}

function summaryText(data) {
  const f = data.forecast;
  if (!f) return 'No forecast yet.';
  if (f.ended_at !== null) return endedText(data.monitor, f);
  const pct = f.interval === null ? '' : `${Math.round(100 * f.interval)}%: `;
  let out = `At step ${stepText(f.step)}: ${data.monitor} at step ${stepText(f.horizon)} forecast ${fmt(f.final)}` +
    ` (${pct}${fmt(f.final_lo)} to ${fmt(f.final_hi)})`;
  if (f.target !== null) {
    out += `; target ${fmt(f.target)}`;
    if (f.reached_at !== null) out += `, reached at step ${stepText(f.reached_at)}`;
    else if (f.step_to_target !== null) out += `, forecast to be reached near step ${stepText(Math.round(f.step_to_target))}`;
    if (f.prob_target !== null) out += `, P(reached at the horizon) = ${Math.round(100 * f.prob_target)}%`;
  }
  if (data.stops.length) out += `; stopped early at step ${stepText(data.stops[data.stops.length - 1].step)}`;
  return out + '.';
}

// A run another callback (Lightning's EarlyStopping) stopped before its planned end: where it ended, no forecast.
function endedText(monitor, f) {
  let out = `The run ended at step ${stepText(f.ended_at)}` + (f.horizon === null ? '' : ` of ${stepText(f.horizon)}`) +
    `, stopped before its planned end by ${f.ended_by || 'another callback'}`;
  if (f.observed !== null) out += `; ${monitor} ${fmt(f.observed)} (best ${fmt(f.best)})`;
  if (f.target !== null) {
    const reached = f.reached_at === null ? 'not reached' : `reached at step ${stepText(f.reached_at)}`;
    out += `; target ${fmt(f.target)}: ${reached}`;
  }
  return out + '.';
}

// -- charts -------------------------------------------------------------------------------------------------------

function mainChart(data) {
  const f = data.forecast;
  const obs = data.observed;
  const curve = f ? f.curve : [];  // [step, mean, lo, hi]
  const target = f ? f.target : null;
  const horizon = f ? f.horizon : null;
  const groups = anomalyGroups(data);
  // Every anomaly is drawn at its own value, inside the scale: a spike shows how far it went (the log axis keeps the
  // rest of the curve readable).
  const ys = [...obs.map((p) => p[1]), ...curve.map((c) => c[1]), ...curve.map((c) => c[2]),
    ...curve.map((c) => c[3]), ...groups.map((g) => g.value)];
  if (target !== null) ys.push(target);
  const log = useLog(ys);
  const xMax = Math.max(horizon ?? 0, maxOf(obs.map((p) => p[0])), maxOf(curve.map((p) => p[0])), 1);
  const c = chart(0, xMax, minOf(ys), maxOf(ys), 320, 'cc-main', log);
  const band = curve.filter((p) => finite(p[2]) && finite(p[3]));
  if (band.length > 1) {
    const outline = [...band.map((p) => [p[0], p[3]]), ...band.slice().reverse().map((p) => [p[0], p[2]])];
    c.path(outline, 'cc-band', {fill: COLORS.forecast, 'fill-opacity': 0.18, stroke: 'none'}, true);
  }
  c.path(obs, 'cc-observed', {stroke: COLORS.observed, 'stroke-width': 1.2});
  if (curve.length > 1) {
    c.path(curve.map((p) => [p[0], p[1]]), 'cc-forecast',
      {stroke: COLORS.forecast, 'stroke-width': 2, 'stroke-dasharray': '6 4'});
  }
  const ended = f && f.ended_at !== null;
  const end = ended ? 'planned end' : 'horizon';
  if (horizon !== null) c.vline(horizon, 'cc-horizon', '#bbb', `${end} ${stepText(horizon)}`);
  if (ended) c.vline(f.ended_at, 'cc-ended', COLORS.stop, 'ended', f.ended_by);
  if (target !== null) c.hline(target, 'cc-target', COLORS.target, `target ${fmt(target)}`);
  for (const stop of data.stops) c.vline(stop.step, 'cc-stop', COLORS.stop, 'stop', stop.message);
  for (const g of groups) {
    const worst = g.items.some((a) => a.severity === 'critical') ? 'critical'
      : g.items.some((a) => a.severity === 'warning') ? 'warning' : g.items[0].severity;
    const color = Object.hasOwn(SEVERITY, worst) ? SEVERITY[worst] : '#000';
    // One marker per step, its tooltip listing every anomaly of the step: markers never hide one another.
    const title = g.items.map((a) => `step ${stepText(a.step)} · ${a.severity} · ${a.kind}` +
      (a.series ? ` (${a.series})` : '') + `: ${a.message}`).join('\n');
    c.marker(g.step, g.value, 'cc-anomaly', color, title, 4.5, {'data-count': g.items.length,
      'data-value': g.value});
    if (g.items.length > 1) c.label(g.step, g.value, String(g.items.length), 'cc-anomaly-count');
  }
  const legend = [['observed', COLORS.observed]];
  if (curve.length > 1) legend.push(['forecast (dashed) and its band', COLORS.forecast]);
  if (target !== null) legend.push(['target', COLORS.target]);
  if (groups.length) legend.push(['anomaly at its value (hover: every anomaly of the step)', SEVERITY.warning]);
  if (data.stops.length) legend.push(['early stop', COLORS.stop]);
  if (ended) legend.push(['ended before its planned end', COLORS.stop]);
  return c.legend(legend);
}

// The anomalies grouped by step, each group at one value: the monitor's own value at that step where an anomaly of
// the monitor carries it, else the observed value at the step (or the nearest one).
function anomalyGroups(data) {
  const bySteps = new Map();
  for (const a of data.anomalies) {
    if (!bySteps.has(a.step)) bySteps.set(a.step, []);
    bySteps.get(a.step).push(a);
  }
  const observedAt = new Map(data.observed.map((p) => [p[0], p[1]]));
  const groups = [];
  for (const [step, items] of bySteps) {
    const own = items.find((a) => a.value !== null && (a.series === data.monitor || a.series === ''));
    const value = own ? own.value : observedAt.has(step) ? observedAt.get(step) : nearest(data.observed, step);
    if (value !== null) groups.push({step, items, value});
  }
  return groups;
}

function finalChart(data, f) {
  const h = data.final_history;
  const pts = h.final;
  if (!pts.length) return el('p', {class: 'cc-none'}, 'No forecast yet.');
  const target = f ? f.target : null;
  const lo = new Map(h.final_lo.map((p) => [p[0], p[1]]));
  const hi = new Map(h.final_hi.map((p) => [p[0], p[1]]));
  const ys = [...pts.map((p) => p[1]), ...lo.values(), ...hi.values()];
  if (target !== null) ys.push(target);
  const xs = pts.map((p) => p[0]);
  const c = chart(minOf(xs), Math.max(maxOf(xs), 1), minOf(ys), maxOf(ys), 200, 'cc-final-chart',
    state.drawnLog === true);
  const band = pts.filter((p) => lo.has(p[0]) && hi.has(p[0]));
  if (band.length > 1) {
    const outline = [...band.map((p) => [p[0], hi.get(p[0])]), ...band.slice().reverse().map((p) => [p[0], lo.get(p[0])])];
    c.path(outline, 'cc-final-band', {fill: COLORS.forecast, 'fill-opacity': 0.18, stroke: 'none'}, true);
  }
  c.path(pts, 'cc-final', {stroke: COLORS.forecast, 'stroke-width': 1.5});
  for (const p of pts) {
    c.marker(p[0], p[1], 'cc-final-point', COLORS.forecast, `forecast at step ${stepText(p[0])}: ${fmt(p[1])}`, 2.5);
  }
  if (target !== null) c.hline(target, 'cc-target', COLORS.target, `target ${fmt(target)}`);
  const pct = f && f.interval !== null ? Math.round(100 * f.interval) : 80;
  const legend = [[`forecast of the final value, ${pct}% interval`, COLORS.forecast]];
  return c.legend(target !== null ? [...legend, ['target', COLORS.target]] : legend);
}

function lrChart(data) {
  const planned = data.planned_lr;  // [step, lr], finite
  const all = [...data.lr, ...planned];
  if (!all.length) return el('p', {class: 'cc-none'}, 'The LR was not recorded.');
  const ys = all.map((p) => p[1]);
  const c = chart(0, Math.max(maxOf(all.map((p) => p[0])), 1), Math.min(0, minOf(ys)), maxOf(ys), 160, 'cc-lr-chart',
    false);
  if (planned.length > 1) {
    c.path(planned, 'cc-lr-planned', {stroke: COLORS.lr, 'stroke-width': 1.2, 'stroke-dasharray': '4 3', opacity: 0.7});
  }
  if (data.lr.length) c.path(data.lr, 'cc-lr', {stroke: COLORS.lr, 'stroke-width': 2});
  const legend = data.lr.length ? [['LR so far', COLORS.lr]] : [];
  return c.legend(planned.length > 1 ? [...legend, ['planned LR (dashed)', COLORS.lr]] : legend);
}

function eventsTable(data) {
  const rows = [...data.anomalies.map((a) => [a.step, a.severity, a.kind, a.message]),
    ...data.stops.map((s) => [s.step, 'stop', 'early_stop', s.message])].sort((a, b) => a[0] - b[0]);
  if (!rows.length) return el('p', {class: 'cc-none', id: 'cc-no-events'}, 'No anomalies and no early stop.');
  const head = el('tr', {}, ['step', 'severity', 'kind', 'message'].map((h) => el('th', {}, h)));
  return el('table', {id: 'cc-events'}, [head, ...rows.map((r) => el('tr', {}, r.map((v) => el('td', {}, String(v)))))]);
}

// -- a minimal SVG chart ------------------------------------------------------------------------------------------

function chart(x0, x1, y0, y1, height, id, log = false) {
  const width = pageWidth();
  const m = {left: 64, right: 16, top: 10, bottom: 28};
  if (log) {  // decades of the positive values; a value at or below 0 sits on the bottom edge
    y0 = finite(y0) && y0 > 0 ? Math.log10(y0) : finite(y1) && y1 > 0 ? Math.log10(y1) - 1 : 0;
    y1 = finite(y1) && y1 > 0 ? Math.log10(y1) : y0 + 1;
  }
  [y0, y1] = span(y0, y1);
  const pad = (y1 - y0) * 0.05;
  y0 -= pad; y1 += pad;
  [x0, x1] = span(x0, x1);
  const w = width - m.left - m.right;
  const h = height - m.top - m.bottom;
  const ly = (v) => (log ? (v > 0 ? Math.log10(v) : -Infinity) : v);
  const x = (v) => m.left + ((v - x0) / (x1 - x0)) * w;
  const y = (v) => m.top + (1 - (Math.min(Math.max(ly(v), y0), y1) - y0) / (y1 - y0)) * h;
  const svg = svgEl('svg', {id, width, height, viewBox: `0 0 ${width} ${height}`, class: 'cc-chart',
    'data-scale': log ? 'log' : 'linear'});
  const clip = `${id}-clip`;
  svg.appendChild(svgEl('clipPath', {id: clip}, [svgEl('rect', {x: m.left, y: m.top, width: w, height: h})]));
  const plot = svgEl('g', {'clip-path': `url(#${clip})`});
  svg.appendChild(svgEl('rect', {x: m.left, y: m.top, width: w, height: h, fill: 'none', stroke: '#ccc'}));
  for (const t of ticks(x0, x1)) {
    svg.appendChild(svgEl('text', {x: x(t), y: height - 8, 'text-anchor': 'middle', class: 'cc-tick'}, fmt(t)));
    svg.appendChild(svgEl('line', {x1: x(t), x2: x(t), y1: m.top, y2: m.top + h, stroke: '#eee'}));
  }
  for (const t of log ? logTicks(y0, y1) : ticks(y0, y1)) {
    svg.appendChild(svgEl('text', {x: m.left - 6, y: y(t) + 4, 'text-anchor': 'end', class: 'cc-tick'}, fmt(t)));
    svg.appendChild(svgEl('line', {x1: m.left, x2: m.left + w, y1: y(t), y2: y(t), stroke: '#eee'}));
  }
  svg.appendChild(plot);
  const d = (pts, close) => pts.map((p, i) => `${i ? 'L' : 'M'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`)
    .join('') + (close ? 'Z' : '');
  const api = {
    svg,
    path(pts, cls, attrs, close = false, title = '') {
      const good = pts.filter((p) => finite(p[0]) && finite(p[1]));
      if (!good.length) return;
      const line = svgEl('path', {class: cls, d: d(good, close), fill: 'none', ...attrs});
      if (title) line.appendChild(svgEl('title', {}, title));
      plot.appendChild(line);
    },
    hline(v, cls, color, label) {
      plot.appendChild(svgEl('line', {class: cls, x1: m.left, x2: m.left + w, y1: y(v), y2: y(v), stroke: color,
        'stroke-width': 1.5, 'stroke-dasharray': '2 3'}));
      plot.appendChild(svgEl('text', {x: m.left + 4, y: y(v) - 4, fill: color, class: 'cc-label'}, label));
    },
    vline(v, cls, color, label, title) {
      const line = svgEl('line', {class: cls, x1: x(v), x2: x(v), y1: m.top, y2: m.top + h, stroke: color,
        'stroke-width': 1.5});
      if (title) line.appendChild(svgEl('title', {}, title));
      plot.appendChild(line);
      plot.appendChild(svgEl('text', {x: x(v) - 4, y: m.top + 12, fill: color, 'text-anchor': 'end',
        class: 'cc-label'}, label));
    },
    marker(sx, sy, cls, color, title, r = 4.5, attrs = {}) {
      const dot = svgEl('circle', {class: cls, cx: x(sx), cy: y(sy), r, fill: color, stroke: '#fff',
        'data-step': sx, ...attrs});
      dot.appendChild(svgEl('title', {}, title));
      svg.appendChild(dot);  // unclipped: a spike's marker sits whole on the top edge
    },
    label(sx, sy, label, cls) {
      svg.appendChild(svgEl('text', {x: x(sx) + 6, y: y(sy) - 6, class: cls}, label));
    },
    legend(items) {
      const box = el('div', {class: 'cc-chart-box'}, [svg]);
      box.appendChild(el('div', {class: 'cc-legend'}, items.map(([name, color]) =>
        el('span', {}, [el('i', {style: `background:${color}`}), name]))));
      return box;
    },
  };
  return api;
}

// [lo, hi], finite with lo < hi, from bounds that may be infinite (nothing to draw), equal or out of order.
function span(lo, hi) {
  if (!finite(lo) && !finite(hi)) return [0, 1];
  lo = Math.max(finite(lo) ? lo : hi, -1e300);
  hi = Math.min(finite(hi) ? hi : lo, 1e300);
  if (!(hi > lo)) {
    const pad = Math.abs(lo) * 0.05 || 1;
    return [lo - pad, lo + pad];
  }
  return [lo, hi];
}

function ticks(a, b) {
  const step = 10 ** Math.floor(Math.log10((b - a) / 5 || 1));
  const span = (b - a) / step;
  const k = step * (span > 25 ? 5 : span > 10 ? 2 : 1);
  const out = [];
  for (let t = Math.ceil(a / k) * k; t <= b && out.length < 12; t += k) out.push(Number(t.toPrecision(12)));
  return out;
}

// Ticks of a log axis spanning log10 values a..b: each decade, with 2 and 5 between when there are few decades.
function logTicks(a, b) {
  const out = [];
  const decades = b - a;
  const steps = decades <= 2 ? [1, 2, 5] : [1];
  const every = Math.max(1, Math.ceil(decades / 10));
  for (let e = Math.floor(a); e <= Math.ceil(b) && out.length < 24; e += every) {
    for (const k of steps) {
      const t = k * 10 ** e;
      const l = Math.log10(t);
      if (l >= a && l <= b) out.push(Number(t.toPrecision(12)));
    }
  }
  if (out.length < 2) out.push(...ticks(10 ** a, 10 ** b).filter((t) => t > 0));
  return out;
}

function nearest(points, step) {
  let best = null;
  for (const p of points) if (best === null || Math.abs(p[0] - step) < Math.abs(best[0] - step)) best = p;
  return best ? best[1] : null;
}

function minOf(values) {
  let out = Infinity;
  for (const v of values) if (finite(v) && v < out) out = v;
  return out;
}

function maxOf(values) {
  let out = -Infinity;
  for (const v of values) if (finite(v) && v > out) out = v;
  return out;
}

function finite(v) {
  return typeof v === 'number' && Number.isFinite(v);
}

function stepText(v) {
  return finite(v) ? String(v) : '?';
}

function fmt(v) {
  if (!finite(v)) return '?';
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(2) : String(Number(v.toPrecision(4)));
}

function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return fill(node, children);
}

function svgEl(tag, attrs = {}, children = []) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return fill(node, children);
}

function fill(node, children) {
  if (typeof children === 'string') node.textContent = children;
  else for (const child of [].concat(children)) node.append(child);
  return node;
}

const STYLE = `
  body { font-family: Roboto, sans-serif; font-size: 13px; color: #212121; margin: 16px; }
  h2 { font-size: 16px; margin: 8px 0; } h3 { font-size: 13px; font-weight: 500; margin: 14px 0 4px; }
  .cc-bar { margin-bottom: 8px; } .cc-bar select, .cc-bar button { margin-right: 8px; }
  .cc-summary { background: #f5f5f5; padding: 6px 8px; border-radius: 4px; }
  .cc-tick { font-size: 10px; fill: #666; } .cc-label { font-size: 11px; }
  .cc-legend span { margin-right: 14px; font-size: 11px; }
  .cc-legend i { display: inline-block; width: 12px; height: 3px; margin-right: 4px; vertical-align: middle; }
  #cc-events, #cc-ranking { border-collapse: collapse; margin-top: 12px; }
  #cc-events td, #cc-events th, #cc-ranking td, #cc-ranking th { padding: 2px 8px; border-bottom: 1px solid #eee;
    text-align: left; vertical-align: top; }
  #cc-ranking td.cc-chance, #cc-ranking td.cc-final-value { font-variant-numeric: tabular-nums; }
  .cc-swatch { display: inline-block; width: 10px; height: 10px; margin-right: 6px; border-radius: 2px; }
  .cc-anomaly-count { font-size: 10px; font-weight: 700; fill: #333; }
  .cc-chart { display: block; }
`;
