// hedge dashboard: polls /api/status for counters and recent decisions, and
// streams answers from /v1/chat/completions (server-sent events read with
// fetch and a ReadableStream). No framework, no external assets.
"use strict";

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("hedge-token") || "";

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}

function showAuth() {
  $("auth").hidden = false;
}

$("auth-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = $("token").value.trim();
  sessionStorage.setItem("hedge-token", token);
  $("auth").hidden = true;
  refresh();
});

// ---- status ----------------------------------------------------------

function pill(el, text, cls) {
  el.textContent = text;
  el.className = "pill " + (cls || "");
}

function fmtConf(c, intent) {
  return intent ? Number(c).toFixed(2) : "–";
}

function fmtMS(ms) {
  if (ms >= 1000) return (ms / 1000).toFixed(1) + " s";
  if (ms >= 10) return Math.round(ms) + " ms";
  return Number(ms).toFixed(1) + " ms";
}

function flags(d) {
  const f = [];
  if (d.degraded) f.push(d.degraded);
  if (d.queued) f.push("queued");
  if (d.anonymized) f.push("anonymized");
  if (d.error) f.push(d.error);
  return f.join(", ");
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function render(s) {
  $("device").textContent = s.device || "";
  if (s.ready) {
    pill($("ready"), "ready", "ok");
  } else {
    pill($("ready"), "not ready: " + (s.not_ready || []).join(", "), "bad");
  }
  const m = s.metrics;
  if (!m) return;
  const link = { up: ["link up", "ok"], down: ["link down", "bad"], none: ["no cloud", "muted"] }[m.link] || ["link ?", ""];
  pill($("link"), link[0], link[1]);
  pill($("outbox"), "outbox " + m.outbox_depth, m.outbox_depth > 0 ? "warn" : "muted");
  $("c-total").textContent = m.requests;
  for (const t of ["cache", "slm", "llm", "cloud"]) $("c-" + t).textContent = m.by_tier[t] || 0;
  $("c-errors").textContent = m.errors;
  $("c-queued").textContent = m.queued;
  const looked = m.cache_hits + m.cache_misses;
  $("c-hitrate").textContent = looked ? Math.round((100 * m.cache_hits) / looked) + "%" : "–";
  $("debug-hint").textContent = m.debug ? "(debug: query texts shown)" : "(query texts hidden; enable http.debug)";
  document.body.classList.toggle("debug", !!m.debug);

  const body = $("recent");
  const rows = [];
  for (const d of m.recent) {
    const tr = document.createElement("tr");
    cell(tr, new Date(d.time).toLocaleTimeString([], { hour12: false }));
    const q = d.text || "";
    cell(tr, q.length > 80 ? q.slice(0, 79) + "…" : q, "text-col");
    cell(tr, d.prefer);
    cell(tr, d.intent || "–");
    cell(tr, fmtConf(d.confidence, d.intent), "num");
    cell(tr, d.tier || "error", "tier-" + (d.tier || "error"));
    cell(tr, d.model || "–");
    cell(tr, fmtMS(d.latency_ms), "num");
    cell(tr, flags(d));
    cell(tr, d.transport);
    if (d.reason) tr.title = d.reason;
    rows.push(tr);
  }
  body.replaceChildren(...rows);
}

async function refresh() {
  try {
    const r = await fetch("/api/status", { headers: headers(), cache: "no-store" });
    if (r.status === 401) {
      showAuth();
      pill($("ready"), "token needed", "warn");
      return;
    }
    render(await r.json());
  } catch (e) {
    pill($("ready"), "unreachable", "bad");
  }
}

refresh();
setInterval(refresh, 2000);

// ---- ask ---------------------------------------------------------------

function resetResult() {
  $("answer").textContent = "";
  $("error").hidden = true;
  $("error").textContent = "";
  for (const id of ["intent", "confidence", "model", "latency", "flags"]) $(id).textContent = "–";
  $("tier").textContent = "–";
  $("tier").className = "tier";
  $("confidence-bar").style.width = "0";
  $("reason").textContent = "";
}

function showInfo(h) {
  $("tier").textContent = h.tier;
  $("tier").className = "tier tier-" + h.tier;
  $("intent").textContent = h.intent || "–";
  $("confidence").textContent = fmtConf(h.confidence, h.intent);
  $("confidence-bar").style.width = h.intent ? Math.round(100 * h.confidence) + "%" : "0";
  $("model").textContent = h.model || "–";
  $("latency").textContent = fmtMS(h.latency_ms);
  $("flags").textContent = flags(h) || "–";
  $("reason").textContent = h.reason || "";
}

function showError(code, message) {
  $("error").hidden = false;
  $("error").textContent = (code ? code + ": " : "") + message;
  $("result").dataset.state = "error";
}

function handleEvent(raw, st) {
  for (const line of raw.split("\n")) {
    if (!line.startsWith("data:")) continue;
    const data = line.slice(5).trim();
    if (data === "[DONE]") {
      st.done = true;
      continue;
    }
    let j;
    try {
      j = JSON.parse(data);
    } catch (e) {
      continue;
    }
    if (j.error) {
      st.failed = true;
      showError(j.error.code, j.error.message);
      continue;
    }
    const c = j.choices && j.choices[0];
    if (c && c.delta && c.delta.content) $("answer").textContent += c.delta.content;
    if (j.hedge) showInfo(j.hedge);
  }
}

async function ask(ev) {
  ev.preventDefault();
  const text = $("q").value.trim();
  if (!text) return;
  const backend = document.querySelector('input[name="backend"]:checked').value;
  resetResult();
  const result = $("result");
  result.dataset.state = "streaming";
  $("ask").disabled = true;
  const st = { done: false, failed: false };
  try {
    const r = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify({ model: "hedge-" + backend, stream: true, messages: [{ role: "user", content: text }] }),
    });
    if (!r.ok) {
      let code = String(r.status);
      let msg = r.statusText;
      try {
        const j = await r.json();
        code = j.error.code;
        msg = j.error.message;
      } catch (e) {
        /* not JSON: keep the status line */
      }
      if (r.status === 401) showAuth();
      showError(code, msg);
      return;
    }
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        handleEvent(buf.slice(0, i), st);
        buf = buf.slice(i + 2);
      }
    }
    if (!st.failed) {
      if (st.done) result.dataset.state = "done";
      else showError("stream", "the answer ended early");
    }
  } catch (e) {
    showError("network", e.message);
  } finally {
    $("ask").disabled = false;
    refresh();
  }
}

$("ask-form").addEventListener("submit", ask);
$("q").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) $("ask-form").requestSubmit();
});
