// podrec's web page: a listener view (onboarding, recommendations with feedback, context,
// search) and an operator view (catalog statistics, listener profile, evaluation report).
// Plain ES modules, no build step; every call goes to the REST API served by `podrec serve`.

import { api, ApiError, apiUrl, getKey, itemsOf, setKey, setUnauthorizedHandler } from "./api.js";
import { barChart, hourStrip, interestMap, normaliseInterests, PALETTE } from "./charts.js";
import { byTestId, fill, formatDuration, formatMetric, formatNumber, h, s, truncate } from "./dom.js";

const LISTENER = "podrec.listener";
const RECENT = "podrec.recentListeners";
const PLACEHOLDER = "static/cover-placeholder.svg";
const K = 10;

const state = {
  user: load(LISTENER, ""),
  recent: load(RECENT, []),
  stats: null,
  topics: new Set(), // topics picked by the current listener in this session
  followed: new Set(), // onboarding shows followed in this session
  recsRequest: 0,
  reportAll: false,
};

// -- small helpers ------------------------------------------------------------------------

function load(key, fallback) {
  try {
    const raw = localStorage.getItem(key);
    return raw === null ? fallback : JSON.parse(raw);
  } catch {
    return fallback;
  }
}

function save(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch {
    /* storage disabled */
  }
}

const el = (id) => byTestId(id);

let toastTimer = 0;
function toast(message, { error = false } = {}) {
  const t = el("toast");
  t.textContent = message;
  t.classList.toggle("error", error);
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.hidden = true), error ? 6000 : 3000);
}

function explainError(err, what) {
  if (err instanceof ApiError) {
    if (err.status === 403) return `${what}: this key's scope does not allow it (403). ${err.message}`;
    if (err.status === 0) return `${what}: ${err.message}`;
    return `${what}: ${err.message} (${err.status})`;
  }
  return `${what}: ${err?.message || err}`;
}

function icon(path) {
  return s("svg", { class: "icon", viewBox: "0 0 24 24", "aria-hidden": "true", focusable: "false" },
    s("path", { d: path }));
}

// Material Design icon paths (Apache-2.0).
const ICONS = {
  play: "M8 5v14l11-7z",
  like: "M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L14.17 1 7.59 7.59C7.22 7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z",
  dislike: "M15 3H6c-.83 0-1.54.5-1.84 1.22l-3.02 7.05c-.09.23-.14.47-.14.73v2c0 1.1.9 2 2 2h6.31l-.95 4.57-.03.32c0 .41.17.79.44 1.06L9.83 23l6.59-6.59c.36-.36.58-.86.58-1.41V5c0-1.1-.9-2-2-2zm4 0v12h4V3h-4z",
  skip: "M6 18l8.5-6L6 6v12zM16 6v12h2V6h-2z",
  block: "M12 2C6.48 2 2 6.48 2 12s4.48 10 10 10 10-4.48 10-10S17.52 2 12 2zM4 12c0-4.42 3.58-8 8-8 1.85 0 3.55.63 4.9 1.69L5.69 16.9C4.63 15.55 4 13.85 4 12zm8 8c-1.85 0-3.55-.63-4.9-1.69L18.31 7.1C19.37 8.45 20 10.15 20 12c0 4.42-3.58 8-8 8z",
  add: "M19 13h-6v6h-2v-6H5v-2h6V5h2v6h6v2z",
  check: "M9 16.17L4.83 12l-1.42 1.41L9 19 21 7l-1.41-1.41z",
};

// What each feedback button sends, and what the toast says afterwards.
const ACTIONS = [
  { key: "play", event: "play", label: "Play", icon: ICONS.play, done: "Playing" },
  { key: "like", event: "like", label: "Like", icon: ICONS.like, done: "Liked" },
  { key: "dislike", event: "dislike", label: "Dislike", icon: ICONS.dislike, done: "Disliked" },
  { key: "skip", event: "skip", label: "Skip", icon: ICONS.skip, done: "Skipped" },
  { key: "not-interested", event: "dislike", label: "Not interested", icon: ICONS.block,
    done: "Not interested in" },
];

