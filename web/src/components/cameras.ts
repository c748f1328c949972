import { LitElement, css, html, nothing } from "lit";
import { enc, type Api } from "../api.ts";
import { ago, time } from "../format.ts";
import { may } from "../roles.ts";
import { shared } from "../styles.ts";
import type { Camera, Me, Page, Sighting } from "../types.ts";
import "./auth-img.ts";

const POLL_MS = 2000;
const SNAPSHOT_MS = 5000;
/** Faces per minute come from the sightings route, which is audited: read it once a minute, not every poll. */
const FACES_MS = 60_000;

/** Cameras: state with its reason, frame rate (from the frame counter between polls), drops, snapshot, faces/min. */
export class VigilCameras extends LitElement {
  static override properties = {
    api: { attribute: false },
    me: { attribute: false },
    cameras: { state: true },
    error: { state: true },
    snapshotTick: { state: true },
    facesPerMin: { state: true },
  };
  declare api: Api;
  declare me: Me;
  declare cameras: Camera[];
  declare error: string | undefined;
  declare snapshotTick: number;
  declare facesPerMin: Map<string, number>;
  private fps = new Map<string, number>();
  /** The previous status record of each camera: its frame counter moves with each record, not each poll. */
  private last = new Map<string, { ts: number; frames: number }>();
  private timers: ReturnType<typeof setInterval>[] = [];

  static override styles = [
    shared,
    css`
      .cam {
        display: grid;
        gap: 0.4rem;
      }
      .snap {
        width: 100%;
        aspect-ratio: 16 / 9;
        height: auto;
        border-radius: 6px;
      }
      .state {
        font-weight: 600;
        text-transform: uppercase;
        font-size: 0.8rem;
        padding: 0.1rem 0.5rem;
        border-radius: 999px;
        border: 1px solid currentColor;
      }
      .s-live {
        color: var(--ok);
      }
      .s-stalled,
      .s-backoff,
      .s-connecting {
        color: var(--warn);
      }
      .s-error {
        color: var(--bad);
      }
      .s-ended,
      .s-unknown {
        color: var(--muted);
      }
      dl {
        display: grid;
        grid-template-columns: auto 1fr;
        gap: 0.1rem 0.75rem;
        margin: 0;
      }
      dt {
        color: var(--muted);
      }
      dd {
        margin: 0;
      }
    `,
  ];

  constructor() {
    super();
    this.cameras = [];
    this.snapshotTick = 1;
    this.facesPerMin = new Map();
  }

  override connectedCallback() {
    super.connectedCallback();
    void this.poll();
    void this.faces();
    this.timers.push(setInterval(() => void this.poll(), POLL_MS));
    this.timers.push(setInterval(() => this.snapshotTick++, SNAPSHOT_MS));
    this.timers.push(setInterval(() => void this.faces(), FACES_MS));
  }

  override disconnectedCallback() {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    super.disconnectedCallback();
  }

  private async poll() {
    try {
      const { items } = await this.api.get<{ items: Camera[] }>("/v1/cameras");
      for (const c of items) {
        if (c.ts === null) continue;
        const prev = this.last.get(c.id);
        if (prev && c.ts > prev.ts)
          this.fps.set(c.id, ((c.framesIn - prev.frames) * 1000) / (c.ts - prev.ts));
        if (!prev || c.ts > prev.ts) this.last.set(c.id, { ts: c.ts, frames: c.framesIn });
        // A camera that is not live delivers nothing, whatever its last two records said.
        if (c.state !== "live") this.fps.set(c.id, 0);
      }
      this.cameras = items;
      this.error = undefined;
    } catch (err) {
      this.error = (err as Error).message;
    }
  }

  private async faces() {
    if (!may(this.me, "operator")) return;
    const since = new Date(Date.now() - 60_000).toISOString();
    const counts = new Map<string, number>();
    try {
      let cursor: string | null = null;
      do {
        const page: Page<Sighting> = await this.api.get<Page<Sighting>>("/v1/sightings", {
          since,
          limit: 500,
          cursor,
        });
        for (const s of page.items) counts.set(s.cameraId, (counts.get(s.cameraId) ?? 0) + s.faces);
        cursor = page.nextCursor;
      } while (cursor);
      this.facesPerMin = counts;
    } catch {
      /* shown as unknown */
    }
  }

  private card(c: Camera) {
    const fps = this.fps.get(c.id);
    const faces = may(this.me, "operator") ? String(this.facesPerMin.get(c.id) ?? 0) : "— (operator)";
    return html`<article class="panel cam" data-camera=${c.id} aria-label="camera ${c.id}">
      <div class="row">
        <h3>${c.id}</h3>
        <span class="state s-${c.state}" data-field="state">${c.state}</span>
      </div>
      ${
        c.lastError && c.state !== "live"
          ? html`<div class="error" data-field="reason">${c.lastError}</div>`
          : nothing
      }
      ${
        // Asked to record but cannot: the operator learns here why its alerts come without video.
        c.recording && !c.recording.on && c.recording.reason
          ? html`<div class="muted" data-field="recording">no clips: ${c.recording.reason}</div>`
          : nothing
      }
      ${
        c.snapshotTs !== null
          ? html`<vigil-img
              class="snap"
              .api=${this.api}
              src="/v1/cameras/${enc(c.id)}/snapshot"
              .refresh=${this.snapshotTick}
              alt="latest frame of ${c.id}"
            ></vigil-img>`
          : html`<div class="muted">no snapshot (api.snapshots off, or no frame yet)</div>`
      }
      <dl>
        <dt>frame rate</dt>
        <dd data-field="fps">${fps === undefined ? "…" : `${fps.toFixed(1)} fps`}</dd>
        <dt>frames</dt>
        <dd>${c.framesIn}</dd>
        <dt>dropped</dt>
        <dd data-field="drops">${c.framesDropped}</dd>
        <dt>undecodable</dt>
        <dd>${c.framesUndecodable}</dd>
        <dt>reconnects</dt>
        <dd>${c.reconnects}</dd>
        <dt>faces / min</dt>
        <dd data-field="faces">${faces}</dd>
        <dt>last status</dt>
        <dd>${c.ts ? html`${time(c.ts)} (${ago(c.ts)})` : "—"}</dd>
        <dt>snapshot</dt>
        <dd>${time(c.snapshotTs)}</dd>
      </dl>
    </article>`;
  }

  override render() {
    return html`<h2>Cameras</h2>
      ${this.error ? html`<p class="error" role="alert">${this.error}</p>` : nothing}
      ${this.cameras.length === 0 && !this.error ? html`<p class="muted">No cameras reported yet.</p>` : nothing}
      <div class="grid">${this.cameras.map((c) => this.card(c))}</div>`;
  }
}
customElements.define("vigil-cameras", VigilCameras);

declare global {
  interface HTMLElementTagNameMap {
    "vigil-cameras": VigilCameras;
  }
}
