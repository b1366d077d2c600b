// Sluice console: a single-page app over the admin listener's JSON (/v1/status, /v1/topics,
// /v1/groups, /v1/messages) and /metrics. No libraries, no build step; every value from the
// broker reaches the page through textContent, never as HTML.
"use strict";

// How often live views poll, and how many points a chart keeps (10 minutes at 2 s).
const POLL_MS = 2000;
const HISTORY_POINTS = 300;

const app = document.getElementById("app");
let pageTimer = null;

// ---- small helpers -------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

async function getJson(url) {
  const r = await fetch(url, { cache: "no-store" });
  const body = await r.json().catch(() => ({ error: "HTTP " + r.status }));
  if (!r.ok) throw new Error(body.error || "HTTP " + r.status);
  return body;
}

// A console write; the custom header is what the broker checks (a cross-site page cannot send it).
async function send(method, url) {
  const r = await fetch(url, { method, headers: { "X-Sluice-Console": "1" } });
  const body = await r.json().catch(() => ({ error: "HTTP " + r.status }));
  if (!r.ok) throw new Error(body.error || "HTTP " + r.status);
  return body;
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? Math.round(n) : n.toFixed(1)) + " " + units[i];
}

function table(headers, rows, numeric) {
  numeric = numeric || [];
  return h("table", {},
    h("thead", {}, h("tr", {}, headers.map((t, i) => h("th", numeric.includes(i) ? { class: "num" } : {}, t)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c, i) => h("td", numeric.includes(i) ? { class: "num" } : {}, c))))));
}

function card(label, value, id) {
  return h("div", { class: "card" }, h("div", { class: "label" }, label), h("div", { class: "value", id: id || "" }, value));
}

function showError(e) {
  app.append(h("div", { class: "error", id: "error" }, String(e.message || e)));
  app.dataset.loaded = "true";
}

function begin(page, title) {
  if (pageTimer) { clearInterval(pageTimer); pageTimer = null; }
  app.replaceChildren(h("h1", {}, title));
  app.dataset.page = page;
  app.dataset.loaded = "false";
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.nav === page);
}

function done() { app.dataset.loaded = "true"; }

// ---- /metrics: parsing, windowed rates and percentiles --------------------------------------

function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const l of (m[3] || "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    samples.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return samples;
}

function sumOf(samples, name, match) {
  let total = 0;
  for (const s of samples) {
    if (s.name !== name) continue;
    if (match && Object.entries(match).some(([k, v]) => s.labels[k] !== v)) continue;
    total += s.value;
  }
  return total;
}

// Cumulative bucket counts by upper bound, summed over every other label.
function buckets(samples, name, match) {
  const byLe = new Map();
  for (const s of samples) {
    if (s.name !== name) continue;
    if (match && Object.entries(match).some(([k, v]) => s.labels[k] !== v)) continue;
    const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
    byLe.set(le, (byLe.get(le) || 0) + s.value);
  }
  return [...byLe.entries()].sort((a, b) => a[0] - b[0]);
}

// The q-quantile (upper bucket bound, seconds) of what was observed between two scrapes.
function windowQuantile(before, after, q) {
  if (!before) return null;
  const prev = new Map(before);
  const deltas = after.map(([le, c]) => [le, c - (prev.get(le) || 0)]);
  const total = deltas.length ? deltas[deltas.length - 1][1] : 0;
  if (total <= 0) return null;
  for (const [le, c] of deltas) if (c >= q * total) return Number.isFinite(le) ? le : null;
  return null;
}

const history = { t: [], bytesIn: [], bytesOut: [], recordsIn: [], produceP99: [], fetchP99: [], fsyncP99: [] };
let lastScrape = null;

