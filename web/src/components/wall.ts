import { LitElement, css, html, nothing } from "lit";
import { ApiError, enc, type Api } from "../api.ts";
import type { AlertFeed } from "../alert-feed.ts";
import { score, time, ago } from "../format.ts";
import { shared } from "../styles.ts";
import type { Alert, Me, PersonDetails } from "../types.ts";
import { may } from "../roles.ts";
import "./auth-img.ts";
import "./clip.ts";

type Cue = "visual" | "sound" | "both" | "none";
const CUE_KEY = "vigil.cue";

/** A short two-tone chime made on the spot (nothing is downloaded); browsers allow it after a first click. */
function chime() {
  try {
    const ctx = new AudioContext();
    const gain = ctx.createGain();
    gain.connect(ctx.destination);
    gain.gain.setValueAtTime(0.001, ctx.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.2, ctx.currentTime + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.001, ctx.currentTime + 0.6);
    for (const [i, f] of [880, 660].entries()) {
      const osc = ctx.createOscillator();
      osc.frequency.value = f;
      osc.connect(gain);
      osc.start(ctx.currentTime + i * 0.18);
      osc.stop(ctx.currentTime + i * 0.18 + 0.2);
    }
    setTimeout(() => void ctx.close(), 1000);
  } catch {
    /* no audio device: the visual cue still works */
  }
}

/** The alert wall: live alerts with both faces, the score against the threshold, acknowledge and "not them". */
export class VigilWall extends LitElement {
  static override properties = {
    api: { attribute: false },
    me: { attribute: false },
    feed: { attribute: false },
    alerts: { state: true },
    onlyOpen: { state: true },
    cue: { state: true },
    fresh: { state: true },
    people: { state: true },
    confirming: { state: true },
    messages: { state: true },
  };
  declare api: Api;
  declare me: Me;
  declare feed: AlertFeed | undefined;
  declare alerts: Alert[];
  declare onlyOpen: boolean;
  declare cue: Cue;
  declare fresh: Set<string>;
  declare people: Map<string, PersonDetails | "unavailable">;
  declare confirming: string | undefined;
  declare messages: Map<string, { text: string; error: boolean }>;

  static override styles = [
    shared,
    css`
      .toolbar {
        display: flex;
        gap: 1rem;
        align-items: center;
        flex-wrap: wrap;
        margin-bottom: 0.75rem;
      }
      ol {
        list-style: none;
        padding: 0;
        margin: 0;
        display: grid;
        gap: 0.6rem;
        grid-template-columns: repeat(auto-fill, minmax(400px, 1fr));
      }
      li.card {
        display: grid;
        grid-template-columns: auto auto minmax(0, 1fr);
        gap: 0.75rem;
        background: var(--panel);
        border: 1px solid var(--line);
        border-left: 4px solid var(--alert);
        border-radius: 8px;
        padding: 0.6rem;
      }
      li.card.acked {
        border-left-color: var(--line);
        opacity: 0.75;
      }
      li.card.fresh {
        animation: flash 1s ease-in-out 3;
      }
      @keyframes flash {
        50% {
          background: #3a1d17;
          border-color: var(--alert);
        }
      }
      figure {
        margin: 0;
        text-align: center;
      }
      figcaption {
        font-size: 0.75rem;
        color: var(--muted);
      }
      .name {
        font-size: 1.1rem;
        font-weight: 600;
      }
      .meter {
        height: 6px;
        background: var(--panel-2);
        border-radius: 3px;
        position: relative;
        margin: 0.3rem 0;
      }
      .meter span {
        position: absolute;
        inset: 0 auto 0 0;
        background: var(--alert);
        border-radius: 3px;
      }
      .meter i {
        position: absolute;
        top: -3px;
        bottom: -3px;
        width: 2px;
        background: var(--text);
      }
      .actions {
        display: flex;
        gap: 0.4rem;
        flex-wrap: wrap;
        margin-top: 0.4rem;
      }
      .placeholder {
        width: 96px;
        height: 96px;
        border-radius: 6px;
        border: 1px dashed var(--line);
        display: flex;
        align-items: center;
        justify-content: center;
        font-size: 0.7rem;
        color: var(--muted);
        padding: 0.2rem;
        text-align: center;
        overflow: hidden;
      }
    `,
  ];

