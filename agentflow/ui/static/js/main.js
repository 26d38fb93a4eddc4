// The router: "/" is the runs list, "/runs/<id>" a run, "/compare?a=&b=" two runs side by side,
// "/evals" the evaluations, "/evals/<id>" one, "/evals/compare?a=&b=" two side by side.
import { comparePage } from "./compare.js";
import { evalComparePage, evalPage, evalsPage } from "./evals.js";
import { runPage } from "./run.js";
import { runsPage } from "./runs.js";
import { h, navigate, fill } from "./util.js";

const root = document.getElementById("app");

async function route() {
  const t0 = performance.now();
  document.body.dataset.ready = "";
  const path = location.pathname;
  try {
    if (path.startsWith("/runs/") && path.length > "/runs/".length) {
      await runPage(root, decodeURIComponent(path.slice("/runs/".length)));
    } else if (path === "/compare") {
      await comparePage(root);
    } else if (path === "/evals/compare") {
      await evalComparePage(root);
    } else if (path.startsWith("/evals/")) {
      await evalPage(root, decodeURIComponent(path.slice("/evals/".length)));
    } else if (path === "/evals") {
      await evalsPage(root);
    } else {
      await runsPage(root);
    }
  } catch (err) {
    fill(root, h("div.error-box.page-error", `Could not load this page: ${err.message}`));
  }
  window.__afRender = { ms: performance.now() - t0, sinceNavigation: performance.now(), path };
  for (const a of document.querySelectorAll(".topbar nav a")) {
    a.classList.toggle("active", a.dataset.section === (path.startsWith("/evals") ? "evals" : "runs"));
  }
  document.body.dataset.ready = "1";
}

document.addEventListener("click", (e) => {
  const a = e.target.closest("a[data-nav]");
  if (a && !e.metaKey && !e.ctrlKey && a.origin === location.origin) {
    e.preventDefault();
    navigate(a.pathname + a.search);
  }
});
window.addEventListener("popstate", route);
window.addEventListener("af:navigate", () => { window.scrollTo(0, 0); route(); });
route();