async function scrapeMetrics() {
  const r = await fetch("/metrics", { cache: "no-store" });
  if (!r.ok) return;
  const samples = parseMetrics(await r.text());
  const now = performance.now() / 1000;
  const cur = {
    t: now,
    bytesIn: sumOf(samples, "sluice_partition_bytes_in_total"),
    bytesOut: sumOf(samples, "sluice_partition_bytes_out_total"),
    recordsIn: sumOf(samples, "sluice_partition_records_in_total"),
    produce: buckets(samples, "sluice_request_duration_seconds_bucket", { api: "Produce", stage: "total" }),
    fetchB: buckets(samples, "sluice_request_duration_seconds_bucket", { api: "Fetch", stage: "total" }),
    fsync: buckets(samples, "sluice_fsync_duration_seconds_bucket"),
  };
  if (lastScrape && cur.t > lastScrape.t) {
    const dt = cur.t - lastScrape.t;
    const rate = (a, b) => Math.max(0, (a - b) / dt);
    push("bytesIn", rate(cur.bytesIn, lastScrape.bytesIn));
    push("bytesOut", rate(cur.bytesOut, lastScrape.bytesOut));
    push("recordsIn", rate(cur.recordsIn, lastScrape.recordsIn));
    const ms = (v) => (v === null ? null : v * 1000);
    push("produceP99", ms(windowQuantile(lastScrape.produce, cur.produce, 0.99)));
    push("fetchP99", ms(windowQuantile(lastScrape.fetchB, cur.fetchB, 0.99)));
    push("fsyncP99", ms(windowQuantile(lastScrape.fsync, cur.fsync, 0.99)));
    history.t.push(cur.t);
    if (history.t.length > HISTORY_POINTS) for (const k of Object.keys(history)) history[k].shift();
  }
  lastScrape = cur;
}

function push(key, value) { history[key].push(value); }

// ---- a plain <canvas> line chart ------------------------------------------------------------

const COLORS = ["#1f6feb", "#d97706", "#059669", "#9333ea"];

function lineChart(title, series, unit) {
  const canvas = h("canvas", { width: 560, height: 180 });
  const legend = h("div", { class: "legend" });
  const box = h("div", { class: "chart" }, h("div", { class: "title" }, title), canvas, legend);
  box.redraw = () => {
    const ctx = canvas.getContext("2d");
    const W = canvas.width, H = canvas.height, pad = 36;
    ctx.clearRect(0, 0, W, H);
    const all = series.flatMap((s) => history[s.key].filter((v) => v !== null));
    // A floor per unit keeps an idle chart's axis readable (0 to 1 KiB/s, 1 rec/s, 1 ms).
    const max = Math.max(unit === "B/s" ? 1024 : 1, ...all) * 1.1;
    ctx.strokeStyle = "#d9dee6"; ctx.fillStyle = "#6b7585"; ctx.font = "11px sans-serif";
    for (let i = 0; i <= 4; i++) {
      const y = H - 18 - ((H - 28) * i) / 4;
      ctx.beginPath(); ctx.moveTo(pad, y); ctx.lineTo(W - 4, y); ctx.stroke();
      ctx.fillText(fmt(max * i / 4, unit), 2, y + 4);
    }
    const n = history.t.length;
    legend.replaceChildren();
    series.forEach((s, idx) => {
      const color = COLORS[idx % COLORS.length];
      const values = history[s.key];
      ctx.strokeStyle = color; ctx.lineWidth = 1.5; ctx.beginPath();
      let started = false;
      values.forEach((v, i) => {
        if (v === null) { started = false; return; }
        const x = pad + ((W - pad - 4) * i) / Math.max(1, HISTORY_POINTS - 1);
        const y = H - 18 - ((H - 28) * v) / max;
        if (started) ctx.lineTo(x, y); else { ctx.moveTo(x, y); started = true; }
      });
      ctx.stroke();
      const last = n ? values[n - 1] : null;
      legend.append(h("span", { style: "color:" + color }, "■ " + s.label + ": " + (last === null || last === undefined ? "–" : fmt(last, unit))));
    });
  };
  box.redraw();
  return box;
}

function fmt(v, unit) {
  if (unit === "B/s") return bytes(v) + "/s";
  if (unit === "ms") return v.toFixed(v < 10 ? 2 : 0) + " ms";
  return (v < 10 ? v.toFixed(1) : Math.round(v)) + " " + unit;
}

// ---- pages ----------------------------------------------------------------------------------