/** A cover image that falls back to a neutral placeholder when missing or broken. */
function cover(rec, size = "") {
  const title = rec.title || rec.id;
  const img = h("img", {
    class: `cover ${size}`.trim(),
    src: rec.image || PLACEHOLDER,
    alt: rec.image ? `Cover art of “${title}”` : `No cover art for “${title}”`,
    loading: "lazy",
    decoding: "async",
    referrerpolicy: "no-referrer",
    width: 96,
    height: 96,
    "data-testid": "cover",
  });
  if (!rec.image) img.classList.add("placeholder");
  img.addEventListener("error", () => {
    if (img.classList.contains("placeholder")) return;
    img.classList.add("placeholder");
    img.alt = `No cover art for “${title}”`;
    img.src = PLACEHOLDER;
  });
  return img;
}

// -- the API key ----------------------------------------------------------------------------

function showKeyPanel(message = "") {
  el("key-panel").hidden = false;
  el("key-status").hidden = true;
  el("view-listener").hidden = true;
  el("view-operator").hidden = true;
  document.querySelector(".tabs").hidden = true;
  el("key-error").textContent = message;
  el("key-input").focus();
}

function showApp() {
  const key = getKey();
  el("key-panel").hidden = true;
  el("key-status").hidden = false;
  el("key-hint").textContent = key.length > 16 ? `${key.slice(0, 14)}…` : "set";
  document.querySelector(".tabs").hidden = false;
  route();
  startListenerView(); // (again after a new key: everything is fetched with it)
}

async function submitKey(event) {
  event.preventDefault();
  const key = el("key-input").value.trim();
  if (!key) return;
  setKey(key);
  el("key-error").textContent = "Checking the key…";
  try {
    await api("catalog/stats");
  } catch (err) {
    if (err.status === 401 || err.status === 0) {
      setKey("");
      el("key-error").textContent = err.status === 401
        ? `The server rejected this key (401): ${err.message}`
        : err.message;
      return;
    }
    // 403 and friends: the key is valid but its scope is narrower; the page still works.
  }
  el("key-input").value = "";
  el("key-error").textContent = "";
  showApp();
}

setUnauthorizedHandler(() => {
  setKey("");
  showKeyPanel("The server rejected the stored key (401). Enter a valid key.");
});

// -- tabs -----------------------------------------------------------------------------------

function currentView() {
  return location.hash === "#operator" ? "operator" : "listener";
}

function route() {
  if (!getKey()) return;
  const view = currentView();
  for (const name of ["listener", "operator"]) {
    const tab = el(`tab-${name}`);
    const on = name === view;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    el(`view-${name}`).hidden = !on;
  }
  if (view === "operator") startOperatorView();
}

function setupTabs() {
  const tabs = [el("tab-listener"), el("tab-operator")];
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => {
      history.replaceState(null, "", `#${tab.dataset.view}`);
      route();
    });
    tab.addEventListener("keydown", (e) => {
      if (e.key !== "ArrowRight" && e.key !== "ArrowLeft") return;
      const next = tabs[(i + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
      next.focus();
      next.click();
    });
  });
  window.addEventListener("hashchange", route);
}

// -- listeners ------------------------------------------------------------------------------

function renderRecent() {
  const list = el("recent-listeners");
  const datalist = document.getElementById("recent-listeners");
  fill(datalist, state.recent.map((id) => h("option", { value: id })));
  fill(list, state.recent.length ? h("span", { class: "muted" }, "Recent:") : null,
    state.recent.map((id) => h("button", {
      type: "button",
      class: `chip small${id === state.user ? " on" : ""}`,
      "aria-pressed": String(id === state.user),
      "data-testid": "recent-listener",
      onclick: () => selectListener(id),
    }, id)));
}

function renderCurrent() {
  const p = el("listener-current");
  if (state.user) {
    fill(p, "Listening as ", h("strong", { "data-testid": "listener-name" }, state.user), ".");
  } else {
    fill(p, "No listener chosen yet: enter an id above, or create a new listener.");
  }
}

function selectListener(id, { fresh = false } = {}) {
  state.user = id;
  save(LISTENER, id);
  state.recent = [id, ...state.recent.filter((x) => x !== id)].slice(0, 8);
  save(RECENT, state.recent);
  state.topics.clear();
  state.followed.clear();
  el("listener-input").value = id;
  el("profile-input").value = id;
  renderRecent();
  renderCurrent();
  renderTopics();
  renderOnboardingShows();
  if (fresh) el("onboarding").open = true;
  fill(el("search-results"));
  el("search-status").textContent = "";
  loadRecs();
}

