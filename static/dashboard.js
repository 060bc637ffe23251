// Dashboard live monitoring: polls the JSON endpoint named by [data-live-url] and updates the
// counts in place (text via textContent only). Also the "Copy" buttons of participant links.

const BUCKETS = ["started", "in_progress", "completed", "returned", "excluded"];

function cell(text, numeric = false) {
  const td = document.createElement("td");
  td.textContent = String(text);
  if (numeric) td.className = "num";
  return td;
}

function replaceRows(tbody, rows) {
  tbody.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement("tr");
    tr.append(...cells);
    return tr;
  }));
}

export function render(root, data) {
  for (const el of root.querySelectorAll("[data-count]")) {
    const value = data.counts[el.dataset.count];
    el.textContent = String(value ?? 0);
  }
  const set = (selector, value) => {
    const el = root.querySelector(selector);
    if (el) el.textContent = String(value);
  };
  set("[data-median]", data.median_duration_s ?? "–");
  set("[data-catch-failed]", data.catch.failed);
  set("[data-catch-participants]", data.catch.participants_failing);
  set("[data-test-mode]", data.test_mode);
  set("[data-live-updated]", `as of ${data.generated_at}`);
  const byCondition = root.querySelector("[data-by-condition]");
  if (byCondition) {
    replaceRows(byCondition, data.by_condition.map((row) => [
      cell(row.condition), ...BUCKETS.map((b) => cell(row[b], true)),
    ]));
  }
  const accuracy = root.querySelector("[data-accuracy]");
  if (accuracy) {
    replaceRows(accuracy, data.accuracy.map((row) => [
      cell(row.condition), cell(row.n_participants, true), cell(row.n_trials, true),
      cell(row.accuracy === null ? "–" : `${(row.accuracy * 100).toFixed(1)} %`, true),
      cell(`${row.excluded_participants} (${row.excluded_trials})`, true),
    ]));
  }
  const active = root.querySelector("[data-active]");
  if (active) {
    const base = active.dataset.participantBase || "";
    replaceRows(active, data.active.map((p) => {
      const link = document.createElement("a");
      link.href = base + encodeURIComponent(String(p.number));
      link.textContent = p.participant;
      const first = document.createElement("td");
      first.append(link);
      return [
        first, cell(p.condition), cell(p.status), cell(`${p.answered} / ${p.n_trials}`, true),
        cell(p.seen_s_ago === null ? "" : `${p.seen_s_ago} s ago`),
      ];
    }));
  }
}

function startLive(root) {
  const url = root.dataset.liveUrl;
  const interval = Number(root.dataset.liveIntervalMs) || 3000;
  const problem = root.querySelector("[data-live-error]");
  let timer = null;
  async function tick() {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (response.status === 401) {
        window.location.assign("/dashboard/login");
        return;
      }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      render(root, await response.json());
      if (problem) problem.hidden = true;
    } catch (error) {
      if (problem) problem.hidden = false;
    }
    timer = window.setTimeout(tick, document.hidden ? interval * 4 : interval);
  }
  timer = window.setTimeout(tick, interval);
  window.addEventListener("pagehide", () => window.clearTimeout(timer), { once: true });
}

function startCopyButtons() {
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", async () => {
      const input = button.parentElement.querySelector("[data-link]");
      if (!input) return;
      try {
        await navigator.clipboard.writeText(input.value);
        button.textContent = "Copied";
      } catch {
        input.select();
      }
    });
  }
}

for (const root of document.querySelectorAll("[data-live]")) startLive(root);
startCopyButtons();
