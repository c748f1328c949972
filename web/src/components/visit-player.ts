import { LitElement, css, html, nothing } from "lit";
import { enc, type Api } from "../api.ts";
import { shared } from "../styles.ts";
import type { Alert, Sighting, Visit } from "../types.ts";
import "./clip.ts";

/** A visit's clip, with the face's moment and its box (where known), to draw over it. */
type VisitClip = Awaited<ReturnType<Api["clip"]>> & { at: number; box?: Alert["box"] };

/**
 * A person's visits played one after another, camera after camera: each visit's own clip (cameras that keep
 * sightings' clips), else the clip of the alert raised during it; visits with neither are passed over, and said.
 */
export class VigilVisitPlayer extends LitElement {
  static override properties = {
    api: { attribute: false },
    person: {},
    visits: { attribute: false },
    index: { state: true },
    clip: { state: true },
    note: { state: true },
    playing: { state: true },
  };
  declare api: Api | undefined;
  declare person: string;
  declare visits: Visit[];
  declare index: number;
  declare clip: VisitClip | undefined;
  declare note: string | undefined;
  declare playing: boolean;
  private skipped: string[] = [];

  static override styles = [
    shared,
    css`
      .note {
        font-size: 0.85rem;
        color: #8b96a8;
      }
    `,
  ];

  constructor() {
    super();
    this.person = "";
    this.visits = [];
    this.index = -1;
    this.playing = false;
  }

  override disconnectedCallback() {
    super.disconnectedCallback();
    if (this.clip) URL.revokeObjectURL(this.clip.url);
  }

  /** The clip of visit `v`, or why there is none. */
  private async clipOf(v: Visit): Promise<VisitClip | string> {
    const api = this.api!;
    const first = v.sightings[0];
    if (first)
      try {
        const path = `/v1/sightings/${enc(first)}`;
        // The box only marks the clip: without it (an older sighting, or not read) the clip still plays.
        const [clip, s] = await Promise.all([
          api.clip(`${path}/clip`),
          api.get<Sighting>(path).catch(() => undefined),
        ]);
        return { ...clip, at: s?.boxTs ?? v.startTs, box: s?.box };
      } catch {
        /* no clip of the sighting itself: an alert's, below */
      }
    // An unknown identity has no alerts.
    if (this.person.startsWith("unknown-")) return `no clip of the visit to ${v.cameraId}`;
    const { items } = await api.get<{ items: Alert[] }>("/v1/alerts", {
      person: this.person,
      camera: v.cameraId,
      since: v.startTs - 1000,
      until: v.endTs + 1000,
      limit: 1,
    });
    const alert = items.find((a) => a.clipUrl);
    if (!alert?.clipUrl) return `no clip of the visit to ${v.cameraId}`;
    try {
      return { ...(await api.clip(alert.clipUrl)), at: alert.ts, box: alert.box };
    } catch (err) {
      return (err as Error).message;
    }
  }

  /** Plays from visit `from` on, passing over those without a clip. */
  private async next(from: number) {
    for (let i = from; i < this.visits.length; i++) {
      const found = await this.clipOf(this.visits[i]!);
      if (typeof found === "string") {
        this.skipped.push(`${this.visits[i]!.cameraId}: ${found}`);
        continue;
      }
      if (this.clip) URL.revokeObjectURL(this.clip.url);
      this.clip = found;
      this.index = i;
      return;
    }
    this.playing = false;
    this.note = this.skipped.length ? `passed over: ${this.skipped.join("; ")}` : "every visit played";
  }

  private start() {
    this.playing = true;
    this.skipped = [];
    this.note = undefined;
    void this.next(0);
  }

  override render() {
    const v = this.visits[this.index];
    return html`${
      this.playing && this.clip && v
        ? html`<vigil-clip
              .api=${this.api}
              .clip=${this.clip}
              .at=${this.clip.at}
              .box=${this.clip.box}
              @ended=${() => void this.next(this.index + 1)}
            ></vigil-clip>
            <div class="note" data-field="playing">
              visit ${this.index + 1} of ${this.visits.length} · ${v.cameraId}
            </div>`
        : html`<button @click=${() => this.start()} ?disabled=${this.playing || this.visits.length === 0}>
            ▶ Play the visits
          </button>`
    }
    ${this.note ? html`<div class="note" role="status" data-field="player-note">${this.note}</div>` : nothing}`;
  }
}
customElements.define("vigil-visit-player", VigilVisitPlayer);

declare global {
  interface HTMLElementTagNameMap {
    "vigil-visit-player": VigilVisitPlayer;
  }
}