async function overview() {
  begin("overview", "Overview");
  const [status, topics] = await Promise.all([getJson("/v1/status"), getJson("/v1/topics")]);
  // From the metadata (the console API waits longer for a busy shard than /v1/status does).
  const partitions = topics.topics.reduce((n, t) => n + t.partition_count, 0);
  const size = topics.topics.reduce((n, t) => n + t.size_bytes, 0);
  const offline = topics.topics.reduce((n, t) => n + t.offline_partitions, 0);
  app.append(
    h("div", { class: "cards" },
      card("Brokers", "1", "brokers"),
      card("Shards", status.shards.length, "shard-count"),
      card("Topics", topics.total, "topic-count"),
      card("Partitions", partitions, "partition-count"),
      card("Offline partitions", offline, "offline-count"),
      card("Stored", bytes(size), "stored-bytes"),
      card("Uptime", Math.round(status.uptime_seconds) + " s"),
      card("I/O driver", status.io_driver || "–")),
    h("h2", {}, "Live traffic"));
  const charts = [
    lineChart("Throughput", [{ key: "bytesIn", label: "in" }, { key: "bytesOut", label: "out" }], "B/s"),
    lineChart("Records produced", [{ key: "recordsIn", label: "records/s" }], "rec/s"),
    lineChart("Latency p99 (per 2 s window)", [
      { key: "produceP99", label: "Produce" }, { key: "fetchP99", label: "Fetch" }, { key: "fsyncP99", label: "fsync" }], "ms"),
  ];
  app.append(h("div", { class: "charts", id: "charts" }, charts));
  app.append(h("h2", {}, "Broker 0 shards"), table(
    ["Shard", "Core", "Connections", "Partitions", "Stored"],
    status.shards.map((s) => [s.shard, s.core, s.connections, s.partitions.length,
      bytes(s.partitions.reduce((n, p) => n + p.size_bytes, 0))]),
    [0, 1, 2, 3, 4]));
  pageTimer = setInterval(() => { for (const c of charts) c.redraw(); }, POLL_MS);
  done();
}

async function topicList() {
  begin("topics", "Topics");
  const data = await getJson("/v1/topics");
  app.append(table(
    ["Topic", "Partitions", "Offline", "Records (sum of end offsets)", "Size", ""],
    data.topics.map((t) => [
      h("a", { href: "#/topics/" + encodeURIComponent(t.name), class: "topic-link" }, t.name),
      t.partition_count, t.offline_partitions ? h("span", { class: "bad" }, t.offline_partitions) : 0,
      t.end_offset_total, bytes(t.size_bytes),
      h("a", { href: "#/messages?topic=" + encodeURIComponent(t.name) + "&partition=0&offset=0" }, "browse")]),
    [1, 2, 3, 4]));
  if (data.total > data.topics.length) app.append(h("p", { class: "muted" }, "Showing " + data.topics.length + " of " + data.total + " topics."));
  if (!data.read_only) {
    const form = h("form", { class: "seek", id: "create-topic", onsubmit: async (e) => {
      e.preventDefault();
      const name = form.name.value.trim(), partitions = form.partitions.value;
      if (!name || !confirm("Create topic " + name + " with " + partitions + " partitions?")) return;
      try {
        await send("POST", "/v1/topics?" + new URLSearchParams({ name, partitions }).toString());
        location.hash = "#/topics/" + encodeURIComponent(name);
      } catch (err) { showError(err); }
    } },
    h("label", {}, "New topic", h("input", { name: "name", required: "required" })),
    h("label", {}, "Partitions", h("input", { name: "partitions", type: "number", min: 1, max: 1000, value: "1" })),
    h("button", { type: "submit" }, "Create"));
    app.append(h("h2", {}, "Create a topic"), form);
  }
  done();
}