  constructor() {
    super();
    this.alerts = [];
    this.onlyOpen = false;
    this.cue = (localStorage.getItem(CUE_KEY) as Cue | null) ?? "visual";
    this.fresh = new Set();
    this.people = new Map();
    this.messages = new Map();
  }

  private onChange = () => {
    this.alerts = this.feed?.list() ?? [];
    // The person's photos are needed only to name the enrolled file when the alert brings no enrolled crop.
    for (const a of this.alerts) if (!a.personCropUrl) void this.person(a.personId);
  };
  private onNew = (e: Event) => {
    const alert = (e as CustomEvent<Alert>).detail;
    if (this.cue === "visual" || this.cue === "both") {
      this.fresh = new Set([...this.fresh, alert.id]);
      setTimeout(() => {
        const next = new Set(this.fresh);
        next.delete(alert.id);
        this.fresh = next;
      }, 3000);
    }
    if (this.cue === "sound" || this.cue === "both") chime();
  };

  override connectedCallback() {
    super.connectedCallback();
    this.feed?.addEventListener("change", this.onChange);
    this.feed?.addEventListener("new-alert", this.onNew);
    this.onChange();
  }

  override disconnectedCallback() {
    this.feed?.removeEventListener("change", this.onChange);
    this.feed?.removeEventListener("new-alert", this.onNew);
    super.disconnectedCallback();
  }

  /** The person's enrolled photos, for the face beside the alert (operators and admins may read people). */
  private async person(id: string) {
    if (this.people.has(id) || !may(this.me, "operator")) return;
    this.people.set(id, "unavailable");
    try {
      const p = await this.api.get<PersonDetails>(`/v1/people/${enc(id)}`);
      this.people = new Map(this.people).set(id, p);
    } catch {
      /* removed since: the alert still shows its own crop */
    }
  }

  private say(id: string, text: string, error = false) {
    this.messages = new Map(this.messages).set(id, { text, error });
  }

  private async acknowledge(a: Alert, note?: string) {
    try {
      const updated = await this.api.post<Alert>(`/v1/alerts/${enc(a.id)}/ack`, note ? { note } : {});
      this.feed?.upsert(updated);
      this.say(a.id, `acknowledged by ${updated.acknowledged?.by ?? "you"}`);
    } catch (err) {
      this.say(a.id, (err as Error).message, true);
    }
  }

  private async notThisPerson(a: Alert) {
    this.confirming = undefined;
    try {
      await this.api.post(`/v1/exclusions`, { alertId: a.id, note: `not ${a.personName} (alert ${a.id})` });
      this.say(a.id, `marked “not ${a.personName}”: similar faces will not alert for them again`);
      this.people.delete(a.personId);
      void this.person(a.personId);
      if (!a.acknowledged) await this.acknowledge(a, "not this person");
      this.say(a.id, `marked “not ${a.personName}”: similar faces will not alert for them again`);
    } catch (err) {
      this.say(a.id, err instanceof ApiError ? err.message : String(err), true);
    }
  }

  private setCue(cue: Cue) {
    this.cue = cue;
    localStorage.setItem(CUE_KEY, cue);
    if (cue === "sound" || cue === "both") chime();
  }

  private enrolled(a: Alert) {
    if (!may(this.me, "operator"))
      return html`<div class="placeholder">enrolled photos need an operator key</div>`;
    if (a.personCropUrl)
      return html`<vigil-img
        .api=${this.api}
        src=${a.personCropUrl}
        alt="enrolled photo of ${a.personName}"
      ></vigil-img>`;
    const p = this.people.get(a.personId);
    if (!p || p === "unavailable") return html`<div class="placeholder">…</div>`;
    const photo = p.photos.find((ph) => ph.cropUrl) ?? p.photos[0];
    if (!photo) return html`<div class="placeholder">no enrolled photo</div>`;
    if (photo.cropUrl)
      return html`<vigil-img
        .api=${this.api}
        src=${photo.cropUrl}
        alt="enrolled photo of ${a.personName}"
      ></vigil-img>`;
    // Enrolled before crops were kept: only the vector is stored, so name the file instead.
    return html`<div class="placeholder" title=${photo.source}>${photo.source.split(/[\\/]/).pop()}</div>`;
  }

