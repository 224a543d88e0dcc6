"""`GET /_gateway/`: the migration at a glance, one self-contained page.

Inline CSS, JS and SVG only: it loads nothing from outside the gateway (it must work in a
private VPC), and polls `/_gateway/dashboard.json` every 1.5 s, so it is live without a reload.
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Strangler gateway: migration</title>
<link rel="icon" href="data:,">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:20px;color:#1d2330;background:#f6f7f9}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:22px 0 8px}
.muted{color:#667}.card{background:#fff;border:1px solid #dde;border-radius:6px;padding:12px}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #e4e6eb;vertical-align:top}
th{font-size:12px;text-transform:uppercase;color:#556;background:#eef0f4}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.stage{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;color:#fff}
.legacy{background:#7a7f8c}.shadow{background:#6c5ce7}.canary{background:#e17f0e}
.new{background:#1f9d55}.retired{background:#2d6cdf}
.bar{display:flex;height:8px;width:160px;border-radius:4px;overflow:hidden;background:#eee}
.steps span{display:inline-block;margin-right:4px;padding:0 5px;border:1px solid #ccd;
border-radius:3px;font-size:12px}.steps span.cur{background:#1d2330;color:#fff}
.steps span.done{background:#dfe8dd}.bad{color:#c0392b;font-weight:600}
#stamp{float:right}
</style></head><body>
<h1>Migration <span id="stamp" class="muted">loading...</span></h1>
<div class="muted" id="source"></div>
<h2>Routes</h2>
<table><thead><tr><th>Route</th><th>Stage</th><th>Weights</th><th>Target</th>
<th>req/s</th><th>5xx</th><th>p99</th><th>Parity</th><th>Rollout</th></tr></thead>
<tbody id="routes"></tbody></table>
<h2>Burn-down <span class="muted">(routes off the legacy per day, from the ledger)</span></h2>
<div class="card"><svg id="chart" width="640" height="200" role="img"></svg></div>
<script>
"use strict";
const COLORS = ["#7a7f8c", "#e17f0e", "#1f9d55", "#2d6cdf", "#6c5ce7", "#c0392b"];
function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}
function ms(s) { return s === null || s === undefined ? "-" :
  (s < 1 ? (s * 1000).toPrecision(3) + " ms" : s.toPrecision(3) + " s"); }
function pct(x) { return (Math.round(x * 1000) / 10) + "%"; }
function weightsBar(targets) {
  const bar = el("div", {class: "bar"});
  Object.entries(targets).forEach(([name, t], i) => {
    if (t.weight) bar.appendChild(el("div", {title: name + " " + t.weight + "%",
      style: "width:" + t.weight + "%;background:" + COLORS[i % COLORS.length]}));
  });
  return bar;
}
function rolloutCell(r) {
  const cell = el("td", {class: "steps"});
  if (!r) { cell.textContent = "-"; return cell; }
  r.steps.forEach((s, i) => {
    const n = i + 1;
    const cls = r.step === n ? "cur" : (r.step && n < r.step ? "done" : "");
    cell.appendChild(el("span", {class: cls, title: "step " + n}, s + "%"));
  });
  cell.appendChild(el("div", {class: "muted"}, r.status + (r.step ? " · step " + r.step : "")));
  return cell;
}
function render(data) {
  document.getElementById("source").textContent =
    data.source + " · version " + data.version;
  const body = document.getElementById("routes");
  const rows = [];
  for (const route of data.routes) {
    const names = Object.keys(route.targets);
    names.forEach((name, i) => {
      const t = route.targets[name];
      const tr = el("tr", {"data-route": route.name, "data-target": name});
      if (i === 0) {
        const first = el("td", {rowspan: names.length});
        first.appendChild(el("strong", {}, route.name));
        first.appendChild(el("div", {class: "muted"}, route.path));
        tr.appendChild(first);
        const st = el("td", {rowspan: names.length});
        st.appendChild(el("span", {class: "stage " + route.stage, "data-stage": route.stage},
          route.stage));
        tr.appendChild(st);
        const w = el("td", {rowspan: names.length});
        w.appendChild(weightsBar(route.targets));
        tr.appendChild(w);
      }
      tr.appendChild(el("td", {}, name + (t.weight === null ? "" : " " + t.weight + "%")));
      tr.appendChild(el("td", {class: "n"}, t.rps.toFixed(2)));
      tr.appendChild(el("td", {class: "n" + (t.error_rate > 0.01 ? " bad" : "")},
        pct(t.error_rate)));
      tr.appendChild(el("td", {class: "n"}, ms(t.p99)));
      if (i === 0) {
        const p = route.parity;
        tr.appendChild(el("td", {rowspan: names.length}, p ? (p.score === null ? "-" :
          p.score + "%") + (p.top_difference ? " · " + p.top_difference : "") : "-"));
        const roll = rolloutCell(route.rollout);
        roll.setAttribute("rowspan", names.length);
        tr.appendChild(roll);
      }
      rows.push(tr);
    });
  }
  body.replaceChildren(...rows);
  chart(data.history);
  document.getElementById("stamp").textContent =
    "updated " + new Date().toISOString().slice(11, 19) + " UTC";
}
function chart(days) {
  const svg = document.getElementById("chart");
  const NS = "http://www.w3.org/2000/svg";
  const kids = [];
  const add = (tag, attrs, text) => { const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text; kids.push(n); };
  if (!days.length) { add("text", {x: 20, y: 100, fill: "#667"}, "no move in the ledger yet"); }
  const top = Math.max(1, ...days.map(d => d.routes_off_legacy));
  const step = days.length > 1 ? 560 / (days.length - 1) : 0;
  let path = "";
  days.forEach((d, i) => {
    const x = 50 + i * step, y = 170 - 140 * d.routes_off_legacy / top;
    path += (i ? " L" : "M") + x + " " + y;
    add("circle", {cx: x, cy: y, r: 4, fill: "#1f9d55"});
    add("text", {x: x, y: 190, "font-size": 11, "text-anchor": "middle", fill: "#556"},
      d.day.slice(5));
    add("text", {x: x, y: y - 8, "font-size": 11, "text-anchor": "middle"},
      String(d.routes_off_legacy));
  });
  if (path) add("path", {d: path, fill: "none", stroke: "#1f9d55", "stroke-width": 2});
  add("line", {x1: 40, y1: 172, x2: 620, y2: 172, stroke: "#99a"});
  svg.replaceChildren(...kids);
}
async function poll() {
  try {
    const answer = await fetch("dashboard.json", {cache: "no-store"});
    if (answer.ok) render(await answer.json());
    else document.getElementById("stamp").textContent = "the gateway answered " + answer.status;
  } catch (e) {
    document.getElementById("stamp").textContent = "cannot reach the gateway";
  }
  setTimeout(poll, 1500);
}
poll();
</script></body></html>
"""
