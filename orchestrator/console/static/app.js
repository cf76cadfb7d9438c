// The console: log in, then a hash-routed single page over the REST API (/api/v1/...).

import { ApiError, logIn, logOut, resume, session, whenLoggedOut } from "./js/api.js";
import { h, errorBox } from "./js/ui.js";
import { listPage, KINDS } from "./js/lists.js";
import { jobPage } from "./js/job.js";
import { endpointPage } from "./js/endpoint.js";
import { dataSourcePage } from "./js/datasource.js";
import { trainWizard, deployWizard, updateWizard } from "./js/wizards.js";

const main = document.getElementById("main");
const top = document.getElementById("top");
let disposers = [];

// What a page registers to stop when the page is left (pollers).
export const page = {
  every(ms, fn) {
    let stopped = false;
    let timer = null;
    const tick = async () => {
      if (stopped) return;
      try { await fn(); } catch (e) { if (!(e instanceof ApiError) || e.status !== 401) console.warn(e); }
      if (!stopped) timer = setTimeout(tick, ms);
    };
    timer = setTimeout(tick, ms);
    disposers.push(() => { stopped = true; clearTimeout(timer); });
  },
  onLeave(fn) { disposers.push(fn); },
};

const ROUTES = [
  [/^#\/(jobs|tuning|transform|models|endpoints|data-sources)$/, (m) => listPage(main, KINDS[m[1]], page)],
  [/^#\/jobs\/([^/]+)$/, (m) => jobPage(main, decodeURIComponent(m[1]), page)],
  [/^#\/jobs\/([^/]+)\/deploy$/, (m) => deployWizard(main, decodeURIComponent(m[1]), page)],
  [/^#\/endpoints\/([^/]+)$/, (m) => endpointPage(main, decodeURIComponent(m[1]), page)],
  [/^#\/endpoints\/([^/]+)\/update$/, (m) => updateWizard(main, decodeURIComponent(m[1]), page)],
  [/^#\/data-sources\/([^/]+)$/, (m) => dataSourcePage(main, decodeURIComponent(m[1]), page)],
  [/^#\/train$/, () => trainWizard(main, page)],
];

function leave() {
  disposers.forEach((d) => d());
  disposers = [];
}

async function route() {
  leave();
  if (!session.csrf) return showLogin();
  const hash = location.hash || "#/jobs";
  document.querySelectorAll("#top nav a").forEach((a) => {
    const cur = hash === a.getAttribute("href") || hash.startsWith(`${a.getAttribute("href")}/`);
    if (cur) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  });
  for (const [re, render] of ROUTES) {
    const m = hash.match(re);
    if (m) {
      main.replaceChildren();
      try {
        await render(m);
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 401)) main.append(errorBox(e));
      }
      return;
    }
  }
  location.hash = "#/jobs";
}

function showLogin(message) {
  leave();
  top.hidden = true;
  const key = h("input", { type: "password", name: "ApiKey", id: "api-key", autocomplete: "current-password", required: true });
  const err = h("p", { class: "error", role: "alert", id: "login-error" }, message || "");
  if (!message) err.hidden = true;
  const form = h("form", { class: "login", id: "login-form" },
    h("h1", {}, "Orchestrator console"),
    h("label", { for: "api-key" }, "API key"),
    key,
    err,
    h("button", { type: "submit" }, "Log in"),
    h("p", { class: "note" }, "The key is exchanged for a session cookie; the page never stores it."));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.hidden = true;
    try {
      await logIn(key.value);
      key.value = "";
      entered();
    } catch (e) {
      err.textContent = e.message;
      err.hidden = false;
      key.focus();
    }
  });
  main.replaceChildren(form);
  key.focus();
}

function entered() {
  top.hidden = false;
  document.getElementById("who").textContent = session.caller ? session.caller.UserName : "";
  route();
}

whenLoggedOut((e) => {
  const had = Boolean(session.csrf);
  // A request already in flight when the session ended keeps the first message.
  if (!had && document.getElementById("login-form")) return;
  session.csrf = null;
  // The browser drops the cookie when it expires, so an ended session may answer as no key.
  if (e.code === "SessionExpired") showLogin(`Your session has expired: ${e.message}`);
  else showLogin(had ? "Your session has ended: log in again with an API key." : e.message);
});

document.getElementById("logout").addEventListener("click", async () => {
  try { await logOut(); } catch { /* ended either way */ }
  showLogin("You are logged out.");
});

window.addEventListener("hashchange", route);

(async () => {
  try {
    await resume();
    entered();
  } catch (e) {
    showLogin(e instanceof ApiError && e.code === "SessionExpired" ? `Your session has ended: ${e.message}` : "");
  }
})();
