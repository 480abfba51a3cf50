/* global document, fetch, setTimeout, crypto, FormData */
// The dashboard's client: polls /dashboard/state and redraws. No framework, no build step.
// Order ids and error messages come from outside: they are only ever set as text, never as
// HTML. Every figure is computed by the server; the page only divides counts by time.

const pollMs = 500;
const svgNs = 'http://www.w3.org/2000/svg';
const $ = (id) => document.getElementById(id);

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function svgElement(tag, attributes) {
  const node = document.createElementNS(svgNs, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

/** A rate or count for a card: one decimal below 10, whole above. */
function figure(value) {
  return value < 10 ? value.toFixed(1) : String(Math.round(value));
}

function ms(value) {
  if (value >= 10_000) return `${(value / 1000).toFixed(1)} s`;
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ms`;
}

function percent(part, whole) {
  if (whole === 0) return '0 %';
  const share = (100 * part) / whole;
  return `${share > 0 && share < 0.1 ? '<0.1' : share.toFixed(share < 10 ? 1 : 0)} %`;
}

/** How long ago `iso` was, on the server's clock `now` (ms since the epoch). */
function age(iso, now) {
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 48 * 3600) return `${Math.floor(seconds / 3600)} h`;
  return `${Math.floor(seconds / 86400)} d`;
}

function sumValues(record) {
  return Object.values(record).reduce((total, count) => total + count, 0);
}

function renderCards(state) {
  const minute = state.last_minute;
  const refused = minute.refused.overloaded + minute.refused.shutting_down;
  const card = $('overload-card');
  card.dataset.overloaded = String(state.overloaded);
  $('overload').textContent = state.overloaded ? 'overloaded' : 'accepting';
  $('overload-detail').textContent =
    refused === 0
      ? 'no order refused in the last minute'
      : `${state.overloaded ? 'shedding load: ' : ''}${refused} refused in the last minute`;

  $('orders-rate').textContent = figure(state.orders_per_second);
  $('refused-rate').textContent = figure(state.refused_per_second);
  $('orders-total').textContent = String(state.orders_total);

  const settled = sumValues(minute.by_kind);
  $('minute-settled').textContent = String(settled);
  $('latency-p50').textContent = settled === 0 ? '–' : ms(minute.p50_ms);
  $('latency-p99').textContent = settled === 0 ? '–' : ms(minute.p99_ms);
  // Timeouts apart: they say the service is slow, the other errors that a step failed.
  const timeouts = minute.by_kind.timeout ?? 0;
  $('error-rate').textContent = percent(settled - (minute.by_kind.ok ?? 0) - timeouts, settled);
  $('timeout-rate').textContent = percent(timeouts, settled);

  const count = state.attention_count;
  const needing = count.flagged + count.open;
  $('attention-card').dataset.attention = String(needing);
  $('attention-card').dataset.flagged = String(count.flagged);
  $('attention-count').textContent = `${needing}${count.more ? '+' : ''}`;
  $('attention-flagged').textContent = String(count.flagged);
  $('attention-open').textContent = String(count.open);

  $('orders-in-flight').textContent = String(state.orders_in_flight);
  $('steps-in-flight').textContent = String(state.steps_in_flight);
  renderPool(state.pool);
}

function renderPool(pool) {
  $('pool-in-use').textContent = String(pool.in_use);
  $('pool-size').textContent = String(pool.size);
  $('pool-waiting').textContent = String(pool.waiting);
  const slots = $('pool-slots');
  slots.replaceChildren();
  // Draw at most 100 slots; a larger pool is still reported by the numbers below.
  for (let i = 0; i < Math.min(pool.size, 100); i++) {
    slots.append(element('span', i < pool.in_use ? 'slot busy' : 'slot'));
  }
  for (let i = 0; i < Math.min(pool.waiting, 100); i++)
    slots.append(element('span', 'slot queued'));
}

/**
 * A sparkline: one path per series of `lines` ({ name, values }, null for a gap), on a
 * shared scale from 0 to the largest value, drawn in a 300 × 80 box stretched to the width.
 */
function sparkline(container, lines, format) {
  const width = 300;
  const height = 80;
  const values = lines.flatMap((line) => line.values.filter((value) => value !== null));
  const top = Math.max(...values, 0);
  const scale = top > 0 ? top : 1;
  const count = Math.max(...lines.map((line) => line.values.length), 2);
  const x = (i) => ((i / (count - 1)) * width).toFixed(1);
  const y = (value) => (height - 2 - (value / scale) * (height - 4)).toFixed(1);
  const svg = svgElement('svg', {
    viewBox: `0 0 ${width} ${height}`,
    preserveAspectRatio: 'none',
    role: 'img',
  });
  svg.append(
    svgElement('line', { x1: 0, x2: width, y1: height - 1, y2: height - 1, class: 'base' }),
  );
  for (const line of lines) {
    let d = '';
    let drawing = false;
    line.values.forEach((value, i) => {
      if (value === null) {
        drawing = false;
        return;
      }
      d += `${drawing ? 'L' : 'M'}${x(i)} ${y(value)} `;
      drawing = true;
    });
    const path = svgElement('path', { d: d.trim() || 'M0 0', class: `line ${line.name}` });
    path.dataset.series = line.name;
    svg.append(path);
  }
  const axis = element('div', 'chart-axis');
  axis.append(
    element('span', '', '5 min ago'),
    element('span', 'chart-top', `max ${format(top)}`),
    element('span', '', 'now'),
  );
  container.replaceChildren(svg, axis);
  container.dataset.points = String(values.length);
  container.dataset.max = String(top);
}

function renderCharts(series) {
  // Rates per second over the seconds each point covers (the last one may be shorter).
  const seconds = series.points.map((_, i) => {
    const start = series.from + i * series.step_ms;
    return Math.max(1, Math.min(series.step_ms, series.to - start) / 1000);
  });
  const rate = (field) => series.points.map((point, i) => point[field] / seconds[i]);
  sparkline(
    $('throughput-chart'),
    [
      { name: 'ok', values: rate('ok') },
      { name: 'errors', values: rate('errors') },
      { name: 'timeouts', values: rate('timeouts') },
      { name: 'refused', values: rate('refused') },
    ],
    (value) => `${figure(value)}/s`,
  );
  const settled = (point) => point.ok + point.errors + point.timeouts > 0;
  sparkline(
    $('latency-chart'),
    [
      { name: 'p50', values: series.points.map((p) => (settled(p) ? p.p50_ms : null)) },
      { name: 'p99', values: series.points.map((p) => (settled(p) ? p.p99_ms : null)) },
    ],
    ms,
  );
}

/** Outcomes of the last minute: `ok` first, then timeouts, the other errors, and refusals. */
function renderKinds(state) {
  const minute = state.last_minute;
  const settled = sumValues(minute.by_kind);
  const list = $('kinds');
  list.replaceChildren();
  const group = (name, entries, total) => {
    const section = element('div', `kind-group ${name}`);
    section.dataset.group = name;
    for (const [kind, count] of entries) {
      const row = element('div', 'kind-row');
      row.dataset.kind = kind;
      const bar = element('span', 'share');
      const fill = element('span', 'share-fill');
      fill.style.width = `${total === 0 ? 0 : Math.min(100, (100 * count) / total)}%`;
      bar.append(fill);
      row.append(
        element('span', 'kind-name', kind),
        bar,
        element('b', 'kind-share', percent(count, total)),
        element('span', 'kind-count muted', String(count)),
      );
      section.append(row);
    }
    list.append(section);
  };
  if (settled === 0) list.append(element('p', 'muted', 'No order settled in the last minute.'));
  else {
    group('ok', [['ok', minute.by_kind.ok ?? 0]], settled);
    group('timeout', [['timeout', minute.by_kind.timeout ?? 0]], settled);
    const errors = Object.entries(minute.by_kind)
      .filter(([kind]) => kind !== 'ok' && kind !== 'timeout')
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    if (errors.length > 0) group('errors', errors, settled);
  }
  const refused = Object.entries(minute.refused).filter(([, count]) => count > 0);
  if (refused.length > 0) {
    // Refusals ran no step: their share is of every order that arrived.
    group('refused', refused, settled + sumValues(minute.refused));
  }
  const since = Object.entries(state.by_kind)
    .sort((a, b) => (a[0] === 'ok' ? -1 : b[0] === 'ok' ? 1 : b[1] - a[1]))
    .map(([kind, count]) => `${kind} ${count}`);
  const refusedTotal = state.refused.overloaded + state.refused.shutting_down;
  $('since-start').textContent =
    `Since start: ${since.length === 0 ? 'no order' : since.join(' · ')}` +
    ` · refused ${refusedTotal} (overloaded ${state.refused.overloaded}, shutting_down ${state.refused.shutting_down})`;
}

function renderTimeline(orders, now) {
  const timeline = $('timeline');
  timeline.replaceChildren();
  if (orders.length === 0) {
    timeline.append(element('p', 'muted', 'Send an order to see its steps here.'));
    return;
  }
  // One scale for every row, so durations compare across orders.
  const scale = Math.max(1, ...orders.map((order) => order.duration_ms));
  const pct = (value) => `${Math.min(100, (value / scale) * 100).toFixed(2)}%`;
  const axis = element('div', 'order-row axis');
  const ticks = element('div', 'ticks');
  ticks.append(element('span', '', '0 ms'), element('span', '', ms(scale)));
  axis.append(element('div', 'order-label muted', 'order · duration · ended'), ticks);
  timeline.append(axis);
  for (const order of orders) {
    const row = element('div', 'order-row');
    row.dataset.orderId = order.order_id;
    row.dataset.status = order.status;
    const label = element('div', 'order-label');
    label.title = order.order_id;
    const ended = new Date(order.started_at + order.duration_ms).toISOString();
    label.append(
      element('div', 'order-id', `${order.order_id} · ${ms(order.duration_ms)}`),
      element('div', order.kind ? 'kind' : 'ok', `${order.kind ?? 'ok'} · ${age(ended, now)} ago`),
    );
    const track = element('div', 'track');
    for (const step of order.steps) {
      const bar = element('div', 'bar');
      bar.dataset.step = step.name;
      bar.dataset.status = step.status;
      bar.style.width = pct(step.end_ms);
      bar.title = `${step.name}: ${step.status}${step.detail ? ` (${step.detail})` : ''} after ${step.end_ms.toFixed(1)} ms`;
      // A wait under a millisecond is the free-slot path: not worth drawing.
      if (step.wait_ms !== undefined && step.wait_ms >= 1 && step.end_ms > 0) {
        const wait = element('div', 'wait');
        wait.style.width = `${Math.min(100, (step.wait_ms / step.end_ms) * 100).toFixed(2)}%`;
        wait.title = `waited ${step.wait_ms.toFixed(1)} ms for a courier`;
        bar.append(wait);
        bar.title += `, ${step.wait_ms.toFixed(1)} ms of it waiting for a courier`;
      }
      // After the wait, so that the label is drawn over its hatching.
      bar.append(element('span', 'bar-label', step.name));
      track.append(bar);
    }
    if (order.canceled_at_ms !== undefined) {
      const mark = element('div', 'cancel-mark');
      mark.style.left = pct(order.canceled_at_ms);
      mark.title = `order aborted at ${order.canceled_at_ms.toFixed(1)} ms (${order.kind})`;
      track.append(mark);
    }
    row.append(label, track);
    timeline.append(row);
  }
  // A label that does not fit in its bar is written just after it, in full.
  for (const bar of timeline.querySelectorAll('.bar')) {
    const label = bar.querySelector('.bar-label');
    bar.classList.toggle('label-outside', bar.clientWidth < label.offsetWidth + 8);
  }
}

function stepChip(step, run, now) {
  const parts = [`${step.name}: ${step.compensation}`];
  const attempts = step.compensation_attempts;
  if (attempts > 0) parts.push(`${attempts} attempt${attempts === 1 ? '' : 's'}`);
  if (step.needs_operator) parts.push(`flagged ${age(run.updated_at, now)} ago`);
  const chip = element('span', step.needs_operator ? 'chip flagged' : 'chip', parts.join(' · '));
  chip.dataset.step = step.name;
  if (step.compensation_error) {
    chip.append(element('span', 'chip-error', `last error: ${step.compensation_error}`));
  }
  return chip;
}

async function settle(run, step, button) {
  const token = $('operator-token').value;
  button.disabled = true;
  const response = await fetch(
    `/admin/runs/${encodeURIComponent(run.run_id)}/compensations/${encodeURIComponent(step.name)}/settle`,
    { method: 'POST', headers: token ? { authorization: `Bearer ${token}` } : {} },
  );
  const body = await response.json();
  $('operator-result').textContent = response.ok
    ? `${run.order_id} · ${step.name}: settled`
    : `${run.order_id} · ${step.name}: ${response.status} ${body.error ? body.error.message : ''}`;
  button.disabled = false;
}

function renderAttention(state) {
  const runs = state.attention;
  const operatorActions = state.operator_actions;
  $('operator-note').textContent = operatorActions
    ? 'Settle a flagged compensation once you have undone it by hand.'
    : 'Operator actions are disabled: start the server with ADMIN_TOKEN to enable them.';
  $('operator-token').disabled = !operatorActions;
  const body = $('attention').querySelector('tbody');
  body.replaceChildren();
  $('attention-empty').hidden = runs.length > 0;
  $('attention').hidden = runs.length === 0;
  const count = state.attention_count;
  const total = count.flagged + count.open;
  $('attention-more').hidden = total <= runs.length;
  $('attention-more').textContent =
    `Showing ${runs.length} of ${total}${count.more ? '+' : ''}: the flagged first, then the oldest.`;
  for (const run of runs) {
    const row = element('tr');
    row.dataset.runId = run.run_id;
    row.dataset.flagged = String(run.needs_operator);
    const undone = run.steps.filter((step) => step.compensation !== 'not_needed');
    const steps = element('td');
    for (const step of undone) steps.append(stepChip(step, run, state.now));
    const actions = element('td');
    for (const step of undone.filter((s) => s.needs_operator)) {
      const button = element('button', 'settle', `settle ${step.name}`);
      button.type = 'button';
      button.disabled = !operatorActions;
      button.addEventListener('click', () => {
        settle(run, step, button).catch((error) => {
          $('operator-result').textContent = `failed: ${error.message}`;
          button.disabled = false;
        });
      });
      actions.append(button);
    }
    const order = element('td');
    order.append(element('div', 'order-id', run.order_id));
    if (run.finished_at) {
      order.append(element('div', 'muted age', `failed ${age(run.finished_at, state.now)} ago`));
    }
    const kind = run.error ? run.error.kind : 'none';
    row.append(order, element('td', 'kind', kind), steps, actions);
    body.append(row);
  }
}

async function poll() {
  try {
    const response = await fetch('/dashboard/state', { cache: 'no-store' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const state = await response.json();
    renderCards(state);
    renderCharts(state.series);
    renderKinds(state);
    renderAttention(state);
    renderTimeline(state.timeline, state.now);
    $('connection').textContent = 'live';
  } catch (error) {
    $('connection').textContent = `disconnected (${error.message}), retrying`;
  } finally {
    setTimeout(poll, pollMs);
  }
}

function orderFrom(form) {
  const data = new FormData(form);
  const order = { order_id: `web-${crypto.randomUUID().slice(0, 8)}`, amount: 1000 };
  const failStep = data.get('fail_step');
  if (failStep) order.fail_step = failStep;
  const delays = {};
  for (const step of ['payment', 'vendor', 'courier']) {
    const value = data.get(step);
    if (value !== null && value !== '') delays[step] = Number(value);
  }
  if (Object.keys(delays).length > 0) order.delay_ms = delays;
  return order;
}

async function send(order) {
  const response = await fetch('/order', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(order),
  });
  const body = await response.json();
  return `${order.order_id}: ${response.status} ${body.status}${body.error ? ` (${body.error.kind})` : ''}`;
}

$('order-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const count = Math.max(1, Math.min(50, Number(new FormData(form).get('count')) || 1));
  const result = $('order-result');
  result.textContent = `sending ${count}…`;
  const sends = Array.from({ length: count }, () => send(orderFrom(form)));
  Promise.all(sends).then(
    (lines) => {
      result.textContent = lines.join(' · ');
    },
    (error) => {
      result.textContent = `failed: ${error.message}`;
    },
  );
});

void poll();