async function createListener() {
  const typed = el("listener-input").value.trim();
  const id = typed || `listener-${Math.random().toString(36).slice(2, 8)}`;
  try {
    await api("users", { method: "POST", body: { user_id: id } });
    toast(`Created listener ${id}.`);
  } catch (err) {
    if (err.status === 409) {
      toast(`${id} already exists; using it.`);
    } else if (err.status === 403) {
      toast(`This key cannot create listeners; ${id} is created by its first event.`);
    } else {
      toast(explainError(err, "Could not create the listener"), { error: true });
      return;
    }
  }
  selectListener(id, { fresh: true });
}

function requireListener() {
  if (state.user) return true;
  toast("Choose or create a listener first.", { error: true });
  el("listener-input").focus();
  return false;
}

/** Send one event for the current listener. The server stamps the time; the listener's
 * local hour and weekday go in its context (the hour strips of the profile use them). */
async function sendEvent(fields) {
  const now = new Date();
  const device = el("context-device").value;
  const body = { user_id: state.user, platform: "web",
                 context: { hour: now.getHours(), weekday: (now.getDay() + 6) % 7 }, ...fields };
  if (device) body.device = device;
  return api("events", { method: "POST", body });
}

// -- onboarding -----------------------------------------------------------------------------

let onboardingShows = [];

function topicNames() {
  const fromStats = (state.stats?.tags || [])
    .map((t) => (typeof t === "string" ? t : t.tag))
    .filter(Boolean);
  const names = fromStats.length
    ? fromStats
    : [...new Set(onboardingShows.flatMap((r) => r.categories || []))];
  return names.slice(0, 18);
}

function renderTopics() {
  const names = topicNames();
  fill(el("topics"), names.length ? names.map((name) => {
    const on = state.topics.has(name);
    return h("button", {
      type: "button",
      class: `chip${on ? " on" : ""}`,
      "aria-pressed": String(on),
      "data-testid": "topic-chip",
      "data-topic": name,
      onclick: () => pickTopic(name),
    }, icon(on ? ICONS.check : ICONS.add), name);
  }) : h("span", { class: "muted" }, "Loading topics…"));
}

/** A topic or free text counts as interest: it is sent as a `search` event with the text. */
async function addInterestText(text, { topic = false } = {}) {
  if (!requireListener()) return false;
  try {
    await sendEvent({ event: "search", text });
  } catch (err) {
    toast(explainError(err, "Could not save the interest"), { error: true });
    return false;
  }
  toast(topic ? `Added topic “${text}”.` : `Added “${truncate(text, 40)}” to your interests.`);
  loadRecs();
  return true;
}

async function pickTopic(name) {
  if (state.topics.has(name)) {
    toast(`“${name}” is already one of your topics.`);
    return;
  }
  if (await addInterestText(name, { topic: true })) {
    state.topics.add(name);
    renderTopics();
  }
}

async function loadOnboarding() {
  const language = el("onboarding-language").value;
  try {
    onboardingShows = itemsOf(await api("onboarding", { params: { k: 12, language } }));
  } catch (err) {
    onboardingShows = [];
    fill(el("onboarding-shows"), h("li", { class: "error" }, explainError(err, "Could not load shows")));
    return;
  }
  renderOnboardingShows();
  if (!state.stats) renderTopics();
}

function renderOnboardingShows() {
  const list = el("onboarding-shows");
  if (!onboardingShows.length) {
    fill(list, h("li", { class: "muted" }, "No shows to suggest yet."));
    return;
  }
  fill(list, onboardingShows.map((rec) => {
    const on = state.followed.has(rec.id);
    return h("li", { class: `starter${on ? " on" : ""}`, "data-testid": "onboarding-show", "data-id": rec.id },
      cover(rec, "small"),
      h("div", { class: "starter-text" },
        h("span", { class: "starter-title" }, rec.title),
        h("span", { class: "muted small" }, (rec.categories || [])[0] || rec.author || "")),
      h("button", {
        type: "button",
        class: on ? "on" : "",
        "aria-pressed": String(on),
        "aria-label": `${on ? "Unfollow" : "Follow"} “${rec.title}”`,
        "data-testid": "onboarding-follow",
        onclick: () => toggleFollow(rec),
      }, icon(on ? ICONS.check : ICONS.add), on ? "Following" : "Follow"));
  }));
}

