import { LitElement, css, html, nothing } from "lit";
import { ApiError, enc, type Api } from "../api.ts";
import { may } from "../roles.ts";
import { shared } from "../styles.ts";
import type { EnrolResult, Me, Person, PersonDetails, PhotoOutcome, Watchlist } from "../types.ts";
import "./auth-img.ts";
import "./drop-zone.ts";

/** Files chosen for enrolment, each with what the API said about it once sent. */
interface Pending {
  file: File;
  preview: string;
  outcome?: PhotoOutcome;
}

/** People with their photos; enrolment by drag-and-drop with each refused photo's reason; thresholds. */
export class VigilWatchlist extends LitElement {
  static override properties = {
    api: { attribute: false },
    me: { attribute: false },
    people: { state: true },
    watchlists: { state: true },
    open: { state: true },
    pending: { state: true },
    busy: { state: true },
    message: { state: true },
  };
  declare api: Api;
  declare me: Me;
  declare people: Person[];
  declare watchlists: Watchlist[];
  declare open: Map<string, PersonDetails>;
  declare pending: Pending[];
  declare busy: boolean;
  declare message: { text: string; error: boolean } | undefined;

  static override styles = [
    shared,
    css`
      .layout {
        display: grid;
        grid-template-columns: minmax(0, 1fr) minmax(300px, 400px);
        gap: 1rem;
        align-items: start;
      }
      @media (max-width: 1100px) {
        .layout {
          grid-template-columns: minmax(0, 1fr);
        }
      }
      form {
        display: grid;
        gap: 0.5rem;
      }
      ul.files {
        list-style: none;
        padding: 0;
        margin: 0;
        display: grid;
        gap: 0.4rem;
      }
      ul.files li {
        display: grid;
        grid-template-columns: 56px minmax(0, 1fr) auto;
        gap: 0.5rem;
        align-items: center;
      }
      ul.files img {
        width: 56px;
        height: 56px;
        object-fit: cover;
        border-radius: 4px;
      }
      .file-name {
        overflow-wrap: anywhere;
      }
      .person {
        display: grid;
        gap: 0.4rem;
      }
      .photos {
        display: flex;
        flex-wrap: wrap;
        gap: 0.5rem;
      }
      .photo {
        display: flex;
        gap: 0.4rem;
        align-items: center;
        background: var(--panel-2);
        border-radius: 6px;
        padding: 0.3rem 0.5rem;
      }
      .wl {
        display: flex;
        gap: 0.5rem;
        align-items: center;
        flex-wrap: wrap;
      }
      .wl input {
        width: 6rem;
      }
    `,
  ];

  constructor() {
    super();
    this.people = [];
    this.watchlists = [];
    this.open = new Map();
    this.pending = [];
    this.busy = false;
  }

  override connectedCallback() {
    super.connectedCallback();
    void this.load();
  }

  private async load() {
    try {
      const [people, watchlists] = await Promise.all([
        this.api.get<{ items: Person[] }>("/v1/people"),
        this.api.get<{ items: Watchlist[] }>("/v1/watchlists"),
      ]);
      this.people = people.items;
      this.watchlists = watchlists.items;
      for (const id of this.open.keys()) void this.details(id, true);
    } catch (err) {
      this.message = { text: (err as Error).message, error: true };
    }
  }

  private async details(id: string, keepOpen = false) {
    if (this.open.has(id) && !keepOpen) {
      const next = new Map(this.open);
      next.delete(id);
      this.open = next;
      return;
    }
    try {
      this.open = new Map(this.open).set(id, await this.api.get<PersonDetails>(`/v1/people/${enc(id)}`));
    } catch (err) {
      this.message = { text: (err as Error).message, error: true };
    }
  }

  private add(files: File[]) {
    this.setPending([
      ...this.pending.filter((p) => p.outcome?.ok !== true),
      ...files.map((file) => ({ file, preview: URL.createObjectURL(file) })),
    ]);
  }

  /** Replaces the pending photos, releasing the previews of those that left (each holds the file in memory). */
  private setPending(next: Pending[]) {
    for (const p of this.pending) if (!next.includes(p)) URL.revokeObjectURL(p.preview);
    this.pending = next;
  }

