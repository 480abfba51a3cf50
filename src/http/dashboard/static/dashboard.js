/* global document, fetch, setTimeout, crypto, FormData */
// The dashboard's client: polls /dashboard/state and redraws. No framework, no build step.
// Order ids come from clients: they are only ever set as text, never as HTML.

const pollMs = 500;
const $ = (id) => document.getElementById(id);

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function renderPool(pool) {
  $('pool-in-use').textContent = String(pool.in_use);
  $('pool-size').textContent = String(pool.size);
  $('pool-waiting').textContent = String(pool.waiting);
  const slots = $('pool-slots');
  slots.replaceChildren();
  // Draw at most 100 slots; a larger pool is still reported by the numbers above.
  for (let i = 0; i < Math.min(pool.size, 100); i++) {
    slots.append(element('span', i < pool.in_use ? 'slot busy' : 'slot'));
  }
  for (let i = 0; i < Math.min(pool.waiting, 100); i++)
    slots.append(element('span', 'slot queued'));
}

function renderOutcomes(byKind) {
  const list = $('outcomes');
  list.replaceChildren();
  const kinds = Object.keys(byKind).sort();
  if (kinds.length === 0) list.append(element('li', 'muted', 'no orders yet'));
  for (const kind of kinds) {
    const item = element('li');
    item.append(
      element('span', kind === 'ok' ? '' : 'kind', `${kind} `),
      element('b', '', String(byKind[kind])),
    );
    list.append(item);
  }
}

function renderTimeline(orders) {
  const timeline = $('timeline');
  timeline.replaceChildren();
  if (orders.length === 0) {
    timeline.append(element('p', 'muted', 'Send an order to see its steps here.'));
    return;
  }
  // One scale for every row, so durations compare across orders.
  const scale = Math.max(1, ...orders.map((order) => order.duration_ms));
  const pct = (ms) => `${Math.min(100, (ms / scale) * 100).toFixed(2)}%`;
  const axis = element('div', 'order-row axis');
  const ticks = element('div', 'ticks');
  ticks.append(element('span', '', '0 ms'), element('span', '', `${Math.round(scale)} ms`));
  axis.append(element('div', 'order-label muted', 'order · duration'), ticks);
  timeline.append(axis);
  for (const order of orders) {
    const row = element('div', 'order-row');
    row.dataset.orderId = order.order_id;
    row.dataset.status = order.status;
    const label = element('div', 'order-label');
    label.title = order.order_id;
    label.append(element('div', '', `${order.order_id} · ${Math.round(order.duration_ms)} ms`));
    label.append(element('div', order.kind ? 'kind' : 'ok', order.kind ?? 'ok'));
    const track = element('div', 'track');
    for (const step of order.steps) {
      const bar = element('div', 'bar');
      bar.append(element('span', 'bar-label', step.name));
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
      }
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
}

function stepChip(step) {
  const parts = [`${step.name}: ${step.compensation}`];
  const attempts = step.compensation_attempts;
  if (attempts > 0) parts.push(`${attempts} attempt${attempts === 1 ? '' : 's'}`);
  if (step.compensation_error) parts.push(step.compensation_error);
  const chip = element('span', step.needs_operator ? 'chip flagged' : 'chip', parts.join(' · '));
  chip.dataset.step = step.name;
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

function renderAttention(runs, operatorActions) {
  $('operator-note').textContent = operatorActions
    ? 'Settle a flagged compensation once you have undone it by hand.'
    : 'Operator actions are disabled: start the server with ADMIN_TOKEN to enable them.';
  $('operator-token').disabled = !operatorActions;
  const body = $('attention').querySelector('tbody');
  body.replaceChildren();
  $('attention-empty').hidden = runs.length > 0;
  $('attention').hidden = runs.length === 0;
  for (const run of runs) {
    const row = element('tr');
    row.dataset.runId = run.run_id;
    row.dataset.flagged = String(run.needs_operator);
    const undone = run.steps.filter((step) => step.compensation !== 'not_needed');
    const steps = element('td');
    for (const step of undone) steps.append(stepChip(step));
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
    const kind = run.error ? run.error.kind : 'none';
    row.append(element('td', '', run.order_id), element('td', 'kind', kind), steps, actions);
    body.append(row);
  }
}

async function poll() {
  try {
    const response = await fetch('/dashboard/state', { cache: 'no-store' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const state = await response.json();
    $('orders-rate').textContent = state.orders_per_second.toFixed(1);
    $('orders-total').textContent = String(state.orders_total);
    $('orders-in-flight').textContent = String(state.orders_in_flight);
    $('steps-in-flight').textContent = String(state.steps_in_flight);
    $('refused-overloaded').textContent = String(state.refused.overloaded);
    $('refused-shutting-down').textContent = String(state.refused.shutting_down);
    renderAttention(state.attention, state.operator_actions);
    renderPool(state.pool);
    renderOutcomes(state.by_kind);
    renderTimeline(state.timeline);
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
