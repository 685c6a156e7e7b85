// The curvecast tab: one run's forecast drawn as inline SVG. A self-contained ES module (no build step, no network
// beyond this TensorBoard): TensorBoard loads it in an iframe whose base URL is /data/plugin/curvecast/ and calls
// render(). Everything that comes from the run (names, messages) is set as text, never parsed as HTML.
// What the server sends is read through normalize(): any field may be missing or of another type, and any array long,
// so the drawing code sees only finite numbers, strings and bounded arrays, and never spreads an array into a call.

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 900;
const COLORS = {observed: '#777', forecast: '#1f77b4', target: '#d62728', lr: '#2ca02c', stop: '#9467bd'};
const SEVERITY = {info: '#1f77b4', warning: '#ff7f0e', critical: '#d62728'};
const MAX_POINTS = 2000;  // per series drawn: the server sends fewer; a longer one is thinned here too
const MAX_ITEMS = 200;  // anomalies, stops, warnings

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
  const select = el('select', {id: 'cc-run-select'});
  for (const run of runs) select.appendChild(el('option', {value: run}, run));
  // A link can name the run: .../plugin_entry.html?name=curvecast&run=NAME
  const wanted = new URLSearchParams(window.location.search).get('run');
  if (wanted && runs.includes(wanted)) select.value = wanted;
  const reload = el('button', {id: 'cc-reload'}, 'reload');
  const view = el('div', {id: 'cc-view'});
  root.append(el('div', {class: 'cc-bar'}, [el('span', {}, 'run '), select, reload]), view);
  const show = async () => {
    const data = await getJson('./run?' + new URLSearchParams({run: select.value}));
    view.replaceChildren(data ? drawOrExplain(data) : el('p', {}, 'No curvecast data in this run.'));
  };
  select.addEventListener('change', show);
  reload.addEventListener('click', show);
  // TensorBoard's own reload does not reach a plugin's iframe: a live run is redrawn every 30 s while in view.
  setInterval(() => { if (!document.hidden) show(); }, 30000);
  await show();
}

async function getJson(url) {
  try {
    const response = await fetch(url);
    return response.ok ? await response.json() : null;
  } catch (error) {
    return null;  // TensorBoard gone or a body that is not JSON: as no data
  }
}

