import { LitElement, css, html, nothing } from "lit";
import { cropOfSighting, type Api } from "../api.ts";
import { duration, score, time, isoTime } from "../format.ts";
import { shared } from "../styles.ts";
import type { Me, Person, Timeline } from "../types.ts";
import "./auth-img.ts";
import "./drop-zone.ts";
import "./follow.ts";
import "./visit-player.ts";
import "./time-axis.ts";

/** The multi-camera track: a person's (or a photo's) visits across cameras, on a time axis and as a list. */
export class VigilTimeline extends LitElement {
  static override properties = {
    api: { attribute: false },
    me: { attribute: false },
    params: { attribute: false },
    people: { state: true },
    timeline: { state: true },
    subject: { state: true },
    busy: { state: true },
    error: { state: true },
  };
  declare api: Api;
  declare me: Me;
  declare params: URLSearchParams;
  declare people: Person[];
  declare timeline: Timeline | undefined;
  declare subject: string | undefined;
  declare busy: boolean;
  declare error: string | undefined;

  static override styles = [
    shared,
    css`
      .pick {
        display: grid;
        grid-template-columns: minmax(0, 1fr) 260px;
        gap: 1rem;
        align-items: center;
      }
      .pick label {
        display: grid;
        gap: 0.3rem;
        max-width: 360px;
      }
      ol.visits {
        list-style: none;
        padding: 0;
        display: grid;
        gap: 0.5rem;
      }
      ol.visits li > div {
        display: grid;
        grid-template-columns: 2rem auto minmax(0, 1fr);
        gap: 0.75rem;
        align-items: center;
      }
      .step {
        font-size: 1.3rem;
        font-weight: 700;
        color: var(--accent);
        text-align: right;
      }
      .camera {
        font-weight: 600;
        font-size: 1.05rem;
      }
    `,
  ];

  constructor() {
    super();
    this.people = [];
    this.busy = false;
    this.params = new URLSearchParams();
  }

  override connectedCallback() {
    super.connectedCallback();
    void this.api
      .get<{ items: Person[] }>("/v1/people")
      .then((r) => (this.people = r.items))
      .catch(() => {});
  }

  override updated(changed: Map<string, unknown>) {
    if (changed.has("params")) {
      const person = this.params.get("person");
      if (person && person !== this.subject) void this.ofPerson(person);
    }
  }

  private async run(subject: string, load: () => Promise<Timeline>) {
    this.busy = true;
    this.error = undefined;
    this.subject = subject;
    try {
      this.timeline = await load();
    } catch (err) {
      this.error = (err as Error).message;
      this.timeline = undefined;
    } finally {
      this.busy = false;
    }
  }

  private ofPerson(id: string) {
    if (location.hash !== `#/timeline?person=${encodeURIComponent(id)}`)
      history.replaceState(null, "", `#/timeline?person=${encodeURIComponent(id)}`);
    return this.run(id, () => this.api.get<Timeline>("/v1/timeline", { person: id }));
  }

  private ofPhoto(files: File[]) {
    const f = files[0];
    if (!f) return;
    const body = new FormData();
    body.append("photo", f, f.name);
    return this.run(`photo ${f.name}`, () => this.api.upload<Timeline>("/v1/timeline", body));
  }

  override render() {
    const t = this.timeline;
    const cameras = t ? [...new Set(t.visits.map((v) => v.cameraId))] : [];
    return html`<h2>Timeline</h2>
      <div class="panel pick">
        <label
          >A person on the watchlist
          <select
            aria-label="person"
            @change=${(e: Event) => {
              const v = (e.target as HTMLSelectElement).value;
              if (v) void this.ofPerson(v);
            }}
          >
            <option value="">choose…</option>
            ${this.people.map(
              (p) =>
                html`<option value=${p.id} ?selected=${this.subject === p.id}>${p.name} (${p.id})</option>`,
            )}
          </select></label
        >
        <vigil-drop-zone
          label="…or drop a photo of a face"
          @files=${(e: CustomEvent<File[]>) => void this.ofPhoto(e.detail)}
        ></vigil-drop-zone>
      </div>
      ${this.busy ? html`<p class="muted" role="status">Loading…</p>` : nothing}
      ${this.error ? html`<p class="error" role="alert">${this.error}</p>` : nothing}
      ${
        t
          ? html`<section aria-label="path across cameras" style="margin-top:1rem">
              <p class="muted" role="status">
                ${this.subject}: ${t.visits.length} visit(s) on ${cameras.length} camera(s), ${t.sightings}
                sighting(s)${t.threshold !== undefined ? html`; threshold ${score(t.threshold)}` : nothing}
              </p>
              ${
                t.visits.length
                  ? html`<vigil-time-axis
                      class="panel"
                      .lanes=${cameras}
                      .items=${t.visits.map((v) => ({
                        lane: v.cameraId,
                        start: v.startTs,
                        end: v.endTs,
                        label: `${v.cameraId} ${time(v.startTs)}–${time(v.endTs)}`,
                        strong: true,
                      }))}
                    ></vigil-time-axis>`
                  : nothing
              }
              ${
                // A person's (or unknown identity's) visits can be played; an alert's clip stands in for a visit's own.
                (this.people.some((p) => p.id === this.subject) || /^unknown-/.test(this.subject ?? "")) &&
                t.visits.length
                  ? html`<vigil-visit-player
                        class="panel"
                        .api=${this.api}
                        person=${this.subject ?? ""}
                        .visits=${t.visits}
                      ></vigil-visit-player>
                      <vigil-follow
                        class="panel"
                        .api=${this.api}
                        person=${this.subject ?? ""}
                      ></vigil-follow>`
                  : nothing
              }
              <ol class="visits" aria-label="visits in order">
                ${t.visits.map(
                  (v, i) =>
                    html`<li data-camera=${v.cameraId} data-start=${v.startTs}>
                      <div>
                        <span class="step" aria-hidden="true">${i + 1}</span>
                        ${
                          v.sightings[0]
                            ? html`<vigil-img
                                .api=${this.api}
                                src=${cropOfSighting(v.sightings[0])}
                                alt="face on ${v.cameraId}"
                              ></vigil-img>`
                            : nothing
                        }
                        <div>
                          <div class="camera" data-field="camera">${v.cameraId}</div>
                          <div>
                            <time datetime=${isoTime(v.startTs)}>${time(v.startTs)}</time> –
                            <time datetime=${isoTime(v.endTs)}>${time(v.endTs)}</time>
                            <span class="muted">(${duration(v.endTs - v.startTs)})</span>
                          </div>
                          <div class="muted">
                            ${v.sightings.length} sighting(s), ${v.faces}
                            face(s)${v.score !== null ? `, best score ${score(v.score)}` : ""}
                          </div>
                        </div>
                      </div>
                    </li>`,
                )}
              </ol>
            </section>`
          : nothing
      }`;
  }
}
customElements.define("vigil-timeline", VigilTimeline);

declare global {
  interface HTMLElementTagNameMap {
    "vigil-timeline": VigilTimeline;
  }
}
