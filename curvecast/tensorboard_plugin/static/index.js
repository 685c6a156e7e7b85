// The curvecast tab: one run's forecast drawn as inline SVG. A self-contained ES module (no build step, no network
// beyond this TensorBoard): TensorBoard loads it in an iframe whose base URL is /data/plugin/curvecast/ and calls
// render(). Everything that comes from the run (names, messages) is set as text, never parsed as HTML.

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 900;
const COLORS = {observed: '#777', forecast: '#1f77b4', target: '#d62728', lr: '#2ca02c', stop: '#9467bd'};
const SEVERITY = {info: '#1f77b4', warning: '#ff7f0e', critical: '#d62728'};

export async function render() {
  document.head.appendChild(el('style', {}, STYLE));
  const root = el('div', {id: 'cc-root'});
  document.body.appendChild(root);
  const runs = await getJson('./runs');
  if (!runs || !runs.length) {
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
    view.replaceChildren(data ? drawRun(data) : el('p', {}, 'No curvecast data in this run.'));
  };
  select.addEventListener('change', show);
  reload.addEventListener('click', show);
  // TensorBoard's own reload does not reach a plugin's iframe: a live run is redrawn every 30 s while in view.
  setInterval(() => { if (!document.hidden) show(); }, 30000);
  await show();
}

async function getJson(url) {
  const response = await fetch(url);
  return response.ok ? response.json() : null;
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
  return section;
}

function summaryText(data) {
  const f = data.forecast;
  if (!f) return 'No forecast yet.';
  const pct = Math.round(100 * f.interval);
  let text = `At step ${f.step}: ${data.monitor} at step ${f.horizon} forecast ${fmt(f.final)}` +
    ` (${pct}%: ${fmt(f.final_lo)} to ${fmt(f.final_hi)})`;
  if (f.target !== null) {
    text += `; target ${fmt(f.target)}`;
    if (f.reached_at !== null) text += `, reached at step ${f.reached_at}`;
    else if (f.step_to_target !== null) text += `, forecast to be reached near step ${Math.round(f.step_to_target)}`;
    if (f.prob_target !== null) text += `, P(reached at the horizon) = ${Math.round(100 * f.prob_target)}%`;
  }
  if (data.stops.length) text += `; stopped early at step ${data.stops[data.stops.length - 1].step}`;
  return text + '.';
}

// -- charts -------------------------------------------------------------------------------------------------------

function mainChart(data) {
  const f = data.forecast;
  const obs = data.observed;
  const curve = f ? f.curve.steps.map((s, i) => [s, f.curve.mean[i], f.curve.lo?.[i], f.curve.hi?.[i]]) : [];
  const ys = obs.map((p) => p[1]);
  // A spike would flatten the curve: the scale leaves out the steps of anomalies (their markers sit on the edge).
  const marked = new Set(data.anomalies.map((a) => a.step));
  const calm = obs.filter((p) => !marked.has(p[0])).map((p) => p[1]);
  const top = Math.max(quantile(calm.length ? calm : ys, 1), ...curve.map((c) => c[3] ?? c[1]).filter(finite),
    f?.target ?? -Infinity);
  const bottom = Math.min(...ys, ...curve.map((c) => c[2] ?? c[1]).filter(finite), f?.target ?? Infinity);
  const xMax = Math.max(f ? f.horizon : 0, ...obs.map((p) => p[0]), 1);
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
  if (f) c.vline(f.horizon, 'cc-horizon', '#bbb', `horizon ${f.horizon}`);
  if (f && f.target !== null) c.hline(f.target, 'cc-target', COLORS.target, `target ${fmt(f.target)}`);
  for (const stop of data.stops) c.vline(stop.step, 'cc-stop', COLORS.stop, 'stop', stop.message);
  for (const a of data.anomalies) {
    const value = nearest(obs, a.step);
    if (value === null) continue;
    c.marker(a.step, value, 'cc-anomaly', SEVERITY[a.severity] || '#000',
      `step ${a.step} · ${a.severity} · ${a.kind}: ${a.message}`);
  }
  const legend = [['observed', COLORS.observed]];
  if (curve.length > 1) legend.push(['forecast (dashed) and its band', COLORS.forecast]);
  if (f && f.target !== null) legend.push(['target', COLORS.target]);
  if (data.anomalies.length) legend.push(['anomaly (hover for its message)', SEVERITY.warning]);
  if (data.stops.length) legend.push(['early stop', COLORS.stop]);
  return c.legend(legend);
}

function finalChart(data, f) {
  const h = data.final_history;
  const pts = h.final;
  if (!pts.length) return el('p', {class: 'cc-none'}, 'No forecast yet.');
  const lo = new Map(h.final_lo.map((p) => [p[0], p[1]]));
  const hi = new Map(h.final_hi.map((p) => [p[0], p[1]]));
  const ys = [...pts.map((p) => p[1]), ...lo.values(), ...hi.values()];
  if (f && f.target !== null) ys.push(f.target);
  const c = chart(Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]), 1), Math.min(...ys),
    Math.max(...ys), 200, 'cc-final-chart');
  const band = pts.filter((p) => lo.has(p[0]) && hi.has(p[0]));
  if (band.length > 1) {
    const outline = [...band.map((p) => [p[0], hi.get(p[0])]), ...band.slice().reverse().map((p) => [p[0], lo.get(p[0])])];
    c.path(outline, 'cc-final-band', {fill: COLORS.forecast, 'fill-opacity': 0.18, stroke: 'none'}, true);
  }
  c.path(pts, 'cc-final', {stroke: COLORS.forecast, 'stroke-width': 1.5});
  for (const p of pts) c.marker(p[0], p[1], 'cc-final-point', COLORS.forecast, `forecast at step ${p[0]}: ${fmt(p[1])}`, 2.5);
  if (f && f.target !== null) c.hline(f.target, 'cc-target', COLORS.target, `target ${fmt(f.target)}`);
  const pct = f ? Math.round(100 * f.interval) : 80;
  const legend = [[`forecast of the final value, ${pct}% interval`, COLORS.forecast]];
  return c.legend(f && f.target !== null ? [...legend, ['target', COLORS.target]] : legend);
}

function lrChart(data) {
  const planned = data.planned_lr ? data.planned_lr.steps.map((s, i) => [s, data.planned_lr.lrs[i]])
    .filter((p) => finite(p[1])) : [];
  const all = [...data.lr, ...planned];
  if (!all.length) return el('p', {class: 'cc-none'}, 'The LR was not recorded.');
  const ys = all.map((p) => p[1]);
  const c = chart(0, Math.max(...all.map((p) => p[0]), 1), Math.min(0, ...ys), Math.max(...ys), 160, 'cc-lr-chart');
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
  if (!(y1 > y0)) { const pad = Math.abs(y0) * 0.05 || 1; y0 -= pad; y1 += pad; }
  const pad = (y1 - y0) * 0.05;
  y0 -= pad; y1 += pad;
  if (!(x1 > x0)) x1 = x0 + 1;
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

function finite(v) {
  return typeof v === 'number' && Number.isFinite(v);
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
