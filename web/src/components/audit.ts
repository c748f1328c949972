import { LitElement, css, html, nothing } from "lit";
import type { Api } from "../api.ts";
import { fromLocalInput, isoTime, time } from "../format.ts";
import { shared } from "../styles.ts";
import type { AuditEntry, Me, Page } from "../types.ts";

/** The audit log (admins): who searched, enrolled, removed, exported or was refused, filterable. */
export class VigilAudit extends LitElement {
  static override properties = {
    api: { attribute: false },
    me: { attribute: false },
    entries: { state: true },
    cursor: { state: true },
    error: { state: true },
  };
  declare api: Api;
  declare me: Me;
  declare entries: AuditEntry[];
  declare cursor: string | null;
  declare error: string | undefined;
  private filters: Record<string, string | undefined> = {};

  static override styles = [
    shared,
    css`
      form {
        display: flex;
        gap: 0.75rem;
        flex-wrap: wrap;
        align-items: end;
        margin-bottom: 0.75rem;
      }
      .table {
        overflow-x: auto;
      }
      td.summary {
        font-family: ui-monospace, monospace;
        font-size: 0.8rem;
        max-width: 40ch;
        overflow-wrap: anywhere;
      }
      .denied {
        color: var(--warn);
      }
      .failed {
        color: var(--bad);
      }
    `,
  ];

  constructor() {
    super();
    this.entries = [];
    this.cursor = null;
  }

  override connectedCallback() {
    super.connectedCallback();
    void this.load();
  }

  private async load(more = false) {
    try {
      const page = await this.api.get<Page<AuditEntry>>("/v1/audit", {
        ...this.filters,
        limit: 100,
        cursor: more ? this.cursor : undefined,
      });
      this.entries = more ? [...this.entries, ...page.items] : page.items;
      this.cursor = page.nextCursor;
      this.error = undefined;
    } catch (err) {
      this.error = (err as Error).message;
    }
  }

  private filter(e: Event) {
    e.preventDefault();
    const f = e.target as HTMLFormElement;
    const v = (n: string) => (f.elements.namedItem(n) as HTMLInputElement).value.trim() || undefined;
    const since = fromLocalInput(v("since") ?? "");
    const until = fromLocalInput(v("until") ?? "");
    this.filters = {
      action: v("action"),
      key: v("key"),
      since: since === undefined ? undefined : isoTime(since),
      until: until === undefined ? undefined : isoTime(until),
    };
    void this.load();
  }

  override render() {
    return html`<h2>Audit log</h2>
      <form class="panel" @submit=${this.filter} aria-label="filters">
        <label>Action or family <input name="action" placeholder="search, person, key…" /></label>
        <label>Key id <input name="key" /></label>
        <label>From <input type="datetime-local" name="since" step="1" /></label>
        <label>Until <input type="datetime-local" name="until" step="1" /></label>
        <button class="primary" type="submit">Filter</button>
      </form>
      ${this.error ? html`<p class="error" role="alert">${this.error}</p>` : nothing}
      <div class="panel table">
        <table>
          <thead>
            <tr>
              <th>#</th>
              <th>time</th>
              <th>who</th>
              <th>action</th>
              <th>target</th>
              <th>outcome</th>
              <th>summary</th>
            </tr>
          </thead>
          <tbody>
            ${this.entries.map(
              (e) =>
                html`<tr data-action=${e.action}>
                  <td>${e.seq}</td>
                  <td>${time(e.ts)}</td>
                  <td>${e.actor.name} <span class="muted">${e.actor.role ?? ""}</span></td>
                  <td>${e.action}</td>
                  <td>${e.target ?? ""}</td>
                  <td class=${e.outcome}>${e.outcome}${e.status ? ` (${e.status})` : ""}</td>
                  <td class="summary">${JSON.stringify(e.summary)}</td>
                </tr>`,
            )}
          </tbody>
        </table>
        ${this.entries.length === 0 ? html`<p class="muted">No entries.</p>` : nothing}
      </div>
      ${this.cursor ? html`<button @click=${() => this.load(true)}>More</button>` : nothing}`;
  }
}
customElements.define("vigil-audit", VigilAudit);

declare global {
  interface HTMLElementTagNameMap {
    "vigil-audit": VigilAudit;
  }
}