async function topicDetail(name) {
  begin("topic", "Topic " + name);
  const t = await getJson("/v1/topics/" + encodeURIComponent(name));
  app.append(h("div", { class: "cards" },
    card("Partitions", t.partition_count, "topic-partitions"),
    card("Size", bytes(t.size_bytes), "topic-size"),
    card("Offline", t.offline_partitions, "topic-offline"),
    card("Id", t.id)));
  app.append(h("h2", {}, "Partitions"), table(
    ["Partition", "Shard", "Start offset", "End offset", "Size", "State", ""],
    t.partitions.map((p) => [p.partition, p.shard, p.start_offset,
      h("span", { class: "end-offset", "data-partition": p.partition }, p.end_offset),
      bytes(p.size_bytes),
      p.offline ? h("span", { class: "bad", title: p.offline_reason || "" }, "offline") : "online",
      h("a", { href: "#/messages?topic=" + encodeURIComponent(t.name) + "&partition=" + p.partition + "&offset=" + p.start_offset }, "browse")]),
    [0, 1, 2, 3, 4]));
  if (t.partitions_truncated) app.append(h("p", { class: "muted" }, "Partition list cut at the console's limit."));
  const overrides = Object.entries(t.overrides || {});
  app.append(h("h2", {}, "Configs set on this topic"),
    overrides.length ? table(["Key", "Value"], overrides) : h("p", { class: "muted" }, "None: broker defaults apply."));
  app.append(h("h2", {}, "Effective configuration"),
    table(["Setting", "Value"], Object.entries(t.effective_config || {}).map(([k, v]) => [k, JSON.stringify(v)])));
  if (!t.read_only) {
    // One topic config at a time, through the IncrementalAlterConfigs path (same validation).
    const key = h("input", { id: "config-key", placeholder: "config, e.g. retention.ms" });
    const value = h("input", { id: "config-value", placeholder: "value" });
    const alter = async (params, question) => {
      if (!key.value || !confirm(question)) return;
      try {
        await send("POST", "/v1/topics/" + encodeURIComponent(t.name) + "/configs?key=" +
          encodeURIComponent(key.value) + params);
        route();
      } catch (err) { showError(err); }
    };
    app.append(h("h2", {}, "Alter a config"), h("div", { id: "alter-config" }, key, value,
      h("button", { id: "set-config", onclick: () => alter("&value=" + encodeURIComponent(value.value),
        "Set " + key.value + "=" + value.value + " on " + t.name + "?") }, "Set"),
      h("button", { id: "reset-config", onclick: () => alter("&delete=true",
        "Remove the override of " + key.value + " on " + t.name + " (the broker default applies)?") }, "Reset to default")));
    app.append(h("h2", {}, "Danger zone"), h("button", { id: "delete-topic", class: "danger", onclick: async () => {
      // Deleting loses the data: the operator types the name to confirm.
      if (prompt("Delete topic " + t.name + " and all its records? Type its name to confirm.") !== t.name) return;
      try {
        await send("DELETE", "/v1/topics/" + encodeURIComponent(t.name));
        location.hash = "#/topics";
      } catch (err) { showError(err); }
    } }, "Delete topic " + t.name));
  }
  done();
}

const lagHistory = new Map();

async function groupList(selected) {
  begin(selected ? "group" : "groups", selected ? "Consumer group " + selected : "Consumer groups");
  const body = h("div", { id: "groups-body" });
  app.append(body);
  const render = async () => {
    const data = await getJson("/v1/groups");
    for (const g of data.groups) {
      const points = lagHistory.get(g.group_id) || [];
      points.push(g.total_lag);
      if (points.length > HISTORY_POINTS) points.shift();
      lagHistory.set(g.group_id, points);
    }
    const shown = selected ? data.groups.filter((g) => g.group_id === selected) : data.groups;
    const parts = [];
    if (selected && !shown.length) parts.push(h("div", { class: "error" }, "No group " + selected));
    if (!selected) {
      parts.push(shown.length ? table(["Group", "State", "Type", "Members", "Total lag"],
        shown.map((g) => [h("a", { href: "#/groups/" + encodeURIComponent(g.group_id), class: "group-link" }, g.group_id),
          g.state, g.type, g.members.length, g.total_lag]), [3, 4])
        : h("p", { class: "muted" }, "No consumer groups yet."));
    }
    for (const g of selected ? shown : []) {
      parts.push(h("div", { class: "cards" },
        card("State", g.state, "group-state"), card("Members", g.members.length, "group-members"),
        card("Total lag", g.total_lag, "group-lag"), card("Protocol", g.protocol_type || "–")));
      parts.push(h("h2", {}, "Lag over time"), sparkline(lagHistory.get(g.group_id) || []));
      parts.push(h("h2", {}, "Members"), g.members.length ? table(["Member", "Client", "Host", "Assignment"],
        g.members.map((m) => [m.member_id, m.client_id, m.host,
          Object.entries(m.assignment).map(([t, ps]) => t + ": " + ps.join(",")).join("; ")]))
        : h("p", { class: "muted" }, "No members."));
      parts.push(h("h2", {}, "Committed offsets"), table(["Topic", "Partition", "Committed", "End offset", "Lag"],
        g.offsets.map((o) => [o.topic, o.partition, o.committed_offset, o.end_offset ?? "–", o.lag ?? "–"]), [1, 2, 3, 4]));
    }
    body.replaceChildren(...parts);
  };
  await render();
  pageTimer = setInterval(() => render().catch(() => {}), POLL_MS);
  done();
}

function sparkline(values) {
  const W = 560, H = 80;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", W); svg.setAttribute("height", H); svg.setAttribute("class", "chart");
  const max = Math.max(1, ...values);
  const pts = values.map((v, i) => (4 + (i * (W - 8)) / Math.max(1, HISTORY_POINTS - 1)) + "," + (H - 4 - ((H - 8) * v) / max)).join(" ");
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", pts); line.setAttribute("fill", "none"); line.setAttribute("stroke", "#1f6feb");
  svg.append(line);
  return svg;
}

