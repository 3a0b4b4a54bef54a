// The tail-sampler console: renders GET api/v1/status every two seconds and looks trace IDs up
// with GET api/v1/decisions/{trace_id}. Everything from the daemon goes into the page as text
// (textContent), never as markup.
"use strict";

const REFRESH_MS = 2000;
const TOKEN_KEY = "tail-sampler-admin-token";

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) td.appendChild(cell);
    else td.textContent = cell === null || cell === undefined ? "–" : String(cell);
    tr.appendChild(td);
  }
  return tr;
}

function percent(ratio) {
  return ratio === null || ratio === undefined ? "–" : (100 * ratio).toFixed(ratio < 0.001 && ratio > 0 ? 3 : 1) + "%";
}

function bytes(value) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return (unit ? value.toFixed(1) : String(value)) + " " + units[unit];
}

function meter(ratio) {
  const node = document.createElement("meter");
  node.min = 0; node.max = 1; node.low = 0.7; node.high = 0.9; node.optimum = 0;
  node.value = ratio || 0;
  const wrap = element("span", null, "fill");
  wrap.appendChild(node);
  wrap.appendChild(element("span", " " + percent(ratio)));
  return wrap;
}

function rate(rates) {
  // "12.5% (25 of 200)": the share, then the counts behind it.
  const cell = element("span", percent(rates.kept_ratio), "rate");
  cell.appendChild(element("small", ` ${rates.kept} of ${rates.decided}`));
  return cell;
}

function matched(rates) {
  // Sampled, or for a drop policy, vetoed.
  const cell = element("span", percent(rates.matched_ratio), "rate");
  cell.appendChild(element("small", ` ${rates.sampled + rates.dropped} of ${rates.evaluated}`));
  return cell;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function headers() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: "Bearer " + token } : {};
}

async function getJson(path) {
  const response = await fetch(path, { headers: headers(), cache: "no-store" });
  if (response.status === 401) {
    document.getElementById("auth-section").hidden = false;
  }
  let body = null;
  try { body = await response.json(); } catch (error) { body = { error: `HTTP ${response.status}` }; }
  return { status: response.status, body };
}

function renderStatus(status) {
  const totals = status.decisions["1m"];
  document.getElementById("summary").textContent =
    `${status.ready ? "ready" : "not ready"} · version ${status.version} · up ${Math.round(status.uptime_seconds)}s · ` +
    `last minute: ${totals.decided} traces decided, ${percent(totals.keep_ratio)} kept`;

  fill(document.querySelector("#policies tbody"), status.policies.map((policy) => {
    const tr = row([
      element("span", policy.name, "policy-name"),
      element("span", policy.type),
      rate(policy.rates["1m"]),
      rate(policy.rates["5m"]),
      matched(policy.rates["1m"]),
      matched(policy.rates["5m"]),
    ]);
    tr.title = policy.description;
    tr.dataset.policy = policy.name;
    return tr;
  }));
  const five = status.decisions["5m"];
  document.getElementById("totals").textContent =
    `All policies: ${percent(totals.keep_ratio)} of ${totals.decided} traces kept in the last ` +
    `${Math.round(totals.seconds)}s (${totals.traces_per_second ?? "–"} traces/s); ` +
    `${percent(five.keep_ratio)} of ${five.decided} in the last ${Math.round(five.seconds)}s.`;

  const window = status.window;
  const caches = status.decision_caches;
  fill(document.querySelector("#window tbody"), [
    row(["traces waiting", window.traces, `num_traces ${window.num_traces}`, meter(window.traces_fill)]),
    row(["memory of the window", bytes(window.memory_bytes),
      window.memory_limit_bytes ? `memory_limit_mib ${bytes(window.memory_limit_bytes)}` : "no memory_limit_mib",
      window.memory_limit_bytes ? meter(window.memory_fill) : "–"]),
    row(["spans waiting", window.spans, "", ""]),
    ...["kept", "dropped"].map((name) => row([
      `${name} decisions remembered`, caches[name].traces,
      `${caches[name].capacity} (${caches[name].entry_bytes} B each)`,
      meter(caches[name].capacity ? caches[name].traces / caches[name].capacity : 0),
    ])),
  ]);

  fill(document.querySelector("#exporters tbody"), status.exporters.map((exporter) => {
    const reasons = (counts) => Object.entries(counts).map(([reason, count]) => `${reason}: ${count}`).join(", ") || "0";
    const queue = element("span", `${exporter.queue_batches} / ${exporter.queue_capacity} `);
    queue.appendChild(meter(exporter.queue_capacity ? exporter.queue_batches / exporter.queue_capacity : 0));
    return row([
      element("span", exporter.name, "exporter-name"), queue, exporter.sent_spans,
      reasons(exporter.failed_attempts), reasons(exporter.dropped_spans),
      `${exporter.last_minute.failed_attempts} failed, ${exporter.last_minute.dropped_spans} dropped`,
    ]);
  }));

  fill(document.querySelector("#recent tbody"), status.recent_decisions.map((decision) => {
    const link = element("button", decision.trace_id, "trace-link");
    link.type = "button";
    link.addEventListener("click", () => lookUp(decision.trace_id));
    return row([
      link, element("span", decision.decision, "decision-" + decision.decision), decision.trigger,
      decision.credited_policy, decision.spans,
      decision.decided_seconds_ago === null || decision.decided_seconds_ago === undefined
        ? "before a restart" : `${decision.decided_seconds_ago.toFixed(1)}s ago`,
    ]);
  }));
}