async function toggleFollow(rec) {
  if (!requireListener()) return;
  const following = state.followed.has(rec.id);
  try {
    await sendEvent({ item_id: rec.id, item_kind: rec.kind || "show",
                      event: following ? "unsubscribe" : "subscribe" });
  } catch (err) {
    toast(explainError(err, "Could not save"), { error: true });
    return;
  }
  if (following) state.followed.delete(rec.id);
  else state.followed.add(rec.id);
  toast(`${following ? "Unfollowed" : "Following"} “${rec.title}”.`);
  renderOnboardingShows();
  loadRecs();
}

// -- recommendations ----------------------------------------------------------------------

function contextOf() {
  const now = new Date();
  const ctx = { hour: now.getHours(), weekday: (now.getDay() + 6) % 7 }; // 0 = Monday
  const device = el("context-device").value;
  const minutes = Number(el("context-minutes").value);
  const intent = el("context-mood").value.trim();
  if (device) ctx.device = device;
  if (Number.isFinite(minutes) && minutes > 0) ctx.minutes = minutes;
  if (intent) ctx.intent = intent;
  return ctx;
}

function contextSummary(ctx) {
  const parts = [];
  if (ctx.device) parts.push(`on ${ctx.device}`);
  if (ctx.minutes) parts.push(`${ctx.minutes} min`);
  if (ctx.intent) parts.push(`“${truncate(ctx.intent, 40)}”`);
  return parts.join(", ");
}

async function loadRecs() {
  const list = el("recs");
  const status = el("recs-status");
  if (!state.user) {
    fill(list);
    status.textContent = "Choose or create a listener to see recommendations.";
    return;
  }
  const kind = el("context-kind").value;
  const context = contextOf();
  const body = {
    user_id: state.user,
    k: K,
    kind,
    context,
    diversity: Number(el("context-diversity").value) || 0,
    explain: true,
  };
  if (kind === "episode") body.filters = { per_show: 2 };
  const request = ++state.recsRequest;
  list.setAttribute("aria-busy", "true");
  status.textContent = "Loading recommendations…";
  let items;
  try {
    items = itemsOf(await api("recommendations", { method: "POST", body }));
  } catch (err) {
    if (request !== state.recsRequest) return;
    list.removeAttribute("aria-busy");
    fill(list);
    status.textContent = err.status === 404 || err.status === 400 || err.status === 422
      ? `No recommendations yet (${err.message}). Pick a few topics or shows above.`
      : explainError(err, "Could not load recommendations");
    return;
  }
  if (request !== state.recsRequest) return; // a newer request is on its way
  list.removeAttribute("aria-busy");
  const extra = contextSummary(context);
  status.textContent = items.length
    ? `${items.length} ${kind === "episode" ? "episodes" : "shows"} for ${state.user}` +
      (extra ? ` · ${extra}` : "")
    : "Nothing to recommend yet: pick a few topics or shows above.";
  fill(list, items.map((rec, i) => card(rec, { testid: "rec-card", rank: i + 1 })));
}

/** A recommendation (or search result) as a card with its feedback buttons. */
function card(rec, { testid, rank }) {
  const title = rec.title || rec.id;
  const meta = [
    { text: rec.author, testid: "author" },
    { text: formatDuration(rec.duration_s), testid: "duration" },
    { text: rec.language?.toUpperCase(), testid: "language" },
    { text: rec.kind === "episode" ? "episode" : null },
  ].filter((m) => m.text);
  const tags = [...new Set([...(rec.tags || []), ...(rec.categories || [])])].slice(0, 5);
  const li = h("li", { class: "card", "data-testid": testid, "data-id": rec.id, "data-kind": rec.kind },
    cover(rec),
    h("div", { class: "card-body" },
      h("h3", { class: "card-title", "data-testid": "card-title" },
        rank ? h("span", { class: "rank", "aria-hidden": "true" }, `${rank}`) : null, title),
      meta.length ? h("p", { class: "meta" },
        meta.map((m, i) => [i ? h("span", { "aria-hidden": "true" }, " · ") : null,
                            h("span", { "data-testid": m.testid }, m.text)]))
        : null,
      tags.length ? h("ul", { class: "tags", "aria-label": "Tags" }, tags.map((t) => h("li", {}, t))) : null,
      rec.reason ? h("p", { class: rec.reason_source === "generated" ? "reason generated" : "reason", "data-testid": "reason" }, rec.reason) : null,
      h("div", { class: "actions", role: "group", "aria-label": `Feedback on “${title}”` },
        ACTIONS.map((a) => h("button", {
          type: "button",
          class: `action ${a.key}`,
          title: `${a.label}: “${title}”`,
          "aria-label": `${a.label}: “${title}”`,
          "data-testid": `btn-${a.key}`,
          onclick: (e) => feedback(rec, a, e.currentTarget.closest("li")),
        }, icon(a.icon), h("span", {}, a.label))))));
  return li;
}