  private async enrol(e: Event) {
    e.preventDefault();
    const form = e.target as HTMLFormElement;
    const value = (name: string) => (form.elements.namedItem(name) as HTMLInputElement).value.trim();
    const id = value("id");
    if (!id || this.pending.length === 0) {
      this.message = { text: "give the person's id and at least one photo", error: true };
      return;
    }
    const body = new FormData();
    body.append("id", id);
    if (value("name")) body.append("name", value("name"));
    if (value("watchlist")) body.append("watchlist", value("watchlist"));
    const sent = this.pending.filter((p) => !p.outcome?.ok);
    for (const p of sent) body.append("photo", p.file, p.file.name);
    this.busy = true;
    let outcomes: PhotoOutcome[] = [];
    try {
      const result = await this.api.upload<EnrolResult>("/v1/people", body);
      outcomes = result.photos;
      const ok = outcomes.filter((o) => o.ok).length;
      this.message = { text: `${id}: ${ok} of ${outcomes.length} photo(s) enrolled`, error: false };
      await this.load();
    } catch (err) {
      // 422: no photo was taken; the body still lists each photo's reason.
      const photos =
        err instanceof ApiError ? (err.body as { photos?: PhotoOutcome[] } | undefined)?.photos : undefined;
      outcomes = photos ?? [];
      this.message = { text: (err as Error).message, error: true };
    } finally {
      this.busy = false;
    }
    // Outcomes come back in the order the photos were sent, named as sent.
    this.pending = this.pending.map((p) => {
      const i = sent.indexOf(p);
      return i >= 0 && outcomes[i] ? { ...p, outcome: outcomes[i] } : p;
    });
  }

  private async removePhoto(person: string, source: string) {
    try {
      await this.api.del(`/v1/people/${enc(person)}/photos/${enc(source.split(/[\\/]/).pop() ?? source)}`);
      await this.load();
    } catch (err) {
      this.message = { text: (err as Error).message, error: true };
    }
  }

  private async removePerson(id: string) {
    if (!confirm(`Remove ${id}, their photos and exclusions?`)) return;
    try {
      await this.api.del(`/v1/people/${enc(id)}`);
      const next = new Map(this.open);
      next.delete(id);
      this.open = next;
      await this.load();
    } catch (err) {
      this.message = { text: (err as Error).message, error: true };
    }
  }

  private async setThreshold(id: string, raw: string) {
    const threshold = raw.trim() === "" ? null : Number(raw);
    if (threshold !== null && !(threshold >= -1 && threshold <= 1)) {
      this.message = { text: "a threshold is a cosine similarity between -1 and 1, or empty", error: true };
      return;
    }
    try {
      await this.api.put(`/v1/watchlists/${enc(id)}/threshold`, { threshold });
      this.message = { text: `${id}: threshold ${threshold ?? "calibrated"}`, error: false };
      await this.load();
    } catch (err) {
      this.message = { text: (err as Error).message, error: true };
    }
  }

  private renderPerson(p: Person) {
    const d = this.open.get(p.id);
    const admin = may(this.me, "admin");
    return html`<article class="panel person" data-person=${p.id}>
      <div class="row">
        <h3>${p.name}</h3>
        <span class="tag">${p.id}</span>
        <span class="tag">${p.watchlistId}</span>
        <span class="muted">${p.faces} photo(s)</span>
        <button @click=${() => this.details(p.id)} aria-expanded=${d ? "true" : "false"}>
          ${d ? "Hide" : "Photos"}
        </button>
        ${admin ? html`<button class="danger" @click=${() => this.removePerson(p.id)}>Remove</button>` : nothing}
      </div>
      ${
        d
          ? html`<div class="photos">
                ${d.photos.map(
                  (ph) =>
                    html`<div class="photo" data-photo=${ph.source}>
                      ${
                        ph.cropUrl
                          ? html`<vigil-img .api=${this.api} src=${ph.cropUrl} alt=${ph.source}></vigil-img>`
                          : nothing
                      }
                      <span>${ph.source.split(/[\\/]/).pop()}</span>
                      ${
                        admin
                          ? html`<button
                              aria-label="remove photo ${ph.source}"
                              @click=${() => this.removePhoto(p.id, ph.source)}
                            >
                              ✕
                            </button>`
                          : nothing
                      }
                    </div>`,
                )}
              </div>
              ${
                d.exclusions.length
                  ? html`<div class="muted" data-field="exclusions">
                      ${d.exclusions.length} exclusion(s):
                      ${d.exclusions.map((x) => x.note || x.id).join("; ")}
                    </div>`
                  : nothing
              }`
          : nothing
      }
    </article>`;
  }

