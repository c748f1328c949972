import { LitElement, css, html, nothing } from "lit";
import { Api, ApiError } from "../api.ts";
import { AlertFeed } from "../alert-feed.ts";
import { shared } from "../styles.ts";
import { may } from "../roles.ts";
import type { Alert, Me, Role } from "../types.ts";
import "./sign-in.ts";
import "./wall.ts";
import "./cameras.ts";
import "./watchlist.ts";
import "./unknowns.ts";
import "./search.ts";
import "./timeline.ts";
import "./audit.ts";

interface View {
  id: string;
  title: string;
  /** Least role that sees it; the API refuses the same calls for lower roles anyway. */
  role: Role;
}

export const VIEWS: View[] = [
  { id: "wall", title: "Alerts", role: "viewer" },
  { id: "cameras", title: "Cameras", role: "viewer" },
  { id: "watchlist", title: "Watchlist", role: "operator" },
  { id: "unknowns", title: "Unknown people", role: "operator" },
  { id: "search", title: "Search", role: "operator" },
  { id: "timeline", title: "Timeline", role: "operator" },
  { id: "audit", title: "Audit", role: "admin" },
];

const KEY = "vigil.key";

/** Where the operator is: `#/<view>?<params>`. Hash routes need nothing from the server but index.html. */
function route(): { view: string; params: URLSearchParams } {
  const hash = location.hash.replace(/^#\/?/, "");
  const [view = "", query = ""] = hash.split("?");
  return { view: view || "wall", params: new URLSearchParams(query) };
}

/** The console: sign-in, the navigation allowed to the key's role, and the view in the URL's fragment. */
export class VigilApp extends LitElement {
  static override properties = {
    me: { state: true },
    api: { state: true },
    view: { state: true },
    params: { state: true },
    signInError: { state: true },
    feedState: { state: true },
    unseen: { state: true },
  };
  declare me: Me | undefined;
  declare api: Api | undefined;
  declare view: string;
  declare params: URLSearchParams;
  declare signInError: string | undefined;
  declare feedState: string;
  declare unseen: number;
  feed: AlertFeed | undefined;

  static override styles = [
    shared,
    css`
      :host {
        min-height: 100vh;
        display: grid;
        grid-template-columns: 190px minmax(0, 1fr);
        grid-template-rows: auto 1fr;
      }
      header {
        grid-column: 1 / -1;
        display: flex;
        align-items: center;
        gap: 1rem;
        padding: 0.5rem 1rem;
        border-bottom: 1px solid var(--line);
        background: var(--panel);
      }
      header .brand {
        font-weight: 700;
        letter-spacing: 0.04em;
        color: var(--accent);
      }
      header .spacer {
        flex: 1;
      }
      nav {
        border-right: 1px solid var(--line);
        padding: 0.75rem 0.5rem;
      }
      nav a {
        display: flex;
        justify-content: space-between;
        padding: 0.45rem 0.75rem;
        border-radius: 6px;
        color: var(--text);
        text-decoration: none;
      }
      nav a[aria-current="page"] {
        background: var(--panel-2);
        color: var(--accent);
      }
      nav a:hover {
        background: var(--panel-2);
      }
      .badge {
        background: var(--alert);
        color: #000;
        border-radius: 999px;
        padding: 0 0.45rem;
        font-size: 0.8rem;
        font-weight: 700;
      }
      main {
        padding: 1rem;
        min-width: 0;
      }
      .feed-live {
        color: var(--ok);
      }
      .feed-reconnecting,
      .feed-connecting {
        color: var(--warn);
      }
      vigil-sign-in {
        grid-column: 1 / -1;
        grid-row: 1 / -1;
      }
    `,
  ];

  constructor() {
    super();
    this.view = "wall";
    this.params = new URLSearchParams();
    this.feedState = "stopped";
    this.unseen = 0;
  }

  override connectedCallback() {
    super.connectedCallback();
    window.addEventListener("hashchange", this.onHash);
    this.onHash();
    const saved = sessionStorage.getItem(KEY) ?? localStorage.getItem(KEY);
    if (saved) void this.signIn(saved, localStorage.getItem(KEY) !== null);
  }

  override disconnectedCallback() {
    window.removeEventListener("hashchange", this.onHash);
    this.feed?.stop();
    super.disconnectedCallback();
  }

  private onHash = () => {
    const r = route();
    this.view = r.view;
    this.params = r.params;
    if (r.view === "wall") this.unseen = 0;
  };

  async signIn(key: string, remember: boolean) {
    const api = new Api(key.trim());
    try {
      const me = await api.me();
      api.onUnauthorized = (message) => this.signOut(message);
      (remember ? localStorage : sessionStorage).setItem(KEY, api.key);
      this.api = api;
      this.me = me;
      this.signInError = undefined;
      this.feed = new AlertFeed(api);
      this.feed.addEventListener("change", () => {
        this.feedState = this.feed?.state ?? "stopped";
      });
      this.feed.addEventListener("new-alert", (e) => this.onNewAlert((e as CustomEvent<Alert>).detail));
      this.feed.start();
      if (!VIEWS.some((v) => v.id === this.view)) location.hash = "#/wall";
    } catch (err) {
      this.signInError =
        err instanceof ApiError ? err.message : `the API did not answer: ${(err as Error).message}`;
      sessionStorage.removeItem(KEY);
      localStorage.removeItem(KEY);
    }
  }

  signOut(message?: string) {
    this.feed?.stop();
    this.feed = undefined;
    this.api = undefined;
    this.me = undefined;
    this.signInError = message;
    sessionStorage.removeItem(KEY);
    localStorage.removeItem(KEY);
  }

  private onNewAlert(alert: Alert) {
    if (this.view !== "wall") this.unseen++;
    document.title = `(${this.unseen || "!"}) ${alert.personName} — Vigil console`;
    setTimeout(() => (document.title = "Vigil console"), 5000);
  }

  private renderView() {
    const view = VIEWS.find((v) => v.id === this.view);
    if (!view) return html`<p>No view “${this.view}”. <a href="#/wall">Alerts</a></p>`;
    if (!may(this.me, view.role))
      return html`<p class="muted" role="alert">
        ${view.title} is not available to a ${this.me?.role} key (it needs ${view.role}).
      </p>`;
    const p = { api: this.api!, me: this.me!, params: this.params };
    switch (view.id) {
      case "wall":
        return html`<vigil-wall .api=${p.api} .me=${p.me} .feed=${this.feed}></vigil-wall>`;
      case "cameras":
        return html`<vigil-cameras .api=${p.api} .me=${p.me}></vigil-cameras>`;
      case "watchlist":
        return html`<vigil-watchlist .api=${p.api} .me=${p.me}></vigil-watchlist>`;
      case "unknowns":
        return html`<vigil-unknowns .api=${p.api} .me=${p.me}></vigil-unknowns>`;
      case "search":
        return html`<vigil-search .api=${p.api} .me=${p.me}></vigil-search>`;
      case "timeline":
        return html`<vigil-timeline .api=${p.api} .me=${p.me} .params=${p.params}></vigil-timeline>`;
      case "audit":
        return html`<vigil-audit .api=${p.api} .me=${p.me}></vigil-audit>`;
    }
    return nothing;
  }

  override render() {
    if (!this.me || !this.api)
      return html`<vigil-sign-in
        .error=${this.signInError}
        @sign-in=${(e: CustomEvent<{ key: string; remember: boolean }>) =>
          void this.signIn(e.detail.key, e.detail.remember)}
      ></vigil-sign-in>`;
    const feedLabel = {
      live: "live",
      connecting: "connecting…",
      reconnecting: "reconnecting…",
      stopped: "off",
    }[this.feedState];
    return html`
      <header>
        <span class="brand">VIGIL</span>
        <span class="feed-${this.feedState}" role="status" aria-live="polite">● alerts ${feedLabel}</span>
        <span class="spacer"></span>
        <span class="muted">${this.me.name} · <span data-role>${this.me.role}</span></span>
        <button @click=${() => this.signOut()}>Sign out</button>
      </header>
      <nav aria-label="views">
        ${VIEWS.filter((v) => may(this.me, v.role)).map(
          (v) =>
            html`<a href="#/${v.id}" aria-current=${v.id === this.view ? "page" : "false"} data-view=${v.id}
              >${v.title}${
                v.id === "wall" && this.unseen > 0
                  ? html`<span class="badge" aria-label="${this.unseen} new">${this.unseen}</span>`
                  : nothing
              }</a
            >`,
        )}
      </nav>
      <main id="main">${this.renderView()}</main>
    `;
  }
}
customElements.define("vigil-app", VigilApp);

declare global {
  interface HTMLElementTagNameMap {
    "vigil-app": VigilApp;
  }
}