async function feedback(rec, action, li) {
  if (!requireListener()) return;
  li.classList.add("pending");
  li.querySelectorAll("button").forEach((b) => (b.disabled = true));
  try {
    await sendEvent({ item_id: rec.id, item_kind: rec.kind || "show", event: action.event });
  } catch (err) {
    li.classList.remove("pending");
    li.querySelectorAll("button").forEach((b) => (b.disabled = false));
    toast(explainError(err, "Could not send the feedback"), { error: true });
    return;
  }
  toast(`${action.done} “${truncate(rec.title || rec.id, 50)}”.`);
  if (li.dataset.testid === "search-card") li.classList.replace("pending", "done");
  await loadRecs();
}

// -- search ---------------------------------------------------------------------------------

async function search(event) {
  event.preventDefault();
  const q = el("search-input").value.trim();
  const list = el("search-results");
  const status = el("search-status");
  if (!q) return;
  status.textContent = "Searching…";
  let items;
  try {
    items = itemsOf(await api("search", { params: { q, k: K, kind: el("context-kind").value } }));
  } catch (err) {
    status.textContent = explainError(err, "Search failed");
    fill(list);
    return;
  }
  status.textContent = `${items.length} result${items.length === 1 ? "" : "s"} for “${q}”` +
    (state.user ? " (your searches count as interest)" : "");
  fill(list, items.map((rec) => card(rec, { testid: "search-card" })));
  if (state.user) {
    // What a listener searches for is interest in their own words.
    sendEvent({ event: "search", text: q }).then(loadRecs, () => {});
  }
}

// -- catalog statistics (both views use them) ----------------------------------------------

async function loadStats() {
  try {
    state.stats = await api("catalog/stats");
    el("stats-error").textContent = "";
  } catch (err) {
    state.stats = null;
    el("stats-error").textContent = explainError(err, "Could not load the catalog statistics");
    return;
  }
  const st = state.stats;
  const items = st.items || {};
  const languages = Object.entries(st.languages || {}).sort((a, b) => b[1] - a[1]);
  fill(el("stats-tiles"),
    tile("Shows", items.show, "stat-shows"),
    tile("Episodes", items.episode, "stat-episodes"),
    tile("Listeners", st.users, "stat-users"),
    tile("Languages", languages.length, "stat-languages"));
  const langRows = languages.slice(0, 10).map(([label, value]) => ({ label, value }));
  if (languages.length > 10) {
    langRows.push({ label: "other", value: languages.slice(10).reduce((a, [, v]) => a + v, 0) });
  }
  fill(el("chart-languages"), barChart(langRows, { title: "Items per language", color: PALETTE[0],
                                                    testid: "svg-languages" }));
  const tagRows = (st.tags || []).slice(0, 15)
    .map((t) => (typeof t === "string" ? { label: t, value: 0 } : { label: t.tag, value: t.count }));
  fill(el("chart-tags"), barChart(tagRows, { title: "Items per tag (top 15)", color: PALETTE[2],
                                              testid: "svg-tags" }));
  const select = el("onboarding-language");
  const chosen = select.value;
  fill(select, h("option", { value: "" }, "any"),
    languages.map(([code, n]) => h("option", { value: code }, `${code} (${formatNumber(n)})`)));
  select.value = chosen;
  renderTopics();
}

function tile(label, value, testid) {
  return h("div", { class: "tile", "data-testid": testid },
    h("span", { class: "tile-value" }, formatNumber(value ?? 0)),
    h("span", { class: "tile-label" }, label));
}

// -- evaluation report ----------------------------------------------------------------------

const LOWER_IS_BETTER = /^(popularity|top10%share)|seconds$/;