  private renderEnrol() {
    return html`<form class="panel" @submit=${this.enrol} aria-labelledby="enrol-title">
      <h3 id="enrol-title">Enrol a person</h3>
      <label for="id">Person id</label>
      <input id="id" name="id" required maxlength="200" />
      <label for="name">Display name</label>
      <input id="name" name="name" maxlength="200" />
      <label for="watchlist">Watchlist</label>
      <input id="watchlist" name="watchlist" list="watchlists" placeholder="default" />
      <datalist id="watchlists">
        ${this.watchlists.map((w) => html`<option value=${w.id}></option>`)}
      </datalist>
      <vigil-drop-zone
        multiple
        label="Drop photos of the person here (several), or press to choose"
        @files=${(e: CustomEvent<File[]>) => this.add(e.detail)}
      ></vigil-drop-zone>
      <ul class="files" aria-label="photos to enrol">
        ${this.pending.map(
          (p) =>
            html`<li data-file=${p.file.name}>
              <img src=${p.preview} alt="" />
              <div>
                <div class="file-name">${p.file.name}</div>
                ${
                  p.outcome
                    ? p.outcome.ok
                      ? html`<div class="ok" data-field="outcome">enrolled</div>`
                      : html`<div class="error" data-field="outcome">refused: ${p.outcome.reason}</div>`
                    : html`<div class="muted">not sent yet</div>`
                }
              </div>
              <button
                type="button"
                aria-label="drop ${p.file.name}"
                @click=${() => this.setPending(this.pending.filter((q) => q !== p))}
              >
                ✕
              </button>
            </li>`,
        )}
      </ul>
      <button class="primary" type="submit" ?disabled=${this.busy}>
        ${this.busy ? "Enrolling…" : "Enrol"}
      </button>
    </form>`;
  }

  override render() {
    const admin = may(this.me, "admin");
    return html`<h2>Watchlist</h2>
      ${
        this.message
          ? html`<p class=${this.message.error ? "error" : "ok"} role="status">${this.message.text}</p>`
          : nothing
      }
      <section class="panel" aria-label="watchlists">
        ${this.watchlists.map(
          (w) =>
            html`<div class="wl" data-watchlist=${w.id}>
              <strong>${w.id}</strong><span class="muted">${w.people} people · threshold</span>
              ${
                admin
                  ? html`<input
                      aria-label="threshold of ${w.id}"
                      placeholder="calibrated"
                      .value=${w.threshold === null ? "" : String(w.threshold)}
                      @change=${(e: Event) => this.setThreshold(w.id, (e.target as HTMLInputElement).value)}
                    />`
                  : html`<span>${w.threshold ?? "calibrated"}</span>`
              }
            </div>`,
        )}
        ${this.watchlists.length === 0 ? html`<span class="muted">no watchlists yet</span>` : nothing}
      </section>
      <div class="layout" style="margin-top:1rem">
        <div style="display:grid;gap:.6rem">
          ${this.people.map((p) => this.renderPerson(p))}
          ${this.people.length === 0 ? html`<p class="muted">Nobody is enrolled.</p>` : nothing}
        </div>
        ${admin ? this.renderEnrol() : nothing}
      </div>`;
  }
}
customElements.define("vigil-watchlist", VigilWatchlist);

declare global {
  interface HTMLElementTagNameMap {
    "vigil-watchlist": VigilWatchlist;
  }
}
