import { LitElement, css, html, nothing } from "lit";
import { ApiError, cropOfSighting, enc, type Api } from "../api.ts";
import { ago, time } from "../format.ts";
import { may } from "../roles.ts";
import { shared } from "../styles.ts";
import type { Me, Page, PromoteResult, Sighting, Unknown } from "../types.ts";
import "./auth-img.ts";

/**
 * The review queue of unknown identities (faces seen again and again that match no one): name them, promote
 * them to the watchlist, merge two that are one person, split off sightings that are someone else, delete.
 */
export class VigilUnknowns extends LitElement {
  static override properties = {
    api: { attribute: false },
    me: { attribute: false },
    items: { state: true },
    cursor: { state: true },
    missing: { state: true },
    selected: { state: true },
    detail: { state: true },
    splitting: { state: true },
    message: { state: true },
  };
  declare api: Api;
  declare me: Me;
  declare items: Unknown[];
  declare cursor: string | null;
  declare missing: boolean;
  declare selected: Set<string>;
  declare detail: { id: string; sightings: Sighting[] } | undefined;
  declare splitting: Set<string>;
  declare message: { text: string; error: boolean } | undefined;

  static override styles = [
    shared,
    css`
      ol {
        list-style: none;
        padding: 0;
        display: grid;
        gap: 0.6rem;
      }
      li.unknown {
        display: grid;
        grid-template-columns: auto minmax(0, 1fr);
        gap: 0.75rem;
      }
      .crops {
        display: flex;
        gap: 0.3rem;
        /* Room for three crops whatever each has, so the rows line up. */
        width: calc(3 * 72px + 0.6rem);
      }
      .crops vigil-img {
        width: 72px;
        height: 72px;
      }
      .actions {
        display: flex;
        gap: 0.4rem;
        flex-wrap: wrap;
        align-items: center;
      }
      .actions input {
        width: 11rem;
      }
      .sightings {
        display: flex;
        flex-wrap: wrap;
        gap: 0.5rem;
      }
      .sightings label {
        display: grid;
        justify-items: center;
        gap: 0.2rem;
      }
    `,
  ];

  constructor() {
    super();
    this.items = [];
    this.cursor = null;
    this.missing = false;
    this.selected = new Set();
    this.splitting = new Set();
  }

  override connectedCallback() {
    super.connectedCallback();
    void this.load();
  }

  private fail(err: unknown) {
    this.message = { text: err instanceof Error ? err.message : String(err), error: true };
  }

  private async load(more = false) {
    try {
      const page = await this.api.get<Page<Unknown>>("/v1/unknowns", {
        limit: 50,
        cursor: more ? this.cursor : undefined,
      });
      this.items = more ? [...this.items, ...page.items] : page.items;
      this.cursor = page.nextCursor;
      this.missing = false;
    } catch (err) {
      if (
        err instanceof ApiError &&
        err.status === 404 &&
        err.code === "not_found" &&
        /no route/.test(err.message)
      )
        this.missing = true;
      else this.fail(err);
    }
  }

  private async rename(u: Unknown, name: string) {
    try {
      await this.api.put(`/v1/unknowns/${enc(u.id)}/name`, { name });
      this.message = { text: `named ${name}`, error: false };
      await this.load();
    } catch (err) {
      this.fail(err);
    }
  }

  private async promote(u: Unknown, name: string, watchlist: string) {
    try {
      const r = await this.api.post<PromoteResult>(`/v1/unknowns/${enc(u.id)}/promote`, {
        ...(name ? { name } : {}),
        ...(watchlist ? { watchlist } : {}),
      });
      const refused = r.rejected.map((x) => `${x.sightingId}: ${x.reason}`).join("; ");
      this.message = {
        text: `promoted to ${r.personId}: ${r.enrolled.length} face(s) enrolled${refused ? `; refused ${refused}` : ""}`,
        error: false,
      };
      await this.load();
    } catch (err) {
      const body = err instanceof ApiError ? (err.body as Partial<PromoteResult> | undefined) : undefined;
      if (body?.rejected?.length)
        this.message = {
          text: `not promoted: ${body.rejected.map((x) => `${x.sightingId}: ${x.reason}`).join("; ")}`,
          error: true,
        };
      else this.fail(err);
    }
  }

  private async merge() {
    const [into, ...from] = [...this.selected];
    if (!into || from.length === 0) return;
    try {
      for (const f of from) await this.api.post(`/v1/unknowns/${enc(into)}/merge`, { from: f });
      this.message = { text: `merged ${from.join(", ")} into ${into}`, error: false };
      this.selected = new Set();
      await this.load();
    } catch (err) {
      this.fail(err);
    }
  }

  private async open(u: Unknown) {
    if (this.detail?.id === u.id) {
      this.detail = undefined;
      return;
    }
    try {
      const page = await this.api.get<Page<Sighting> | { items: Sighting[] }>(
        `/v1/unknowns/${enc(u.id)}/sightings`,
      );
      this.detail = { id: u.id, sightings: page.items };
      this.splitting = new Set();
    } catch (err) {
      this.fail(err);
    }
  }

  private async split(u: Unknown) {
    try {
      await this.api.post(`/v1/unknowns/${enc(u.id)}/split`, { sightingIds: [...this.splitting] });
      this.message = { text: `split ${this.splitting.size} sighting(s) off ${u.id}`, error: false };
      this.detail = undefined;
      await this.load();
    } catch (err) {
      this.fail(err);
    }
  }

