import { LitElement, css, html, nothing } from "lit";
import type { Api } from "../api.ts";
import { fromLocalInput, isoTime, score, time } from "../format.ts";
import { shared } from "../styles.ts";
import type { Camera, Me, SearchResult } from "../types.ts";
import "./auth-img.ts";
import "./drop-zone.ts";
import "./time-axis.ts";

/** Where has this face been: a photo, optional cameras and time range; hits as crops and on a time axis. */
export class VigilSearch extends LitElement {
  static override properties = {
    api: { attribute: false },
    me: { attribute: false },
    cameras: { state: true },
    photo: { state: true },
    preview: { state: true },
    result: { state: true },
    busy: { state: true },
    error: { state: true },
  };
  declare api: Api;
  declare me: Me;
  declare cameras: string[];
  declare photo: File | undefined;
  declare preview: string | undefined;
  declare result: SearchResult | undefined;
  declare busy: boolean;
  declare error: string | undefined;

  static override styles = [
    shared,
    css`
      form {
        display: grid;
        grid-template-columns: 200px minmax(0, 1fr);
        gap: 0.75rem;
        align-items: start;
      }
      .filters {
        display: grid;
        gap: 0.5rem;
        grid-template-columns: repeat(auto-fill, minmax(200px, 1fr));
      }
      .filters select {
        width: 100%;
      }
      .probe {
        width: 200px;
        display: grid;
        gap: 0.4rem;
      }
      .probe img {
        width: 100%;
        max-height: 200px;
        object-fit: contain;
        border-radius: 6px;
      }
      ol {
        list-style: none;
        padding: 0;
        display: grid;
        gap: 0.6rem;
        grid-template-columns: repeat(auto-fill, minmax(230px, 1fr));
      }
      li {
        display: grid;
        grid-template-columns: auto minmax(0, 1fr);
        gap: 0.5rem;
      }
      li.same {
        border-color: var(--accent);
      }
    `,
  ];

  constructor() {
    super();
    this.cameras = [];
    this.busy = false;
  }

  override connectedCallback() {
    super.connectedCallback();
    void this.api
      .get<{ items: Camera[] }>("/v1/cameras")
      .then((r) => (this.cameras = r.items.map((c) => c.id)))
      .catch(() => {});
  }

  private choose(files: File[]) {
    const f = files[0];
    if (!f) return;
    if (this.preview) URL.revokeObjectURL(this.preview);
    this.photo = f;
    this.preview = URL.createObjectURL(f);
  }

  private async search(e: Event) {
    e.preventDefault();
    if (!this.photo) {
      this.error = "drop a photo of the face to look for";
      return;
    }
    const form = e.target as HTMLFormElement;
    const body = new FormData();
    const selected = [...(form.elements.namedItem("camera") as HTMLSelectElement).selectedOptions].map(
      (o) => o.value,
    );
    for (const c of selected) body.append("camera", c);
    const since = fromLocalInput((form.elements.namedItem("since") as HTMLInputElement).value);
    const until = fromLocalInput((form.elements.namedItem("until") as HTMLInputElement).value);
    if (since !== undefined) body.append("since", isoTime(since));
    if (until !== undefined) body.append("until", isoTime(until));
    body.append("limit", (form.elements.namedItem("limit") as HTMLSelectElement).value);
    body.append("photo", this.photo, this.photo.name);
    this.busy = true;
    this.error = undefined;
    try {
      this.result = await this.api.upload<SearchResult>("/v1/sightings/search", body);
    } catch (err) {
      this.error = (err as Error).message;
      this.result = undefined;
    } finally {
      this.busy = false;
    }
  }

  override render() {
    const r = this.result;
    return html`<h2>Search by photo</h2>
      <form class="panel" @submit=${this.search}>
        <div class="probe">
          <vigil-drop-zone
            label="Drop a photo of one face, or press to choose"
            @files=${(e: CustomEvent<File[]>) => this.choose(e.detail)}
          ></vigil-drop-zone>
          ${this.preview ? html`<img src=${this.preview} alt="the face searched for" />` : nothing}
        </div>
        <div style="display:grid;gap:.6rem">
          <div class="filters">
            <label
              >Cameras (none: all)
              <select name="camera" multiple size=${Math.min(5, Math.max(2, this.cameras.length))}>
                ${this.cameras.map((c) => html`<option value=${c}>${c}</option>`)}
              </select></label
            >
            <label>From <input type="datetime-local" name="since" step="1" /></label>
            <label>Until <input type="datetime-local" name="until" step="1" /></label>
            <label
              >Results
              <select name="limit">
                ${[20, 50, 100].map((n) => html`<option value=${n}>${n}</option>`)}
              </select></label
            >
          </div>
          <div class="row">
            <button class="primary" type="submit" ?disabled=${this.busy || !this.photo}>
              ${this.busy ? "Searching…" : "Search"}
            </button>
            ${this.error ? html`<span class="error" role="alert">${this.error}</span>` : nothing}
          </div>
        </div>
      </form>
      ${
        r
          ? html`<section aria-label="results" style="margin-top:1rem">
              <p class="muted" role="status">
                ${r.hits.length} sighting(s); ${r.hits.filter((h) => h.samePerson).length} at or above the
                threshold ${score(r.threshold)} (same person at the calibrated false-accept rate)
              </p>
              <vigil-time-axis
                class="panel"
                .items=${r.hits.map((h) => ({
                  lane: h.sighting.cameraId,
                  start: h.sighting.startTs,
                  end: h.sighting.endTs,
                  label: `${h.sighting.cameraId} ${time(h.sighting.startTs)} score ${score(h.score)}`,
                  strong: h.samePerson,
                }))}
              ></vigil-time-axis>
              <ol>
                ${r.hits.map(
                  (h) =>
                    html`<li
                      class="panel ${h.samePerson ? "same" : ""}"
                      data-sighting=${h.sighting.id}
                      data-camera=${h.sighting.cameraId}
                      data-start=${h.sighting.startTs}
                    >
                      <vigil-img
                        .api=${this.api}
                        src=${h.sighting.cropUrl}
                        alt="face on ${h.sighting.cameraId}"
                      ></vigil-img>
                      <div>
                        <div>
                          <strong data-field="score">${score(h.score)}</strong>
                          ${h.samePerson ? "✓ same person" : ""}
                        </div>
                        <div data-field="camera">${h.sighting.cameraId}</div>
                        <time data-field="time" datetime=${isoTime(h.sighting.startTs)}
                          >${time(h.sighting.startTs)}</time
                        >
                        ${
                          h.sighting.match
                            ? html`<div class="muted">matched ${h.sighting.match.name}</div>`
                            : html`<div class="muted">not on a watchlist</div>`
                        }
                      </div>
                    </li>`,
                )}
              </ol>
            </section>`
          : nothing
      }`;
  }
}
customElements.define("vigil-search", VigilSearch);

declare global {
  interface HTMLElementTagNameMap {
    "vigil-search": VigilSearch;
  }
}