async function loadReport() {
  const box = el("report");
  fill(box, h("p", { class: "muted" }, "Loading…"));
  let answer;
  try {
    answer = await api("reports/latest");
  } catch (err) {
    fill(box, h("p", { class: err.status === 404 ? "muted" : "error", "data-testid": "report-empty" },
      err.status === 404
        ? "No evaluation report yet. Run `podrec evaluate … --out DIR` on the server."
        : explainError(err, "Could not load the report")));
    return;
  }
  // The server wraps results.json as {"name", "modified", "results", "images": [{name, url}]};
  // a bare results.json with "plots" (a list of URLs) works too.
  const report = answer?.results && typeof answer.results === "object" ? answer.results : answer || {};
  const plotUrls = Array.isArray(answer?.plots) ? answer.plots
    : (answer?.images || []).map((i) => (typeof i === "string" ? i : i.url)).filter(Boolean);
  const models = Object.entries(report.models || {});
  const numeric = (v) => typeof v === "number" && Number.isFinite(v);
  const allMetrics = [];
  for (const [, m] of models) {
    for (const [k, v] of Object.entries(m || {})) if (numeric(v) && !allMetrics.includes(k)) allMetrics.push(k);
  }
  const firstK = (report.ks || [10])[0];
  const key = new RegExp(`^(ndcg|recall|map|coverage|novelty)@${firstK}$|^recall@\\d+$|^fit_seconds$`);
  const metrics = state.reportAll ? allMetrics : allMetrics.filter((m) => key.test(m));
  const best = {};
  for (const m of metrics) {
    const values = models.map(([, r]) => r?.[m]).filter(numeric);
    best[m] = LOWER_IS_BETTER.test(m) ? Math.min(...values) : Math.max(...values);
  }
  const p = report.protocol || {};
  const d = report.data || {};
  const summary = [
    answer?.name && `run ${answer.name}`,
    answer?.modified && `written ${String(answer.modified).slice(0, 16).replace("T", " ")} UTC`,
    p.protocol && `protocol ${p.protocol}`,
    d.users && `${formatNumber(d.users)} listeners`,
    d.items && `${formatNumber(d.items)} items`,
    d.test_users && `${formatNumber(d.test_users)} test listeners`,
    d.embedder && `embedder ${d.embedder}`,
  ].filter(Boolean).join(" · ");
  const table = h("table", { class: "report-table", "data-testid": "report-table" },
    h("caption", {}, "Models × metrics (best value in bold)"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "model"),
      metrics.map((m) => h("th", { scope: "col" }, m)))),
    h("tbody", {}, models.map(([name, r]) => h("tr", {},
      h("th", { scope: "row" }, name),
      metrics.map((m) => {
        const v = r?.[m];
        const isBest = numeric(v) && v === best[m] && models.length > 1;
        return h("td", { class: isBest ? "best" : "" }, isBest ? h("strong", {}, formatMetric(v)) : formatMetric(v));
      })))));
  const toggle = h("label", { class: "inline" },
    h("input", { type: "checkbox", checked: state.reportAll ? true : null, "data-testid": "report-all",
                 onchange: (e) => { state.reportAll = e.target.checked; loadReport(); } }),
    " all metrics");
  const plots = h("div", { class: "plots" });
  fill(box, summary ? h("p", { class: "muted" }, summary) : null, toggle,
    h("div", { class: "table-scroll", tabindex: 0, role: "region", "aria-label": "Evaluation results" }, table),
    plots);
  for (const url of plotUrls) addPlot(plots, url);
}

/** Plots may sit behind the API key, which an <img src> cannot send: fetch, then show. */
async function addPlot(box, url) {
  const name = decodeURIComponent(String(url).split("/").pop() || "plot");
  const fig = h("figure", { class: "plot" });
  box.append(fig);
  try {
    const key = getKey();
    const res = await fetch(apiUrl(url), { headers: key ? { Authorization: `Bearer ${key}` } : {} });
    if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
    const blob = await res.blob();
    fill(fig, h("img", { src: URL.createObjectURL(blob), alt: `Evaluation plot ${name}`,
                         "data-testid": "report-plot" }),
      h("figcaption", {}, name));
  } catch (err) {
    fill(fig, h("figcaption", { class: "error" }, `Could not load ${name}: ${err.message}`));
  }
}

// -- listener profile -----------------------------------------------------------------------

