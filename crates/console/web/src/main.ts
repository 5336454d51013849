// The console's entry point: the shell (header, sign-out, help), routing by URL hash, and
// the shortcuts every page shares.
//
//   #/                      the streams list
//   #/streams/NAME          a stream: live view
//   #/streams/NAME?day=YYYY-MM-DD&t=MS   a stream's day, playing the archive from t
import * as api from "./api";
import { h, clear, typing } from "./dom";
import { renderLogin } from "./login";
import { StreamsPage } from "./streams";
import { StreamPage } from "./stream";

export interface Page {
  /** Keys the page handles; true when handled. */
  key?(e: KeyboardEvent): boolean;
  /** Called when the page is left. */
  dispose(): void;
}

interface State {
  server?: api.ServerInfo;
  session?: api.SessionInfo;
  page?: Page;
}
const state: State = {};

const root = document.getElementById("app")!;

function header(): HTMLElement {
  const who = state.session?.AccessKeyId ?? "";
  return h(
    "header.top",
    null,
    h("a.brand", { href: "#/", title: "Streams (g s)" }, h("span.logo", { "aria-hidden": "true" }), "Vigil"),
    h("nav", null, h("a", { href: "#/" }, "Streams")),
    h("div.spacer"),
    h("button.ghost.help-button", { title: "Keyboard shortcuts (?)", onclick: showHelp, "aria-label": "Keyboard shortcuts" }, "?"),
    who &&
      h(
        "div.who",
        null,
        h("span.key", { title: `Signed in with ${who}` }, who),
        state.server?.AuthenticationRequired
          ? h("button.ghost", { onclick: signOut, id: "sign-out" }, "Sign out")
          : null,
      ),
  );
}

async function signOut(): Promise<void> {
  try {
    await api.logout();
  } catch {
    /* signed out anyway */
  }
  state.session = undefined;
  location.hash = "#/";
  await route();
}

function parseHash(): { path: string[]; query: URLSearchParams } {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [p, q] = raw.split("?");
  return { path: p.split("/").filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(q ?? "") };
}

let routing = Promise.resolve();
function route(): Promise<void> {
  routing = routing.then(doRoute, doRoute);
  return routing;
}

async function doRoute(): Promise<void> {
  state.server ??= await api.info();
  if (!state.session) {
    try {
      state.session = await api.session();
    } catch {
      if (!state.server.AuthenticationRequired) {
        // No keys on this server: a session with no secret.
        state.session = await api.login({ accessKeyId: "anonymous", secretAccessKey: "anonymous" }, state.server);
      }
    }
  }
  state.page?.dispose();
  state.page = undefined;
  clear(root);
  if (!state.session) {
    document.title = "Sign in · Vigil";
    renderLogin(root, state.server, (s) => {
      state.session = s;
      void route();
    });
    return;
  }
  root.append(header());
  const main = h("main#main", { tabIndex: -1 });
  root.append(main);
  const { path, query } = parseHash();
  if (path[0] === "streams" && path[1]) {
    state.page = new StreamPage(main, path[1], query);
  } else {
    state.page = new StreamsPage(main);
  }
}

let helpOpen: HTMLDialogElement | null = null;
function showHelp(): void {
  if (helpOpen) return;
  const rows: [string, string][] = [
    ["?", "This help"],
    ["g s", "Go to the streams list"],
    ["/", "Filter streams"],
    ["j / k, ↓ / ↑", "Next / previous stream"],
    ["Enter", "Open the selected stream"],
    ["n", "New stream"],
    ["e", "Edit the selected stream"],
    ["Delete", "Delete the selected stream"],
    ["Space / k", "Play / pause"],
    ["← / →", "Back / forward 10 s (Shift: 1 min)"],
    ["l", "Go live"],
    ["+ / −", "Zoom the timeline in / out"],
    ["[ / ]", "Previous / next day"],
    ["i / o", "Mark the clip's start / end at the playhead"],
    ["d", "Download the clip"],
    ["f", "Full screen"],
    ["Esc", "Close a dialog"],
  ];
  const dlg = h(
    "dialog.help",
    { "aria-label": "Keyboard shortcuts" },
    h("h2", null, "Keyboard shortcuts"),
    h("table", null, h("tbody", null, rows.map(([k, v]) => h("tr", null, h("td", null, h("kbd", null, k)), h("td", null, v))))),
    h("p.hint", null, `Vigil ${state.server?.Version ?? ""} · `, h("a", { href: "/console/licenses.txt", target: "_blank" }, "third-party licences")),
    h("form", { method: "dialog" }, h("button.primary", { autofocus: true }, "Close")),
  );
  dlg.addEventListener("close", () => {
    dlg.remove();
    helpOpen = null;
  });
  document.body.append(dlg);
  helpOpen = dlg;
  dlg.showModal();
}

let pendingG = 0;
document.addEventListener("keydown", (e) => {
  if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || typing(e)) return;
  if (document.querySelector("dialog[open]")) return;
  if (e.key === "?") {
    showHelp();
    e.preventDefault();
    return;
  }
  if (e.key === "g") {
    pendingG = Date.now();
    return;
  }
  if (e.key === "s" && Date.now() - pendingG < 1000) {
    location.hash = "#/";
    e.preventDefault();
    return;
  }
  if (state.page?.key?.(e)) e.preventDefault();
});

api.setSignedOutHandler(() => {
  if (state.session) {
    state.session = undefined;
    void route();
  }
});
window.addEventListener("hashchange", () => void route());
void route().catch((e) => {
  clear(root);
  root.append(h("div.fatal", null, h("h1", null, "The console could not start"), h("p", null, String(e?.message ?? e))));
});
