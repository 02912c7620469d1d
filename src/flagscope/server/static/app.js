// flagscope dashboard: plain DOM, no build step, no dependencies.
//
// Every string that came from telemetry (flag keys, variants, values, reasons, ids) is
// attacker-controlled: it only ever reaches the page as a text node or textContent,
// never through innerHTML, and attribute values are set with setAttribute.
"use strict";

(() => {
  const REFRESH_MS = 2000;
  const PAGE_SIZE = 50;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const NO_VARIANT = "(no variant)";
  const PALETTE = [
    "#2f6fde", "#e0793b", "#2a9d6b", "#c24a6a", "#8a63d2",
    "#c9a227", "#3aa5b9", "#7a8450", "#d05bb4", "#5d6d7e",
  ];

  const state = { flags: [], metrics: [], flag: null, offset: 0, timer: null, busy: false, again: false };

  // -- tiny DOM helpers ----------------------------------------------------------------

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (name === "className") node.className = value;
      else if (name === "title") node.title = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attributes) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      node.setAttribute(name, String(value));
    }
    return node;
  }

  const $ = (id) => document.getElementById(id);

  // -- formatting -----------------------------------------------------------------------

  function plural(count, word) {
    return `${count} ${word}${count === 1 ? "" : "s"}`;
  }

  function ago(iso) {
    if (!iso) return "–";
    const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (seconds < 60) return `${Math.round(seconds)} s ago`;
    if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
    return new Date(iso).toLocaleString();
  }

  function clock(iso) {
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleTimeString();
  }

  function valueText(value) {
    return JSON.stringify(value) ?? "null";
  }

  function percent(part, whole) {
    return whole > 0 ? `${Math.round((part * 100) / whole)}%` : "–";
  }

  function sortedCounts(counts) {
    return Object.entries(counts || {}).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  }

  // Colours follow the variant's name, so one variant keeps its colour everywhere.
  function colour(variant, names) {
    const index = names.indexOf(variant);
    return PALETTE[(index < 0 ? names.length : index) % PALETTE.length];
  }

  // -- data -------------------------------------------------------------------------------

  async function getJson(path, params) {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(params || {})) {
      if (value !== "" && value !== null && value !== undefined && value !== false) {
        query.append(name, String(value));
      }
    }
    const suffix = query.toString() ? `?${query}` : "";
    const response = await fetch(`api/${path}${suffix}`, { cache: "no-store" });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || `${response.status}`);
    return body;
  }

  function setStatus(text, failed) {
    const status = $("status");
    status.textContent = text;
    status.classList.toggle("failed", Boolean(failed));
  }

  // -- the flags table -------------------------------------------------------------------

  function splitBar(counts, total) {
    const names = sortedCounts(counts).map(([name]) => name);
    const bar = el("div", { className: "split" });
    for (const [name, count] of sortedCounts(counts)) {
      const part = el("span", { title: `${name}: ${count} (${percent(count, total)})` });
      part.style.width = `${(count * 100) / total}%`;
      part.style.background = colour(name, names.slice().sort());
      bar.append(part);
    }
    const text = sortedCounts(counts)
      .slice(0, 3)
      .map(([name, count]) => `${name} ${percent(count, total)}`)
      .join(" · ");
    return el("div", { className: "split-cell" }, bar, el("span", { className: "split-text" }, text || "–"));
  }

  function renderFlags() {
    const search = $("flag-search").value.trim().toLowerCase();
    const body = $("flags-table").querySelector("tbody");
    const rows = [];
    for (const flag of state.flags) {
      if (search && !flag.flag_key.toLowerCase().includes(search)) continue;
      const link = el("a", { href: `#/flag/${encodeURIComponent(flag.flag_key)}`, className: "flag-link" }, flag.flag_key);
      const errors = el("td", { className: "num" }, percent(flag.error_count, flag.count));
      if (flag.error_count > 0) {
        errors.classList.add("bad");
        errors.title = sortedCounts(flag.by_error_type).map(([t, c]) => `${t}: ${c}`).join(", ");
      }
      const reasons = sortedCounts(flag.by_reason).map(([r, c]) => `${r} ${percent(c, flag.count)}`).join(" · ");
      const row = el(
        "tr",
        {},
        el("td", { className: "key" }, link),
        el("td", { className: "num" }, flag.count),
        el("td", {}, splitBar(flag.by_variant, Math.max(1, Object.values(flag.by_variant).reduce((a, b) => a + b, 0)))),
        el("td", {}, reasons || "–"),
        errors,
        el("td", { className: "num" }, flag.distinct_targeting_keys),
        el("td", { title: flag.last_seen || "" }, ago(flag.last_seen)),
      );
      row.dataset.flagKey = flag.flag_key;
      rows.push(row);
    }
    body.replaceChildren(...rows);
    $("flags-empty").hidden = state.flags.length > 0;
  }

  // -- flag evaluation metrics (counters received on /v1/metrics) -------------------------

  function renderMetrics() {
    const search = $("flag-search").value.trim().toLowerCase();
    const rows = [];
    for (const flag of state.metrics) {
      if (search && !flag.flag_key.toLowerCase().includes(search)) continue;
      const reasons = sortedCounts(flag.by_reason)
        .map(([r, c]) => `${r} ${percent(c, flag.evaluations)}`)
        .join(" · ");
      const errors = el("td", { className: "num" }, flag.errors);
      if (flag.errors > 0) errors.classList.add("bad");
      const row = el(
        "tr",
        {},
        el("td", { className: "key" }, flag.flag_key),
        el("td", { className: "num" }, flag.evaluations),
        el("td", {}, splitBar(flag.by_variant, Math.max(1, flag.successes))),
        el("td", {}, reasons || "–"),
        errors,
      );
      row.dataset.flagKey = flag.flag_key;
      rows.push(row);
    }
    $("metrics-table").querySelector("tbody").replaceChildren(...rows);
    $("metrics-view").hidden = state.metrics.length === 0;
  }

  // -- the per-flag view ------------------------------------------------------------------

  function renderStats(summary) {
    const items = [
      ["evaluations", summary.count],
      ["errors", `${summary.error_count} (${percent(summary.error_count, summary.count)})`],
      ["contexts", summary.distinct_targeting_keys],
      ["traces", summary.distinct_traces],
      ["providers", sortedCounts(summary.by_provider).map(([p]) => p).join(", ") || "–"],
      ["first seen", summary.first_seen ? new Date(summary.first_seen).toLocaleString() : "–"],
      ["last seen", ago(summary.last_seen)],
    ];
    $("flag-stats").replaceChildren(
      ...items.flatMap(([term, detail]) => [el("dt", {}, term), el("dd", {}, detail)]),
    );
  }

  function renderChart(buckets, widthSeconds) {
    const chart = $("chart");
    const legend = $("legend");
    if (buckets.length === 0) {
      chart.replaceChildren(el("p", { className: "empty" }, "No evaluations in range."));
      legend.replaceChildren();
      return;
    }
    const names = new Set();
    for (const bucket of buckets) {
      const assigned = Object.values(bucket.by_variant).reduce((a, b) => a + b, 0);
      for (const name of Object.keys(bucket.by_variant)) names.add(name);
      if (assigned < bucket.count) names.add(NO_VARIANT);
    }
    // Named variants in name order (as in the flags table), "no variant" last.
    const variants = [...names].filter((name) => name !== NO_VARIANT).sort();
    if (names.has(NO_VARIANT)) variants.push(NO_VARIANT);
    const width = 800;
    const height = 180;
    const pad = { left: 40, right: 8, top: 10, bottom: 24 };
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    const max = Math.max(1, ...buckets.map((b) => b.count));
    const step = plotW / buckets.length;
    const barW = Math.max(1, step * 0.8);
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart-svg" });
    const label = svg("title");
    label.textContent = `evaluations per ${widthSeconds} s, by variant`;
    root.append(label);
    root.append(svg("line", { x1: pad.left, y1: pad.top + plotH, x2: width - pad.right, y2: pad.top + plotH, class: "axis" }));
    for (const [y, text] of [[pad.top + plotH, "0"], [pad.top, String(max)]]) {
      const tick = svg("text", { x: pad.left - 6, y: y + 4, "text-anchor": "end", class: "tick" });
      tick.textContent = text;
      root.append(tick);
    }
    buckets.forEach((bucket, index) => {
      const x = pad.left + index * step + (step - barW) / 2;
      let y = pad.top + plotH;
      const parts = { ...bucket.by_variant };
      const assigned = Object.values(parts).reduce((a, b) => a + b, 0);
      if (assigned < bucket.count) parts[NO_VARIANT] = bucket.count - assigned;
      for (const name of variants) {
        const count = parts[name] || 0;
        if (!count) continue;
        const h = (count / max) * plotH;
        y -= h;
        const rect = svg("rect", { x, y, width: barW, height: h, fill: colour(name, variants), class: "bar" });
        const tip = svg("title");
        tip.textContent = `${clock(bucket.start)}: ${name} ${count} of ${bucket.count}`;
        rect.append(tip);
        rect.dataset.variant = name;
        root.append(rect);
      }
    });
    const first = svg("text", { x: pad.left, y: height - 6, class: "tick" });
    first.textContent = clock(buckets[0].start);
    const last = svg("text", { x: width - pad.right, y: height - 6, "text-anchor": "end", class: "tick" });
    last.textContent = clock(buckets[buckets.length - 1].end);
    root.append(first, last);
    chart.replaceChildren(root);
    legend.replaceChildren(
      ...variants.map((name) => {
        const swatch = el("span", { className: "swatch" });
        swatch.style.background = colour(name, variants);
        return el("li", {}, swatch, name);
      }),
    );
  }

  function fillSelect(select, counts) {
    const current = select.value;
    const options = [el("option", { value: "" }, "any")];
    for (const [name, count] of sortedCounts(counts)) {
      const option = el("option", {}, `${name} (${count})`);
      option.value = name;
      options.push(option);
    }
    select.replaceChildren(...options);
    select.value = current;
    if (select.value !== current) select.value = "";
  }

  function eventFilters() {
    return {
      flag_key: state.flag,
      variant: $("filter-variant").value,
      reason: $("filter-reason").value,
      targeting_key: $("filter-context").value.trim(),
      trace_id: $("filter-trace").value.trim(),
      errors_only: $("filter-errors").checked ? "true" : "",
    };
  }

  function renderEvents(page) {
    const rows = page.events.map((event) => {
      const trace = event.trace_id
        ? el("a", { href: "#", className: "id", title: "show only this trace" }, event.trace_id)
        : "–";
      if (event.trace_id) {
        trace.addEventListener("click", (click) => {
          click.preventDefault();
          $("filter-trace").value = event.trace_id;
          state.offset = 0;
          refresh();
        });
      }
      const row = el(
        "tr",
        {},
        el("td", { title: event.timestamp }, clock(event.timestamp)),
        el("td", {}, event.variant ?? "–"),
        el("td", { className: "value" }, valueText(event.value)),
        el("td", {}, event.reason),
        el("td", {}, event.targeting_key ?? "–"),
        el("td", { className: event.error_type ? "bad" : "", title: event.error_message || "" }, event.error_type ?? ""),
        el("td", {}, event.service_name ?? "–"),
        el("td", {}, trace),
        el("td", { className: "id" }, event.span_id ?? "–"),
      );
      return row;
    });
    $("events-table").querySelector("tbody").replaceChildren(...rows);
    const end = Math.min(page.total, page.offset + page.events.length);
    $("page-info").textContent = page.total
      ? `${page.offset + 1}–${end} of ${page.total}, newest first`
      : "no matching evaluations";
    $("newer").disabled = page.offset === 0;
    $("older").disabled = end >= page.total;
  }

  // -- the impact panel ---------------------------------------------------------------------

  const VERDICT_WORDS = {
    baseline: "baseline",
    worse: "worse",
    better: "better",
    no_difference: "no difference",
    insufficient_data: "not enough data",
  };

  function rateText(variant) {
    if (variant.error_rate === null) return "–";
    const [low, high] = variant.error_rate_interval;
    const pct = (x) => `${(x * 100).toFixed(1)}%`;
    return `${pct(variant.error_rate)} (${pct(low)}–${pct(high)})`;
  }

  function ms(value) {
    return value === null ? "–" : value.toFixed(1);
  }

  function impactSentence(impact) {
    const judged = impact.variants.filter(
      (v) => v.verdict !== "baseline" && v.verdict !== "insufficient_data",
    );
    const worse = judged.filter((v) => v.verdict === "worse").map((v) => v.variant);
    const base = impact.baseline;
    if (worse.length) {
      return `${worse.join(", ")} ${worse.length === 1 ? "is" : "are"} hurting: requests that got ` +
        `${worse.length === 1 ? "it" : "them"} fail more often or run slower than with ${base}.`;
    }
    const better = judged.filter((v) => v.verdict === "better").map((v) => v.variant);
    if (better.length) return `${better.join(", ")} did better than ${base}; no variant is worse.`;
    return `No variant is worse than ${base}, as far as the tests can tell.`;
  }

  function renderImpact(impact) {
    const table = $("impact-table");
    const verdict = $("impact-verdict");
    const enough = impact.variants.some(
      (v) => v.verdict !== "baseline" && v.verdict !== "insufficient_data",
    );
    // Figures and verdicts only with enough data: a rate over a dozen requests misleads.
    table.hidden = !enough;
    verdict.classList.toggle("bad", enough && impact.variants.some((v) => v.verdict === "worse"));
    if (!enough) {
      const most = Math.max(0, ...impact.variants.map((v) => v.requests));
      verdict.textContent =
        `Not enough requests with a known outcome to judge the variants yet ` +
        `(${impact.min_requests} a variant needed; the most any has is ${most}).`;
      $("impact-table").querySelector("tbody").replaceChildren();
      return;
    }
    verdict.textContent = impactSentence(impact);
    const rows = impact.variants.map((v) => {
      const words = el("td", { className: `verdict verdict-${v.verdict}` }, VERDICT_WORDS[v.verdict] || v.verdict);
      if (v.verdict !== "baseline" && v.error_p_value !== null) {
        words.title = `errors p=${v.error_p_value.toExponential(2)}` +
          (v.duration_p_value === null ? "" : `, durations p=${v.duration_p_value.toExponential(2)}`);
      }
      const row = el(
        "tr",
        {},
        el("td", { className: "key" }, v.variant),
        el("td", { className: "num" }, v.requests),
        el("td", {}, rateText(v)),
        el("td", { className: "num" }, ms(v.duration_p50_ms)),
        el("td", { className: "num" }, ms(v.duration_p95_ms)),
        el("td", { className: "num" }, ms(v.duration_p99_ms)),
        words,
      );
      row.dataset.variant = v.variant;
      return row;
    });
    table.querySelector("tbody").replaceChildren(...rows);
  }

  // -- refresh loop -----------------------------------------------------------------------

  async function refresh() {
    // One refresh at a time; a request made meanwhile (a filter changed) runs right after,
    // so the page always ends up showing the latest filters.
    if (state.busy) {
      state.again = true;
      return;
    }
    state.busy = true;
    state.again = false;
    try {
      const [health, flags, metrics] = await Promise.all([
        getJson("health"),
        getJson("flags"),
        getJson("metrics"),
      ]);
      state.flags = flags.flags;
      state.metrics = metrics.flags;
      setStatus(
        `${plural(health.stored, "evaluation")} stored (max ${health.max_size}` +
          `${health.evicted ? `, ${health.evicted} evicted` : ""}) · updated ${new Date().toLocaleTimeString()}`,
      );
      renderFlags();
      renderMetrics();
      if (state.flag !== null) {
        const summary = state.flags.find((flag) => flag.flag_key === state.flag);
        $("flag-title").textContent = state.flag;
        if (summary) {
          renderStats(summary);
          fillSelect($("filter-variant"), summary.by_variant);
          fillSelect($("filter-reason"), summary.by_reason);
        }
        const [buckets, page, impact] = await Promise.all([
          getJson("buckets", { flag_key: state.flag }),
          getJson("events", { ...eventFilters(), newest_first: "true", limit: PAGE_SIZE, offset: state.offset }),
          // The key in the query: a path resolves "." and ".." and ends in "/impact".
          summary ? getJson("flag/impact", { flag_key: state.flag }) : null,
        ]);
        renderChart(buckets.buckets, buckets.width_seconds);
        renderEvents(page);
        if (impact) renderImpact(impact);
      }
    } catch (error) {
      setStatus(`cannot reach the flagscope server: ${error.message}`, true);
    } finally {
      state.busy = false;
    }
    if (state.again) refresh();
  }

  function schedule() {
    clearInterval(state.timer);
    state.timer = $("live").checked ? setInterval(refresh, REFRESH_MS) : null;
  }

  function route() {
    const match = /^#\/flag\/(.*)$/.exec(location.hash);
    let flag = null;
    if (match) {
      try {
        flag = decodeURIComponent(match[1]);
      } catch {
        flag = null;
      }
    }
    if (flag !== state.flag) {
      state.offset = 0;
      for (const id of ["filter-context", "filter-trace"]) $(id).value = "";
      $("filter-errors").checked = false;
      $("filter-variant").value = "";
      $("filter-reason").value = "";
    }
    state.flag = flag;
    $("flags-view").hidden = flag !== null;
    $("flag-view").hidden = flag === null;
    document.title = flag === null ? "flagscope" : `${flag} · flagscope`;
    refresh();
  }

  function start() {
    window.addEventListener("hashchange", route);
    $("live").addEventListener("change", schedule);
    $("flag-search").addEventListener("input", () => {
      renderFlags();
      renderMetrics();
    });
    const form = $("event-filters");
    form.addEventListener("submit", (event) => event.preventDefault());
    form.addEventListener("change", () => {
      state.offset = 0;
      refresh();
    });
    $("newer").addEventListener("click", () => {
      state.offset = Math.max(0, state.offset - PAGE_SIZE);
      refresh();
    });
    $("older").addEventListener("click", () => {
      state.offset += PAGE_SIZE;
      refresh();
    });
    schedule();
    route();
  }

  start();
})();