function showBytes(v) {
  if (v === null) return h("span", { class: "muted" }, "null");
  if (v.hex !== undefined) return h("pre", { class: "hex", title: "not UTF-8: shown as hex" }, "hex " + v.hex);
  try {
    const parsed = JSON.parse(v.text);
    if (parsed !== null && typeof parsed === "object") return h("pre", { class: "json" }, JSON.stringify(parsed, null, 2));
  } catch (_) { /* not JSON: plain text */ }
  return h("pre", {}, v.text);
}

async function messages(params) {
  begin("messages", "Message browser");
  const topics = await getJson("/v1/topics");
  const topic = params.get("topic") || (topics.topics[0] && topics.topics[0].name) || "";
  const form = h("form", { class: "seek", onsubmit: (e) => {
    e.preventDefault();
    const q = new URLSearchParams({ topic: form.topic.value, partition: form.partition.value });
    if (form.mode.value === "timestamp") q.set("timestamp", String(Date.parse(form.at.value) || 0));
    else q.set("offset", form.offset.value || "0");
    q.set("max_bytes", form.max_bytes.value);
    location.hash = "#/messages?" + q.toString();
  } },
  h("label", {}, "Topic", h("select", { name: "topic" }, topics.topics.map((t) => {
    const o = h("option", { value: t.name }, t.name); if (t.name === topic) o.selected = true; return o; }))),
  h("label", {}, "Partition", h("input", { name: "partition", type: "number", min: 0, value: params.get("partition") || "0" })),
  h("label", {}, "Seek by", (() => { const s = h("select", { name: "mode" }, h("option", { value: "offset" }, "offset"), h("option", { value: "timestamp" }, "timestamp"));
    s.value = params.has("timestamp") ? "timestamp" : "offset"; return s; })()),
  h("label", {}, "Offset", h("input", { name: "offset", type: "number", min: 0, value: params.get("offset") || "0" })),
  h("label", {}, "Timestamp (local)", h("input", { name: "at", type: "datetime-local", step: 1 })),
  h("label", {}, "Max bytes per page", h("input", { name: "max_bytes", type: "number", min: 1, max: 1048576, value: params.get("max_bytes") || "65536" })),
  h("button", { type: "submit" }, "Seek"));
  app.append(form);
  if (!topic) { app.append(h("p", { class: "muted" }, "No topics yet.")); done(); return; }
  const q = new URLSearchParams({ topic, partition: params.get("partition") || "0" });
  for (const k of ["offset", "timestamp", "max_bytes"]) if (params.has(k)) q.set(k, params.get(k));
  const page = await getJson("/v1/messages?" + q.toString());
  app.append(h("p", { class: "muted", id: "page-range" },
    "Partition " + page.partition + ": offsets " + page.start_offset + " to " + page.end_offset +
    "; this page from " + page.seek_offset + ", " + page.records.length + " records."));
  app.append(table(["Offset", "Timestamp", "Key", "Value", "Headers"],
    page.records.map((r) => [h("span", { class: "offset" }, r.offset), new Date(r.timestamp).toISOString(),
      h("div", { class: "key" }, showBytes(r.key)), h("div", { class: "value" }, showBytes(r.value)),
      h("div", { class: "headers" }, r.headers.map((x) => h("div", {}, x.key + ": ", showBytes(x.value))))]), [0]));
  if (page.next_offset < page.end_offset) {
    const next = new URLSearchParams(q); next.delete("timestamp"); next.set("offset", String(page.next_offset));
    app.append(h("a", { href: "#/messages?" + next.toString(), id: "next-page" }, "Next page from offset " + page.next_offset + " →"));
  }
  done();
}

// ---- routing --------------------------------------------------------------------------------

async function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  try {
    if (parts[0] === "topics" && parts[1]) await topicDetail(parts[1]);
    else if (parts[0] === "topics") await topicList();
    else if (parts[0] === "groups") await groupList(parts[1]);
    else if (parts[0] === "messages") await messages(new URLSearchParams(query || ""));
    else await overview();
  } catch (e) {
    showError(e);
  }
}

async function brokerLine() {
  const status = await getJson("/v1/status");
  document.getElementById("broker-line").textContent =
    "v" + status.version + " · node " + status.node_id + " · " + (status.io_driver || "starting");
}

window.addEventListener("hashchange", route);
brokerLine().catch(() => {});
scrapeMetrics().catch(() => {});
setInterval(() => scrapeMetrics().catch(() => {}), POLL_MS);
route();
