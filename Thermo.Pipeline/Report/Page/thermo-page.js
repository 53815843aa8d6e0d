// Thermo's interactive page: one drawing code for two sources of data.
//   static: thermo report inlines the data as JSON in a script element with id thermo-data: {"runs":[…],"windows":{…}}
//   live:   thermo watch serves this page at /?token=T and the JSON API under /api (docs/guide/watch.md)
// Plain ES2020, no build step; the charts are Apache ECharts (the global `echarts`).
'use strict';
(() => {
  const PALETTE = ['#3366cc', '#dc3912', '#ff9900', '#109618', '#990099', '#0099c6', '#dd4477', '#66aa00', '#b82e2e', '#316395',
    '#994499', '#22aa99', '#aaaa11', '#6633cc', '#e67300', '#8b0707', '#651067', '#329262', '#5574a6', '#3b3eac'];
  const LAYER_DASH = ['solid', 'dashed', 'dotted', [8, 3, 2, 3], [2, 6]];
  const REDRAW_MS = 500;            // at most two redraws a second, however fast epochs arrive
  const TOOLTIP_ROWS = 12;          // series listed in an axis tooltip; the rest are counted

  const $ = id => document.getElementById(id);
  const finite = v => typeof v === 'number' && Number.isFinite(v);
  const positive = v => finite(v) && v > 0 ? v : null;   // a log axis cannot show 0, negatives or non-finite values
  const fmt = v => !finite(v) ? '—' : (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e4)) ? v.toExponential(3) : +v.toPrecision(4) + '';
  const fmtAxis = v => !finite(v) ? '' : (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e4)) ? v.toExponential(2).replace(/\.?0+e/, 'e') : +v.toPrecision(3) + '';
  const escapeHtml = s => String(s).replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

  // ---------------------------------------------------------------- sources of data
  /** The static source: everything inlined by thermo report; windows other than the analysed one from T(e). */
  function staticSource(data) {
    const runs = data.runs || [];
    return {
      mode: 'static',
      title: data.title,
      async list() {
        return runs.map(r => ({ id: r.id, name: r.name, status: r.status || 'ok', message: r.message ?? null, last_epoch: r.last_epoch, complete: true }));
      },
      async run(id) { return runs.find(r => r.id === id); },
      async window(id, from, to, layer) {
        const w = (data.windows || {})[id];
        if (w && w.from === from && w.to === to && w.layers && w.layers[layer]) return w.layers[layer];
        const run = runs.find(r => r.id === id);
        const derived = windowFromSeries(run, from, to, layer);
        const analysed = w && w.layers && w.layers[layer];
        if (analysed && analysed.msd) derived.msd = Object.assign({}, analysed.msd, { from: w.from, to: w.to });
        return derived;
      },
      analysedWindow(id) { const w = (data.windows || {})[id]; return w ? { from: w.from, to: w.to } : null; },
      subscribe() { },
    };
  }

  /** The live source: thermo watch's JSON API, the token from ?token= sent as X-Thermo-Token; new epochs by server-sent events. */
  function liveSource(token) {
    const headers = token ? { 'X-Thermo-Token': token } : {};
    const get = async url => {
      const response = await fetch(url, { headers, cache: 'no-store' });
      const body = await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }));
      if (!response.ok) throw new Error(body.error || `${url}: ${response.status}`);
      return body;
    };
    const q = encodeURIComponent;
    return {
      mode: 'live',
      async list() { return (await get('api/runs')).runs; },
      async run(id, since) { return get(`api/runs/${q(id)}` + (since != null ? `?since=${q(since)}` : '')); },
      async window(id, from, to, layer) { return get(`api/runs/${q(id)}/window?from=${q(from)}&to=${q(to)}&layer=${q(layer)}`); },
      analysedWindow() { return null; },
      subscribe(onEpoch, onTrouble) {
        if (typeof EventSource !== 'function') return;
        const events = new EventSource('api/events' + (token ? `?token=${q(token)}` : ''));
        events.addEventListener('epoch', e => { try { onEpoch(JSON.parse(e.data)); } catch (_) { /* a malformed event is ignored */ } });
        events.onerror = () => onTrouble();
      },
    };
  }

  /**
   * A window's payload from the per-epoch series alone (static mode, a window other than the analysed one):
   * T is the Δt-weighted mean of T(e) over the window's velocities (those ending at from+1..to); drift and oscillation need the
   * weights themselves, so they are null, and there is no MSD.
   */
  function windowFromSeries(run, from, to, layer) {
    // The window's T is the mean of T(e) over its velocities weighted by each one's interval Δt, as
    // thermo analyze takes it (on an evenly spaced series, the plain mean); without Δt (a payload
    // from an older table), the plain mean.
    const mean = (epochs, values, dts) => {
      let sum = 0, weight = 0;
      for (let i = 0; i < epochs.length; i++)
        if (epochs[i] > from && epochs[i] <= to && finite(values[i])) { const w = dts ? dts[i] : 1; sum += w * values[i]; weight += w; }
      return weight ? sum / weight : null;
    };
    const layers = {};
    for (const [name, s] of Object.entries(run.layer_temperature || {})) layers[name] = { t: mean(s.epoch, s.t, s.dt), drift: null, osc: null };
    const units = {};
    const u = (run.unit_temperature || {})[layer];
    if (u) {
      const count = run.units[layer] || (u.t[0] || []).length;
      const t = Array.from({ length: count }, (_, k) => mean(u.epoch, u.t.map(row => row[k]), u.dt));
      const order = t.map((v, k) => k).sort((a, b) => (t[b] ?? -Infinity) - (t[a] ?? -Infinity));
      const rank = new Array(count); order.forEach((k, r) => { rank[k] = r + 1; });
      units[layer] = { t, drift: t.map(() => null), osc: t.map(() => null), rank };
    }
    return { from, to, layers, units, msd: null, derived: true };
  }

  // ---------------------------------------------------------------- state
  const state = {
    source: null,
    runs: [],                 // {id, name, status, message, last_epoch, complete, payload, visible, colour}
    layer: '',                // T(e) chart: '' = every layer
    heatRun: null, heatLayer: null,
    window: null,             // {from, to}
    windowAuto: true,         // follows the default (the last half of the epochs) until the user sets one
    windows: new Map(),       // run id → {key, payload | error}
    charts: {},
  };

  function mergePayload(run, p) {
    if (!run.payload) { run.payload = p; return; }
    const old = run.payload;
    const append = (a, b) => { if (b && b.length) a.push(...b); };
    old.last_epoch = Math.max(old.last_epoch ?? 0, p.last_epoch ?? 0);
    old.layers = p.layers && p.layers.length ? p.layers : old.layers;
    old.units = Object.assign(old.units || {}, p.units || {});
    for (const [k, v] of Object.entries(p.metrics || {})) { old.metrics[k] = old.metrics[k] || []; append(old.metrics[k], v); }
    if (p.source_metrics) {
      const o = old.source_metrics || (old.source_metrics = { time_unit: p.source_metrics.time_unit, time: [], columns: {} });
      append(o.time, p.source_metrics.time);
      for (const [k, v] of Object.entries(p.source_metrics.columns || {})) { o.columns[k] = o.columns[k] || []; append(o.columns[k], v); }
    }
    for (const group of ['layer_temperature', 'unit_temperature']) {
      old[group] = old[group] || {};
      for (const [layer, s] of Object.entries(p[group] || {})) {
        const o = old[group][layer] || (old[group][layer] = { epoch: [], t: [] });
        append(o.epoch, s.epoch); append(o.t, s.t);
      }
    }
  }

  const okRuns = () => state.runs.filter(r => r.status === 'ok' && r.payload);
  const shownRuns = () => okRuns().filter(r => r.visible);
  /** The last time of the runs shown (or of every run when none is) of one unit: epochs and steps are not compared. */
  const lastTime = unit => {
    const of = runs => runs.filter(r => unitOf(r) === unit);
    const shown = of(shownRuns()).length ? of(shownRuns()) : of(okRuns());
    return shown.reduce((m, r) => Math.max(m, r.payload.last_epoch ?? r.last_epoch ?? 0), 0);
  };
  const allLayers = () => { const s = new Set(); for (const r of okRuns()) for (const l of r.payload.layers || []) s.add(l); return [...s]; };
  const unitLayers = run => run ? Object.keys(run.payload.unit_temperature || {}) : [];

  // ---------------------------------------------------------------- redraws, throttled
  let lastDraw = -Infinity, timer = null;
  function schedule() {
    if (timer) return;
    timer = setTimeout(() => { timer = null; lastDraw = performance.now(); draw(); }, Math.max(0, lastDraw + REDRAW_MS - performance.now()));
  }

  function chart(id) {
    if (!state.charts[id]) state.charts[id] = echarts.init($(id), null, { renderer: 'canvas' });
    return state.charts[id];
  }

  // Every chart's common parts: integer epoch axes, zoom and pan (wheel, drag, slider), hover read-outs.
  // The runs' time unit. Runs of both units on one page share the axis: it then names both, and each
  // run's series carry its unit, so that a step is never read as an epoch.
  const unitOf = r => r.payload.time_unit || 'epoch';
  const runUnits = () => [...new Set(okRuns().map(unitOf))];
  const mixedUnits = () => runUnits().length > 1;
  const timeUnit = () => mixedUnits() ? 'epoch or step' : runUnits()[0] || 'epoch';
  const runLabel = r => mixedUnits() ? `${r.name} (${unitOf(r)}s)` : r.name;
  // A window is a span of one unit: the unit of the first run shown. Runs of the other unit have no
  // window until only they are shown.
  const windowUnit = () => { const r = shownRuns()[0] || okRuns()[0]; return r ? unitOf(r) : 'epoch'; };
  const epochAxis = extra => Object.assign({ type: 'value', name: timeUnit(), nameLocation: 'middle', nameGap: 26, minInterval: 1, scale: true,
    axisLabel: { formatter: v => Number.isInteger(v) ? String(v) : '' } }, extra);
  const zoom = (axes = { xAxisIndex: 0 }) => [Object.assign({ type: 'inside', filterMode: 'none' }, axes), Object.assign({ type: 'slider', height: 16, bottom: 4, filterMode: 'none' }, axes)];
  const grid = extra => Object.assign({ left: 76, right: 18, top: 52, bottom: 62, containLabel: false }, extra);
  const valueName = name => ({ name, nameLocation: 'middle', nameGap: 58, nameTextStyle: { fontSize: 11 } });
  const legend = () => ({ type: 'scroll', top: 24, left: 8, right: 8, textStyle: { fontSize: 11 }, itemHeight: 8 });
  const title = text => ({ text, left: 8, top: 2, textStyle: { fontSize: 13, fontWeight: 'normal' } });

  /** Axis tooltip: the series under the pointer, largest value first, capped so that 20 runs stay readable. */
  function axisTooltip(unit) {
    // Runs by epoch and by step share no time: read out the point under the pointer, not every
    // series at one x (each series' nearest point would be another time in another unit).
    if (mixedUnits())
      return { trigger: 'item', className: 'thermo-tooltip', confine: true,
        formatter: p => `${escapeHtml(p.seriesName)}<br>at ${escapeHtml(String(p.value[0]))}: <b>${fmt(p.value[1])}</b>` };
    return {
      trigger: 'axis', className: 'thermo-tooltip', confine: true, axisPointer: { type: 'line' },
      formatter: params => {
        if (!params.length) return '';
        const x = params[0].axisValue;
        const rows = params.map(p => ({ name: p.seriesName, colour: p.color, v: Array.isArray(p.value) ? p.value[1] : p.value }))
          .filter(r => finite(r.v)).sort((a, b) => b.v - a.v);
        const shown = rows.slice(0, TOOLTIP_ROWS).map(r => `<span style="color:${r.colour}">●</span> ${escapeHtml(r.name)}: <b>${fmt(r.v)}</b>`);
        if (rows.length > TOOLTIP_ROWS) shown.push(`<span class="more">… ${rows.length - TOOLTIP_ROWS} more</span>`);
        return `${escapeHtml(unit)} ${escapeHtml(x)}<br>` + (shown.join('<br>') || 'no value');
      },
    };
  }

  function setChart(id, option) {
    // replaceMerge keeps each chart's zoom while its series come and go
    chart(id).setOption(Object.assign({ animation: false }, option), { replaceMerge: ['series', 'xAxis', 'yAxis'] });
  }

  // ---------------------------------------------------------------- the charts
  /**
   * An imported run's training curves: each column its source logged (source_metrics) against its time,
   * the losses in the first chart, the other quantities in the second, each of those on its own y axis
   * (an accuracy and a learning rate differ by orders of magnitude).
   */
  function sourceSeries(r, losses, axisOf) {
    const m = r.payload.source_metrics;
    if (!m) return [];
    const single = okRuns().length === 1;
    return Object.entries(m.columns || {}).filter(([name]) => /loss/i.test(name) === losses).map(([name, values], k) => ({
      name: single ? name : `${runLabel(r)} ${name}`, type: 'line', showSymbol: values.length < 60, symbolSize: 4, connectNulls: true,
      color: single ? PALETTE[(losses ? k : k + 2) % PALETTE.length] : r.colour, yAxisIndex: losses ? 0 : axisOf(name),
      lineStyle: { width: 1.5, type: single ? 'solid' : LAYER_DASH[k % LAYER_DASH.length] },
      data: m.time.map((t, i) => [t, finite(values[i]) ? values[i] : null]) }));
  }

  function drawTraining() {
    const imported = okRuns().filter(r => r.payload.source);
    const notes = imported.filter(r => r.payload.training_note).map(r => `${r.name}: ${r.payload.training_note}`);
    const note = $('training-note');
    note.textContent = notes.join(' · ');
    note.hidden = notes.length === 0;
    // every run imported and none with curves: no training panel, only the line saying why
    $('training-charts').hidden = imported.length === okRuns().length && notes.length === okRuns().length && okRuns().length > 0;
    const others = [...new Set(imported.flatMap(r => Object.keys(r.payload.source_metrics?.columns || {}).filter(n => !/loss/i.test(n))))];
    const axisOf = name => Math.min(others.indexOf(name), 1);
    const trainedShown = shownRuns().some(r => !r.payload.source);
    for (const [id, kind, label] of [['chart-loss', 'loss', 'Loss'], ['chart-accuracy', 'accuracy', 'Accuracy']]) {
      const series = [];
      const losses = kind === 'loss';
      for (const r of shownRuns()) {
        if (r.payload.source) { series.push(...sourceSeries(r, losses, axisOf)); continue; }
        const m = r.payload.metrics || {};
        for (const split of ['train', 'test']) {
          const values = m[`${split}_${kind}`] || [];
          series.push({ name: `${runLabel(r)} ${split}`, type: 'line', showSymbol: false, symbolSize: 4, color: r.colour,
            lineStyle: { width: 1.5, type: split === 'test' ? 'dashed' : 'solid' },
            data: (m.epoch || []).map((e, i) => [e, finite(values[i]) ? values[i] : null]) });
        }
      }
      if (!imported.length) {
        setChart(id, {
          title: title(`${label} per epoch (train solid, test dashed)`), legend: legend(), grid: grid(), tooltip: axisTooltip(timeUnit()), dataZoom: zoom(),
          xAxis: epochAxis(), yAxis: Object.assign({ type: 'value', scale: true }, valueName(kind)), series,
        });
        continue;
      }
      // imported runs: what each source logged, by name; beside trained runs, their train and test curves too
      const named = losses ? 'Losses' : 'Other quantities';
      const text = `${named} the source${imported.length > 1 ? 's' : ''} logged, per ${timeUnit()}` + (trainedShown ? ` (trained runs: ${kind}, train solid, test dashed)` : '');
      const axes = losses || others.length < 2
        ? [Object.assign({ type: 'value', scale: true }, valueName(losses ? 'loss' : others[0] || kind))]
        : [Object.assign({ type: 'value', scale: true }, valueName(others[0])),
           { type: 'value', scale: true, name: others.slice(1).join(', '), nameLocation: 'middle', nameGap: 52, nameTextStyle: { fontSize: 11 },
             position: 'right', axisLabel: { formatter: fmtAxis }, splitLine: { show: false } }];
      setChart(id, {
        title: title(text), legend: legend(), grid: grid(axes.length > 1 ? { right: 70 } : undefined), tooltip: axisTooltip(timeUnit()), dataZoom: zoom(),
        xAxis: epochAxis(), yAxis: axes, series,
      });
    }
  }

  function drawTemperature() {
    const runs = shownRuns();
    const layers = state.layer ? [state.layer] : allLayers();
    const byLayer = okRuns().length === 1;   // one run: a colour per layer; several: a colour per run, a dash per layer
    const series = [];
    for (const r of runs) {
      layers.forEach((layer, li) => {
        const s = (r.payload.layer_temperature || {})[layer];
        if (!s) return;
        const colour = byLayer ? PALETTE[li % PALETTE.length] : r.colour;
        series.push({ name: byLayer ? layer : `${runLabel(r)} ${layer}`, type: 'line', showSymbol: s.epoch.length < 60, symbolSize: 4, color: colour,
          lineStyle: { width: 1.5, type: byLayer ? 'solid' : LAYER_DASH[li % LAYER_DASH.length] },
          data: s.epoch.map((e, i) => [e, positive(s.t[i])]) });
      });
    }
    if (series.length && state.window) {
      series[0].markArea = { silent: true, itemStyle: { color: 'rgba(120,120,120,0.10)' }, data: [[{ xAxis: state.window.from }, { xAxis: state.window.to }]] };
    }
    setChart('chart-temperature', {
      title: title(`Instantaneous temperature T(e) per ${timeUnit()} (log scale; the window shaded)`), legend: legend(), grid: grid(),
      tooltip: axisTooltip(timeUnit()), dataZoom: zoom(), xAxis: epochAxis(),
      yAxis: Object.assign({ type: 'log', axisLabel: { formatter: fmtAxis } }, valueName('T(e), log scale')), series,
    });
  }

  function drawWindow() {
    const layers = allLayers();
    const series = [];
    let derived = false, missing = [];
    const parts = [];
    for (const r of shownRuns()) {
      const w = state.windows.get(r.id);
      if (!w || !w.payload) { if (w && w.error) missing.push(`${r.name}: ${w.error}`); continue; }
      derived = derived || !!w.payload.derived;
      for (const [part, opacity] of [['t', 1], ['drift', 0.6], ['osc', 0.3]])
        parts.push({ name: `${runLabel(r)} ${part === 't' ? 'T' : part === 'drift' ? 'T_drift' : 'T_osc'}`, colour: r.colour, opacity,
          values: layers.map(l => positive(((w.payload.layers || {})[l] || {})[part])) });
    }
    const logs = parts.flatMap(p => p.values.filter(v => v !== null).map(Math.log10));
    const base = logs.length ? Math.floor(Math.min(...logs) - 0.25) : 0;
    const top = logs.length ? Math.ceil(Math.max(...logs)) - base : 1;
    for (const p of parts)
      series.push({ name: p.name, type: 'bar', color: p.colour, itemStyle: { opacity: p.opacity }, barMaxWidth: 18,
        data: p.values.map(v => v === null ? { value: null, real: null } : { value: Math.log10(v) - base, real: v }) });
    const w = state.window;
    $('window-note').textContent = [
      derived ? 'T from T(e) over this window; drift and oscillation need the weights (shown for the analysed window, or live with thermo watch)' : '',
      ...missing].filter(Boolean).join(' · ');
    setChart('chart-window', {
      title: title(w ? `T (solid), drift (mid), oscillation (pale) over ${w.unit}s ${w.from}..${w.to}, log scale` : 'Window'),
      legend: legend(), grid: grid({ bottom: 40 }), dataZoom: [{ type: 'inside', yAxisIndex: 0, filterMode: 'none' }],
      tooltip: { trigger: 'axis', className: 'thermo-tooltip', confine: true, axisPointer: { type: 'shadow' },
        formatter: params => `layer ${escapeHtml(params[0]?.axisValue ?? '')}<br>` + params.map(p => `<span style="color:${p.color}">●</span> ${escapeHtml(p.seriesName)}: <b>${fmt(p.data?.real)}</b>`).join('<br>') },
      xAxis: { type: 'category', data: layers },
      yAxis: Object.assign({ type: 'value', min: 0, max: top, interval: top >= 2 ? 1 : undefined, axisLabel: { formatter: v => fmtAxis(Math.pow(10, v + base)) } }, valueName('T, log scale')), series,
    });
  }

  function drawMsd() {
    const series = [];
    const layer = state.heatLayer;
    for (const r of shownRuns()) {
      const m = state.windows.get(r.id)?.payload?.msd;
      if (!m || !m.lag) continue;
      // mixed units: runLabel already names the unit
      const over = m.from == null ? '' : mixedUnits() ? ` (${m.from}..${m.to})` : ` (${unitOf(r)}s ${m.from}..${m.to})`;
      const alpha = finite(m.alpha) ? ` α = ${m.alpha.toFixed(2)}` + (finite(m.r2) ? ` (R² ${m.r2.toFixed(3)})` : '') : '';
      series.push({ name: `${runLabel(r)} ${m.layer}${alpha}${over}`, type: 'line', color: r.colour, showSymbol: true, symbolSize: 4,
        data: m.lag.map((l, i) => [positive(l), positive(m.msd[i])]).filter(p => p[0] !== null) });
    }
    if (series.length) {
      // guides ∝ τ (diffusive) and ∝ τ² (ballistic) through the first point of the first curve
      const first = series[0].data.find(p => p[1] !== null), last = series[0].data[series[0].data.length - 1];
      if (first && last && last[0] > first[0]) {
        for (const [power, name] of [[1, '∝ τ (diffusive)'], [2, '∝ τ² (ballistic)']])
          series.push({ name, type: 'line', showSymbol: false, silent: true, color: '#888', lineStyle: { type: power === 1 ? 'dotted' : 'dashed', width: 1 },
            data: [first, [last[0], first[1] * Math.pow(last[0] / first[0], power)]] });
      }
    }
    setChart('chart-msd', {
      title: title(`MSD against lag${layer ? ` of ${layer}` : ''} (log–log; mean over its units)`), legend: legend(), grid: grid(),
      tooltip: { trigger: 'item', className: 'thermo-tooltip', confine: true, formatter: p => `${escapeHtml(p.seriesName)}<br>lag ${fmt(p.value[0])}: MSD <b>${fmt(p.value[1])}</b>` },
      dataZoom: [{ type: 'inside', xAxisIndex: 0, filterMode: 'none' }, { type: 'inside', yAxisIndex: 0, filterMode: 'none' }],
      xAxis: { type: 'log', name: 'lag τ', nameLocation: 'middle', nameGap: 26, axisLabel: { formatter: fmtAxis } },
      yAxis: Object.assign({ type: 'log', axisLabel: { formatter: fmtAxis } }, valueName('MSD, log scale')), series,
    });
  }

  function drawHeat() {
    const run = okRuns().find(r => r.id === state.heatRun);
    const layer = state.heatLayer;
    const s = run && layer ? (run.payload.unit_temperature || {})[layer] : null;
    const data = [];
    let lo = Infinity, hi = -Infinity;
    const epochs = s ? s.epoch : [];
    const count = s ? (run.payload.units[layer] || (s.t[0] || []).length) : 0;
    if (s) s.t.forEach((row, i) => row.forEach((v, k) => {
      const p = positive(v);
      const lg = p === null ? null : Math.log10(p);
      if (lg !== null) { lo = Math.min(lo, lg); hi = Math.max(hi, lg); }
      data.push([i, k, lg]);
    }));
    if (!(hi >= lo)) { lo = 0; hi = 1; }
    setChart('chart-heat', {
      title: title(s ? `${run.name}: T(e) of each unit of ${layer} (log₁₀ colour)` : 'Per-unit temperature (no per-unit series)'),
      grid: grid({ left: 50, right: 70, top: 36 }),
      tooltip: { trigger: 'item', className: 'thermo-tooltip', confine: true,
        formatter: p => `${escapeHtml(unitOf(run))} ${epochs[p.value[0]]}, unit ${p.value[1]}<br>T(e) <b>${p.value[2] === null ? '—' : fmt(Math.pow(10, p.value[2]))}</b>` },
      dataZoom: [{ type: 'inside', xAxisIndex: 0 }, { type: 'slider', xAxisIndex: 0, height: 16, bottom: 4 }, { type: 'inside', yAxisIndex: 0 }],
      xAxis: { type: 'category', data: epochs.map(String), name: run ? unitOf(run) : timeUnit(), nameLocation: 'middle', nameGap: 26 },
      yAxis: Object.assign({ type: 'category', data: Array.from({ length: count }, (_, k) => String(k)) }, valueName('unit'), { nameGap: 30 }),
      visualMap: { type: 'continuous', min: lo, max: hi, calculable: true, right: 4, top: 'middle', itemHeight: 200,
        text: ['hot', 'cold'], formatter: v => fmt(Math.pow(10, v)), inRange: { color: ['#313695', '#4575b4', '#74add1', '#abd9e9', '#fee090', '#fdae61', '#f46d43', '#d73027', '#a50026'] } },
      series: [{ type: 'heatmap', name: layer || '', data, progressive: 0 }],
    });
  }

  function drawRanking() {
    const run = okRuns().find(r => r.id === state.heatRun);
    const layer = state.heatLayer;
    const body = $('ranking').querySelector('tbody');
    const rows = [];
    let caption = 'Hottest first';
    const w = run ? state.windows.get(run.id)?.payload : null;
    const u = w && w.units ? w.units[layer] : null;
    if (u && u.t) {
      caption = `${run.name}, ${layer}: hottest first over ${unitOf(run)}s ${w.from}..${w.to}`;
      u.t.forEach((t, k) => rows.push({ unit: k, t, drift: u.drift?.[k], osc: u.osc?.[k], rank: u.rank?.[k] }));
    } else if (run && layer && run.payload.unit_temperature?.[layer]?.t.length) {
      const s = run.payload.unit_temperature[layer];
      const i = s.t.length - 1;
      caption = `${run.name}, ${layer}: hottest first at ${unitOf(run)} ${s.epoch[i]}`;
      s.t[i].forEach((t, k) => rows.push({ unit: k, t, drift: null, osc: null }));
    }
    rows.sort((a, b) => (a.rank != null && b.rank != null) ? a.rank - b.rank : (finite(b.t) ? b.t : -Infinity) - (finite(a.t) ? a.t : -Infinity));
    $('ranking-title').textContent = caption;
    body.innerHTML = rows.map((r, i) => `<tr><td>${r.rank ?? i + 1}</td><td>${r.unit}</td><td>${fmt(r.t)}</td><td>${fmt(r.drift)}</td><td>${fmt(r.osc)}</td></tr>`).join('');
  }

  /** Words that name the time: "epoch" for Thermo's runs, "step" for a series imported by step. */
  function drawTimeNames() {
    const unit = timeUnit();
    $('epoch-label').textContent = `last ${windowUnit()}`;   // the count is of the window's unit
    const [from, to] = document.querySelectorAll('.time-name');
    // the window's fields in the unit a window is taken in (the first run shown)
    if (from) from.textContent = `from ${windowUnit()}`;
    if (to) to.textContent = `to ${windowUnit()}`;
    $('temperature-heading').textContent = `Temperature per ${unit}`;
    for (const e of document.querySelectorAll('[aria-label]')) {
      const original = e.dataset.ariaLabel || (e.dataset.ariaLabel = e.getAttribute('aria-label'));
      e.setAttribute('aria-label', original.replace(/\b(per|by) epoch\b/g, `$1 ${unit}`));
    }
  }

  function drawSources() {
    const imported = okRuns().filter(r => r.payload.source);
    const list = $('sources');
    list.hidden = imported.length === 0;
    list.innerHTML = imported.map(r => `<li data-run="${escapeHtml(r.id)}">${escapeHtml(r.name)}: ${escapeHtml(r.payload.source.description)}</li>`).join('');
  }

  function drawControls() {
    drawTimeNames();
    drawSources();
    $('epoch-count').textContent = String(lastTime(windowUnit()));
    // run toggles: one colour and one checkbox each; a broken run shows its message instead
    const box = $('runs');
    for (const r of state.runs) {
      let label = box.querySelector(`label[data-run="${CSS.escape(r.id)}"]`);
      if (!label) {
        label = document.createElement('label');
        label.dataset.run = r.id;
        label.innerHTML = `<input type="checkbox"><span class="swatch"></span><span class="name"></span><span class="state"></span>`;
        label.querySelector('input').addEventListener('change', e => { r.visible = e.target.checked; refreshWindows(); schedule(); });
        box.appendChild(label);
      }
      const input = label.querySelector('input');
      input.checked = r.visible; input.disabled = r.status !== 'ok'; input.dataset.run = r.id;
      label.querySelector('.swatch').style.background = r.colour;
      label.querySelector('.name').textContent = r.name;
      label.querySelector('.name').className = 'name' + (r.status !== 'ok' ? ' broken' : '');
      label.querySelector('.state').textContent = r.status !== 'ok' ? '(error)' : state.source.mode === 'live' ? (r.complete ? `(${r.last_epoch}, complete)` : `(${r.last_epoch}, running)`) : '';
    }
    $('run-errors').innerHTML = state.runs.filter(r => r.status !== 'ok')
      .map(r => `<li class="run-error" data-run="${escapeHtml(r.id)}">${escapeHtml(r.name)}: ${escapeHtml(r.message || 'could not be read')}</li>`).join('');

    fillSelect($('layer-select'), [['', 'every layer'], ...allLayers().map(l => [l, l])], state.layer);
    fillSelect($('heat-run'), okRuns().map(r => [r.id, r.name]), state.heatRun);
    const run = okRuns().find(r => r.id === state.heatRun);
    fillSelect($('heat-layer'), unitLayers(run).map(l => [l, l]), state.heatLayer);
    const w = state.window;
    if (w && document.activeElement !== $('window-from') && document.activeElement !== $('window-to')) {
      $('window-from').value = w.from; $('window-to').value = w.to;
    }
  }

  function fillSelect(select, options, value) {
    const key = JSON.stringify(options);
    if (select.dataset.key !== key) {
      select.dataset.key = key;
      select.innerHTML = options.map(([v, text]) => `<option value="${escapeHtml(v)}">${escapeHtml(text)}</option>`).join('');
    }
    if (value != null) select.value = value;
  }

  function draw() {
    ensureSelections();
    drawControls();
    for (const f of [drawTraining, drawTemperature, drawWindow, drawMsd, drawHeat, drawRanking]) {
      try { f(); } catch (e) { console.warn(`thermo page: ${f.name}: ${e}`); }
    }
  }

  function ensureSelections() {
    const ok = okRuns();
    if (!ok.find(r => r.id === state.heatRun)) state.heatRun = (shownRuns()[0] || ok[0])?.id ?? null;
    const run = ok.find(r => r.id === state.heatRun);
    const layers = unitLayers(run);
    if (!layers.includes(state.heatLayer)) state.heatLayer = layers[0] ?? allLayers()[0] ?? null;
    if (state.layer && !allLayers().includes(state.layer)) state.layer = '';
    if (state.windowAuto) {
      const w = defaultWindow();
      if (w && (!state.window || w.from !== state.window.from || w.to !== state.window.to || w.unit !== state.window.unit)) { state.window = w; refreshWindows(); }
    }
  }

  /** The default window, in `windowUnit`: the analysed one in a static report, else the last half of the epochs (or steps). */
  function defaultWindow() {
    const unit = windowUnit();
    const runs = okRuns().filter(r => unitOf(r) === unit);
    for (const r of runs) { const a = state.source.analysedWindow(r.id); if (a) return Object.assign(a, { unit }); }
    const last = lastTime(unit);
    if (last < 2) return null;
    // from the first snapshot at or after the middle: on an unevenly spaced series the middle may be none
    const times = runs.length ? snapshotTimes(runs[0]) : null;
    const from = times ? Math.min(...[...times].filter(t => t >= Math.floor(last / 2))) : Math.floor(last / 2);
    return from < last ? { from, to: last, unit } : null;
  }

  /**
   * The times of a run's snapshots as its T(e) series tells them (each velocity's end, and its start
   * e − Δt where the payload has Δt, else the run's first snapshot), or null without a series. A
   * window's ends must be among them, as `thermo analyze` requires: an interval that starts before a
   * window is not in it.
   */
  function snapshotTimes(r) {
    const s = Object.values(r.payload.layer_temperature || {}).find(x => x.epoch && x.epoch.length);
    if (!s) return null;
    const times = new Set(s.epoch);
    if (s.dt) s.epoch.forEach((e, i) => times.add(e - s.dt[i]));
    else times.add(r.payload.source?.first ?? 0);
    return times;
  }

  // ---------------------------------------------------------------- windows
  let windowFetches = 0;
  function refreshWindows() {
    const w = state.window;
    if (!w || !state.heatLayer) return;
    for (const r of shownRuns()) {
      const key = `${w.from}:${w.to}:${w.unit}:${state.heatLayer}`;
      const have = state.windows.get(r.id);
      if (have && have.key === key) continue;
      if (have && have.loading === key) continue;
      if (unitOf(r) !== w.unit) { state.windows.set(r.id, { key, error: `by ${unitOf(r)}s, the window in ${w.unit}s (show only runs by ${unitOf(r)} to choose its window)` }); continue; }
      if (w.to > (r.payload.last_epoch ?? 0) || w.from >= w.to) { state.windows.set(r.id, { key, error: `the window ${w.from}..${w.to} is not within its ${unitOf(r)}s` }); continue; }
      const times = snapshotTimes(r);
      if (times && !(times.has(w.from) && times.has(w.to))) {
        const known = [...times].sort((a, b) => a - b);
        const shown = known.length > 12 ? `${known.slice(0, 12).join(', ')}, …` : known.join(', ');
        state.windows.set(r.id, { key, error: `a window's ends are snapshots; the page has ${unitOf(r)}s ${shown}` });
        continue;
      }
      state.windows.set(r.id, Object.assign({}, have, { loading: key }));
      windowFetches++;
      state.source.window(r.id, w.from, w.to, state.heatLayer)
        .then(payload => state.windows.set(r.id, { key, payload }))
        .catch(e => state.windows.set(r.id, { key, error: e.message || String(e) }))
        .finally(() => { windowFetches--; schedule(); });
    }
  }

  function applyWindow() {
    const from = parseInt($('window-from').value, 10), to = parseInt($('window-to').value, 10);
    if (!Number.isInteger(from) || !Number.isInteger(to) || from >= to) { $('window-note').textContent = `a window is two whole ${windowUnit()}s, from < to`; return; }
    state.window = { from, to, unit: windowUnit() }; state.windowAuto = false;
    refreshWindows(); schedule();
  }

  // ---------------------------------------------------------------- loading
  async function loadRun(entry, since) {
    try {
      const p = await state.source.run(entry.id, since);
      if (!p) throw new Error('no data');
      mergePayload(entry, p);
      entry.last_epoch = entry.payload.last_epoch;
    } catch (e) {
      if (!entry.payload) { entry.status = 'error'; entry.message = e.message || String(e); }
      else console.warn(`thermo page: run ${entry.name}: ${e}`);
    }
  }

  async function loadRuns() {
    let list;
    try { list = await state.source.list(); }
    catch (e) { showNotice(`could not list the runs: ${e.message || e}`); return; }
    const fresh = [];
    for (const item of list) {
      let entry = state.runs.find(r => r.id === item.id);
      if (!entry) {
        entry = { id: item.id, name: item.name, visible: true, colour: PALETTE[state.runs.length % PALETTE.length], payload: null };
        state.runs.push(entry);
      }
      Object.assign(entry, { name: item.name, status: item.status, message: item.message, complete: item.complete });
      const known = entry.payload?.last_epoch;
      if (item.status === 'ok' && (!entry.payload || item.last_epoch > known)) fresh.push(loadRun(entry, entry.payload ? known : null));
      else if (item.status === 'ok') entry.last_epoch = item.last_epoch;
    }
    await Promise.all(fresh);
    schedule();
  }

  function showNotice(text) { const n = $('notice'); n.textContent = text; n.hidden = !text; }

  let epochQueue = Promise.resolve();
  function onEpoch(event) {
    epochQueue = epochQueue.then(async () => {
      const entry = state.runs.find(r => r.id === event.id);
      if (!entry) { await loadRuns(); return; }
      if (entry.status !== 'ok' || !entry.payload) { await loadRuns(); return; }
      if (event.last_epoch > (entry.payload.last_epoch ?? 0)) {
        await loadRun(entry, entry.payload.last_epoch);
        schedule();
      }
    });
  }

  async function start() {
    const inline = $('thermo-data');
    const token = new URLSearchParams(location.search).get('token');
    state.source = inline ? staticSource(JSON.parse(inline.textContent)) : liveSource(token);
    $('mode').textContent = state.source.mode === 'live' ? 'live' : 'static report';
    if (state.source.title) { document.title = state.source.title; $('title').textContent = state.source.title; }
    $('figures-link').hidden = state.source.mode !== 'static';
    if (typeof echarts === 'undefined') { showNotice('the charting library did not load'); return; }

    $('layer-select').addEventListener('change', e => { state.layer = e.target.value; schedule(); });
    $('heat-run').addEventListener('change', e => { state.heatRun = e.target.value; schedule(); });
    $('heat-layer').addEventListener('change', e => { state.heatLayer = e.target.value; refreshWindows(); schedule(); });
    $('window-apply').addEventListener('click', applyWindow);
    for (const id of ['window-from', 'window-to']) $(id).addEventListener('keydown', e => { if (e.key === 'Enter') applyWindow(); });
    $('window-reset').addEventListener('click', () => { state.windowAuto = true; state.window = null; schedule(); });
    window.addEventListener('resize', () => { for (const c of Object.values(state.charts)) c.resize(); });

    await loadRuns();
    ensureSelections();
    refreshWindows();
    schedule();
    if (state.source.mode === 'live') {
      state.source.subscribe(onEpoch, () => { });
      // the events are the fast path; a slow poll catches runs added or events missed while reconnecting
      setInterval(() => { epochQueue = epochQueue.then(loadRuns); }, 10000);
    }
  }

  // for tests and the curious: the page's state, read-only by convention
  window.thermoPage = { state, pendingWindows: () => windowFetches };
  start().catch(e => { showNotice(`the page failed: ${e.message || e}`); console.error(e); });
})();