  private async deleteIdentity(u: Unknown) {
    try {
      await this.api.del(`/v1/unknowns/${enc(u.id)}`);
      this.message = { text: `deleted ${u.id}`, error: false };
      await this.load();
    } catch (err) {
      this.fail(err);
    }
  }

  private toggle(set: Set<string>, id: string, on: boolean) {
    const next = new Set(set);
    if (on) next.add(id);
    else next.delete(id);
    return next;
  }

  private renderItem(u: Unknown) {
    // The unknown-identity routes are open to operators, promotion to admins (services/api/routes/unknowns.ts).
    const canEdit = may(this.me, "operator");
    const value = (e: Event, name: string) =>
      (
        (e.target as HTMLElement).closest("li")?.querySelector<HTMLInputElement>(`input[name=${name}]`)
          ?.value ?? ""
      ).trim();
    return html`<li class="panel unknown" data-unknown=${u.id}>
      <div class="crops">
        ${u.bestSightings
          .slice(0, 3)
          .map(
            (s) =>
              html`<vigil-img .api=${this.api} src=${cropOfSighting(s)} alt="unknown ${u.id}"></vigil-img>`,
          )}
      </div>
      <div>
        <div class="row">
          ${
            canEdit
              ? html`<label class="row"
                  ><input
                    type="checkbox"
                    aria-label="select ${u.id} for merging"
                    .checked=${this.selected.has(u.id)}
                    @change=${(e: Event) =>
                      (this.selected = this.toggle(
                        this.selected,
                        u.id,
                        (e.target as HTMLInputElement).checked,
                      ))}
                /></label>`
              : nothing
          }
          <strong>${u.name ?? "unnamed"}</strong><span class="tag">${u.id}</span>
          <span class="muted">${u.count} sighting(s) · ${u.cameras.join(", ")}</span>
          ${
            u.promotedTo
              ? html`<a class="tag" data-field="promoted" href="#/timeline?person=${enc(u.promotedTo)}"
                  >promoted to ${u.promotedTo}</a
                >`
              : nothing
          }
        </div>
        <div class="muted">
          first seen ${time(u.firstSeen)} · last seen ${time(u.lastSeen)} (${ago(u.lastSeen)})
        </div>
        <div class="actions">
          <button @click=${() => this.open(u)}>${this.detail?.id === u.id ? "Hide" : "Sightings"}</button>
          ${
            canEdit
              ? html`<input
                    name="name"
                    aria-label="name for ${u.id}"
                    placeholder="name"
                    .value=${u.name ?? ""}
                  />
                  <button @click=${(e: Event) => this.rename(u, value(e, "name"))}>Name</button>
                  <input
                    name="watchlist"
                    aria-label="watchlist for ${u.id}"
                    placeholder="watchlist: default"
                  />
                  ${
                    // Promotion enrols faces: an admin's right, like any enrolment.
                    u.promotedTo || !may(this.me, "admin")
                      ? nothing
                      : html`<button
                          class="primary"
                          @click=${(e: Event) => this.promote(u, value(e, "name"), value(e, "watchlist"))}
                        >
                          Promote to watchlist
                        </button>`
                  }
                  <button class="danger" @click=${() => this.deleteIdentity(u)}>Delete</button>`
              : nothing
          }
        </div>
        ${
          this.detail?.id === u.id
            ? html`<div class="sightings" aria-label="sightings of ${u.id}">
                  ${this.detail.sightings.map(
                    (s) =>
                      html`<label
                        ><vigil-img .api=${this.api} src=${s.cropUrl} alt="sighting ${s.id}"></vigil-img>
                        <span class="muted">${s.cameraId} ${time(s.startTs)}</span>
                        ${
                          canEdit
                            ? html`<input
                                type="checkbox"
                                aria-label="split off ${s.id}"
                                @change=${(e: Event) =>
                                  (this.splitting = this.toggle(
                                    this.splitting,
                                    s.id,
                                    (e.target as HTMLInputElement).checked,
                                  ))}
                              />`
                            : nothing
                        }</label
                      >`,
                  )}
                </div>
                ${
                  canEdit
                    ? html`<button ?disabled=${this.splitting.size === 0} @click=${() => this.split(u)}>
                        Split ${this.splitting.size} off as a new identity
                      </button>`
                    : nothing
                }`
            : nothing
        }
      </div>
    </li>`;
  }

  override render() {
    if (this.missing)
      return html`<h2>Unknown people</h2>
        <p class="muted">This API has no unknown-identity routes (/v1/unknowns).</p>`;
    return html`<h2>Unknown people</h2>
      <div class="row">
        <span class="muted"
          >${this.items.length} identit${this.items.length === 1 ? "y" : "ies"} to review</span
        >
        ${
          may(this.me, "operator")
            ? html`<button ?disabled=${this.selected.size < 2} @click=${() => this.merge()}>
                Merge ${this.selected.size} selected
              </button>`
            : nothing
        }
        <button @click=${() => this.load()}>Refresh</button>
      </div>
      ${
        this.message
          ? html`<p class=${this.message.error ? "error" : "ok"} role="status">${this.message.text}</p>`
          : nothing
      }
      <ol>
        ${this.items.map((u) => this.renderItem(u))}
      </ol>
      ${this.cursor ? html`<button @click=${() => this.load(true)}>More</button>` : nothing}`;
  }
}
customElements.define("vigil-unknowns", VigilUnknowns);

declare global {
  interface HTMLElementTagNameMap {
    "vigil-unknowns": VigilUnknowns;
  }
}