async function loadProfile(event) {
  event?.preventDefault();
  const id = el("profile-input").value.trim() || state.user;
  const box = el("profile");
  el("profile-error").textContent = "";
  if (!id) {
    fill(box, h("p", { class: "muted" }, "Enter a listener id to draw their interests."));
    return;
  }
  fill(box, h("p", { class: "muted" }, "Loading…"));
  let profile;
  try {
    profile = await api(`users/${encodeURIComponent(id)}/profile`);
  } catch (err) {
    fill(box);
    el("profile-error").textContent = explainError(err, `Could not load the profile of ${id}`);
    return;
  }
  const interests = normaliseInterests(profile);
  const accounts = (profile.accounts || []).map((a) => (typeof a === "string" ? a : a.user_id || a.id));
  const facts = [
    `${formatNumber(profile.events ?? 0)} events`,
    accounts.length > 1 ? `accounts: ${accounts.join(", ")}` : null,
    profile.person_id && profile.person_id !== id ? `person ${profile.person_id}` : null,
    `${interests.length} interest${interests.length === 1 ? "" : "s"}`,
  ].filter(Boolean);
  const legend = h("ul", { class: "legend", "data-testid": "profile-legend" }, interests.map((it) =>
    h("li", { class: "legend-item" },
      h("div", { class: "legend-head" },
        h("span", { class: "swatch", style: `background:${it.color}`, "aria-hidden": "true" }),
        h("strong", {}, it.label), h("span", { class: "muted" }, ` ${Math.round(it.share * 100)}%`)),
      it.summary ? h("p", { class: "summary", "data-testid": "interest-summary", title: "written by the language model from this interest's shows and habits" }, it.summary) : null,
      it.tags.length ? h("ul", { class: "tags", "aria-label": "Tags" }, it.tags.slice(0, 6).map((t) => h("li", {}, t))) : null,
      it.items.length ? h("ol", { class: "items" }, it.items.slice(0, 5).map((x) =>
        h("li", {}, typeof x === "string" ? x : x.title || x.id))) : null,
      it.hours ? hourStrip(it.hours, { color: it.color, label: `${it.label}: listening by hour of day` }) : null,
      it.devices.length ? h("p", { class: "muted small" }, `on ${it.devices.join(", ")}`) : null)));
  const disliked = profile.disliked || [];
  const texts = profile.texts || [];
  fill(box,
    h("p", { class: "muted", "data-testid": "profile-facts" }, `${id}: ${facts.join(" · ")}`),
    interests.length
      ? interestMap(interests, { who: id })
      : h("p", { class: "muted", "data-testid": "profile-empty" },
        "No interests yet: this listener has not liked, followed or played anything."),
    interests.length ? legend : null,
    h("div", { class: "profile-lists" },
      disliked.length ? h("div", {}, h("h3", {}, "Not interested in"),
        h("ul", { "data-testid": "profile-disliked" }, disliked.map((x) => h("li", {}, x.title || x.id || x)))) : null,
      texts.length ? h("div", {}, h("h3", {}, "Recent searches"),
        h("ul", { "data-testid": "profile-texts" }, texts.map((t) => h("li", {}, t)))) : null));
}

// -- start-up ---------------------------------------------------------------------------------

function startListenerView() {
  renderRecent();
  renderCurrent();
  renderTopics();
  if (state.user) {
    el("listener-input").value = state.user;
    el("profile-input").value = state.user;
  }
  loadStats();
  loadOnboarding();
  loadRecs();
}

let operatorLoaded = false;
function startOperatorView() {
  if (!el("profile-input").value && state.user) el("profile-input").value = state.user;
  loadStats();
  loadProfile();
  if (!operatorLoaded) {
    operatorLoaded = true;
    loadReport();
  }
}

function wire() {
  setupTabs();
  el("key-form").addEventListener("submit", submitKey);
  el("key-forget").addEventListener("click", () => {
    setKey("");
    showKeyPanel("");
  });
  el("listener-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const id = el("listener-input").value.trim();
    if (id) selectListener(id);
    else el("listener-input").focus();
  });
  el("listener-create").addEventListener("click", createListener);
  el("interest-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = el("interest-input").value.trim();
    if (text && (await addInterestText(text))) el("interest-input").value = "";
  });
  el("onboarding-language").addEventListener("change", loadOnboarding);
  el("context-form").addEventListener("submit", (e) => {
    e.preventDefault();
    loadRecs();
  });
  el("context-kind").addEventListener("change", loadRecs);
  el("recs-refresh").addEventListener("click", loadRecs);
  el("search-form").addEventListener("submit", search);
  el("stats-refresh").addEventListener("click", loadStats);
  el("report-refresh").addEventListener("click", loadReport);
  el("profile-form").addEventListener("submit", loadProfile);
}

wire();
if (getKey()) showApp();
else showKeyPanel();