function renderAnswer(answer) {
  const box = element("div", null, "answer decision-" + answer.decision);
  box.appendChild(element("p", `${answer.trace_id}: ${answer.decision.toUpperCase()}`, "answer-decision"));
  box.appendChild(element("p", answer.reason, "answer-reason"));
  const facts = element("dl");
  const fact = (name, value) => {
    if (value === undefined || value === null) return;
    facts.appendChild(element("dt", name));
    facts.appendChild(element("dd", value));
  };
  fact("trigger", answer.trigger);
  fact("decided", answer.decided_at && `${answer.decided_at} (${answer.decided_seconds_ago}s ago)`);
  fact("received", answer.received_at && `${answer.received_at} (${answer.received_seconds_ago}s ago)`);
  fact("due", answer.due_at && `${answer.due_at} (in ${answer.due_in_seconds}s)`);
  fact("credited policy", answer.credited_policy &&
    answer.credited_policy + (answer.credited_sub_policy ? ` (sub-policy ${answer.credited_sub_policy})` : ""));
  fact("spans", `${answer.spans} (${bytes(answer.bytes)})`);
  if (answer.decision !== "pending") fact("late spans since", answer.late_spans);
  box.appendChild(facts);
  const table = element("table", null, "answer-policies");
  const head = element("thead");
  head.appendChild(row(["policy", "answer"]));
  table.appendChild(head);
  const body = element("tbody");
  for (const [name, said] of Object.entries(answer.policies)) {
    const tr = row([name, said]);
    tr.dataset.policy = name;
    tr.dataset.answer = said;
    if (name === answer.credited_policy) tr.className = "credited";
    body.appendChild(tr);
  }
  table.appendChild(body);
  box.appendChild(table);
  return box;
}

async function lookUp(text) {
  const input = document.getElementById("trace-id");
  input.value = text;
  const result = document.getElementById("lookup-result");
  result.hidden = false;
  result.replaceChildren(element("p", "Looking up…"));
  const traceId = text.trim();
  history.replaceState(null, "", "?trace_id=" + encodeURIComponent(traceId));
  try {
    const { status, body } = await getJson("api/v1/decisions/" + encodeURIComponent(traceId));
    result.dataset.status = String(status);
    result.replaceChildren(status === 200 ? renderAnswer(body) : element("p", body.error, "error"));
  } catch (error) {
    result.dataset.status = "error";
    result.replaceChildren(element("p", "The daemon did not answer: " + error, "error"));
  }
}

async function refresh() {
  try {
    const { status, body } = await getJson("api/v1/status");
    if (status === 200) {
      renderStatus(body);
      document.body.dataset.loaded = "true";
    } else {
      document.getElementById("summary").textContent = body.error || `HTTP ${status}`;
    }
  } catch (error) {
    document.getElementById("summary").textContent = "The daemon did not answer: " + error;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("lookup-form").addEventListener("submit", (event) => {
    event.preventDefault();
    lookUp(document.getElementById("trace-id").value);
  });
  document.getElementById("auth-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value.trim());
    document.getElementById("auth-section").hidden = true;
    refresh();
  });
  const asked = new URLSearchParams(location.search).get("trace_id");
  if (asked) lookUp(asked);
  refresh();
  setInterval(refresh, REFRESH_MS);
});