function drawOrExplain(raw) {
  try {
    return drawRun(normalize(raw));
  } catch (error) {  // a last guard: the page stays up and says why the run is not drawn
    return el('p', {id: 'cc-error'}, `Could not draw this run: ${error}`);
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

// -- what the server sent, as the drawing code reads it -----------------------------------------------------------

function normalize(raw) {
  const d = isObject(raw) ? raw : {};
  const history = isObject(d.final_history) ? d.final_history : {};
  const planned = isObject(d.planned_lr) ? d.planned_lr : {};
  const anomalies = list(d.anomalies).filter(isObject).map((a) => ({step: num(a.step), severity: text(a.severity),
    kind: text(a.kind), message: text(a.message)})).filter((a) => a.step !== null);
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

function normalizeForecast(f) {
  const curve = isObject(f.curve) ? f.curve : {};
  const out = {curve: thin(columns(curve.steps, [curve.mean, curve.lo, curve.hi]).filter((p) => finite(p[1])))};
  for (const k of ['step', 'horizon', 'last_step', 'interval', 'final', 'final_lo', 'final_hi', 'target',
    'prob_target', 'step_to_target', 'reached_at']) out[k] = num(f[k]);
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

// -- charts -------------------------------------------------------------------------------------------------------

function mainChart(data) {
  const f = data.forecast;
  const obs = data.observed;
  const curve = f ? f.curve : [];  // [step, mean, lo, hi]
  const target = f ? f.target : null;
  const horizon = f ? f.horizon : null;
  const ys = obs.map((p) => p[1]);
  // A spike would flatten the curve: the scale leaves out the steps of anomalies (their markers sit on the edge).
  const marked = new Set(data.anomalies.map((a) => a.step));
  const calm = obs.filter((p) => !marked.has(p[0])).map((p) => p[1]);
  const top = Math.max(quantile(calm.length ? calm : ys, 1), maxOf(curve.map((c) => c[3] ?? c[1])),
    target ?? -Infinity);
  const bottom = Math.min(minOf(ys), minOf(curve.map((c) => c[2] ?? c[1])), target ?? Infinity);
  const xMax = Math.max(horizon ?? 0, maxOf(obs.map((p) => p[0])), maxOf(curve.map((p) => p[0])), 1);
  const c = chart(0, xMax, bottom, top, 300, 'cc-main');
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
  if (horizon !== null) c.vline(horizon, 'cc-horizon', '#bbb', `horizon ${stepText(horizon)}`);
  if (target !== null) c.hline(target, 'cc-target', COLORS.target, `target ${fmt(target)}`);
  for (const stop of data.stops) c.vline(stop.step, 'cc-stop', COLORS.stop, 'stop', stop.message);
  for (const a of data.anomalies) {
    const value = nearest(obs, a.step);
    if (value === null) continue;
    const color = Object.hasOwn(SEVERITY, a.severity) ? SEVERITY[a.severity] : '#000';
    c.marker(a.step, value, 'cc-anomaly', color, `step ${stepText(a.step)} · ${a.severity} · ${a.kind}: ${a.message}`);
  }
  const legend = [['observed', COLORS.observed]];
  if (curve.length > 1) legend.push(['forecast (dashed) and its band', COLORS.forecast]);
  if (target !== null) legend.push(['target', COLORS.target]);
  if (data.anomalies.length) legend.push(['anomaly (hover for its message)', SEVERITY.warning]);
  if (data.stops.length) legend.push(['early stop', COLORS.stop]);
  return c.legend(legend);
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
  const c = chart(minOf(xs), Math.max(maxOf(xs), 1), minOf(ys), maxOf(ys), 200, 'cc-final-chart');
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
  const c = chart(0, Math.max(maxOf(all.map((p) => p[0])), 1), Math.min(0, minOf(ys)), maxOf(ys), 160, 'cc-lr-chart');
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

function chart(x0, x1, y0, y1, height, id) {
  const m = {left: 64, right: 16, top: 10, bottom: 28};
  [y0, y1] = span(y0, y1);
  const pad = (y1 - y0) * 0.05;
  y0 -= pad; y1 += pad;
  [x0, x1] = span(x0, x1);
  const w = WIDTH - m.left - m.right;
  const h = height - m.top - m.bottom;
  const x = (v) => m.left + ((v - x0) / (x1 - x0)) * w;
  const y = (v) => m.top + (1 - (Math.min(Math.max(v, y0), y1) - y0) / (y1 - y0)) * h;
  const svg = svgEl('svg', {id, width: WIDTH, height, viewBox: `0 0 ${WIDTH} ${height}`, class: 'cc-chart'});
  const clip = `${id}-clip`;
  svg.appendChild(svgEl('clipPath', {id: clip}, [svgEl('rect', {x: m.left, y: m.top, width: w, height: h})]));
  const plot = svgEl('g', {'clip-path': `url(#${clip})`});
  svg.appendChild(svgEl('rect', {x: m.left, y: m.top, width: w, height: h, fill: 'none', stroke: '#ccc'}));
  for (const t of ticks(x0, x1)) {
    svg.appendChild(svgEl('text', {x: x(t), y: height - 8, 'text-anchor': 'middle', class: 'cc-tick'}, fmt(t)));
    svg.appendChild(svgEl('line', {x1: x(t), x2: x(t), y1: m.top, y2: m.top + h, stroke: '#eee'}));
  }
  for (const t of ticks(y0, y1)) {
    svg.appendChild(svgEl('text', {x: m.left - 6, y: y(t) + 4, 'text-anchor': 'end', class: 'cc-tick'}, fmt(t)));
    svg.appendChild(svgEl('line', {x1: m.left, x2: m.left + w, y1: y(t), y2: y(t), stroke: '#eee'}));
  }
  svg.appendChild(plot);
  const d = (pts, close) => pts.map((p, i) => `${i ? 'L' : 'M'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`)
    .join('') + (close ? 'Z' : '');
  const api = {
    svg,
    path(pts, cls, attrs, close = false) {
      const good = pts.filter((p) => finite(p[0]) && finite(p[1]));
      if (good.length) plot.appendChild(svgEl('path', {class: cls, d: d(good, close), fill: 'none', ...attrs}));
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
    marker(sx, sy, cls, color, title, r = 4.5) {
      const dot = svgEl('circle', {class: cls, cx: x(sx), cy: y(sy), r, fill: color, stroke: '#fff',
        'data-step': sx});
      dot.appendChild(svgEl('title', {}, title));
      svg.appendChild(dot);  // unclipped: a spike's marker sits whole on the top edge
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

function quantile(values, q) {
  const v = values.filter(finite).sort((a, b) => a - b);
  return v.length ? v[Math.min(v.length - 1, Math.floor(q * v.length))] : -Infinity;
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
  #cc-events { border-collapse: collapse; margin-top: 12px; } #cc-events td, #cc-events th { padding: 2px 8px;
    border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }
`;