  private card(a: Alert) {
    const pct = (v: number) => `${Math.max(0, Math.min(100, v * 100)).toFixed(1)}%`;
    const message = this.messages.get(a.id);
    return html`<li
      class="card ${a.acknowledged ? "acked" : ""} ${this.fresh.has(a.id) ? "fresh" : ""}"
      data-alert=${a.id}
      data-person=${a.personId}
      data-camera=${a.cameraId}
    >
      <figure>
        <vigil-img .api=${this.api} src=${a.cropUrl} alt="face seen on ${a.cameraId}"></vigil-img>
        <figcaption>seen</figcaption>
      </figure>
      <figure>
        ${this.enrolled(a)}
        <figcaption>enrolled</figcaption>
      </figure>
      <div>
        <div class="name">${a.personName}</div>
        <div class="muted">
          <span data-field="camera">${a.cameraId}</span> ·
          <time datetime=${new Date(a.ts).toISOString()} data-field="time">${time(a.ts)}</time>
          <span>(${ago(a.ts)})</span> · ${a.watchlistId}
        </div>
        <div>
          score <strong data-field="score">${score(a.score)}</strong> / threshold
          <span data-field="threshold">${score(a.threshold)}</span>
        </div>
        <div class="meter" aria-hidden="true">
          <span style="width:${pct(a.score)}"></span><i style="left:${pct(a.threshold)}"></i>
        </div>
        ${
          a.acknowledged
            ? html`<div class="ok" data-field="ack">
                ✓ acknowledged by ${a.acknowledged.by} at
                ${time(a.acknowledged.ts)}${a.acknowledged.note ? ` — ${a.acknowledged.note}` : ""}
              </div>`
            : nothing
        }
        <div class="actions">
          ${
            may(this.me, "operator") && !a.acknowledged
              ? html`<button class="primary" @click=${() => this.acknowledge(a)}>Acknowledge</button>`
              : nothing
          }
          ${
            may(this.me, "admin")
              ? this.confirming === a.id
                ? html`<button class="danger" @click=${() => this.notThisPerson(a)}>
                      Confirm: not ${a.personName}
                    </button>
                    <button @click=${() => (this.confirming = undefined)}>Cancel</button>`
                : html`<button class="danger" @click=${() => (this.confirming = a.id)}>
                    Not this person
                  </button>`
              : nothing
          }
        </div>
        ${a.clipUrl ? html`<vigil-clip .api=${this.api} src=${a.clipUrl} .at=${a.ts} .box=${a.box}></vigil-clip>` : nothing}
        ${
          message
            ? html`<div class=${message.error ? "error" : "muted"} role="status" data-field="message">
                ${message.text}
              </div>`
            : nothing
        }
      </div>
    </li>`;
  }

  override render() {
    const shown = this.onlyOpen ? this.alerts.filter((a) => !a.acknowledged) : this.alerts;
    const open = this.alerts.filter((a) => !a.acknowledged).length;
    return html`
      <div class="toolbar">
        <h2>Alerts</h2>
        <span class="muted">${open} open of ${this.alerts.length}</span>
        <label class="row"
          ><input
            type="checkbox"
            .checked=${this.onlyOpen}
            @change=${(e: Event) => (this.onlyOpen = (e.target as HTMLInputElement).checked)}
          />
          open only</label
        >
        <label class="row"
          >cue
          <select
            aria-label="cue for a new alert"
            @change=${(e: Event) => this.setCue((e.target as HTMLSelectElement).value as Cue)}
          >
            ${(["visual", "sound", "both", "none"] as const).map(
              (c) => html`<option value=${c} ?selected=${c === this.cue}>${c}</option>`,
            )}
          </select></label
        >
      </div>
      ${
        shown.length === 0
          ? html`<p class="muted">No alerts yet. New ones appear here as they happen.</p>`
          : html`<ol aria-live="polite" aria-label="alerts, newest first">
              ${shown.map((a) => this.card(a))}
            </ol>`
      }
    `;
  }
}
customElements.define("vigil-wall", VigilWall);

declare global {
  interface HTMLElementTagNameMap {
    "vigil-wall": VigilWall;
  }
}
