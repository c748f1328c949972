import { LitElement, css, html, nothing } from "lit";
import type { Api } from "../api.ts";

const clock = (s: number) => `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, "0")}`;

/**
 * The video around an alert or sighting, loaded when asked for (a clip is a few MB): played from a second before
 * the face, with where the face is in it, and why it is short when the camera dropped.
 */
export class VigilClip extends LitElement {
  static override properties = {
    api: { attribute: false },
    src: {},
    at: { type: Number },
    clip: { state: true },
    failed: { state: true },
    loading: { state: true },
  };
  declare api: Api | undefined;
  declare src: string;
  /** The face's wall-clock time (ms). */
  declare at: number;
  declare clip: { url: string; start: number; end: number; short: string | null } | undefined;
  declare failed: string | undefined;
  declare loading: boolean;

  static override styles = css`
    video {
      display: block;
      width: 100%;
      max-width: 480px;
      border-radius: 6px;
      background: #000;
    }
    .note {
      font-size: 0.8rem;
      color: #8b96a8;
    }
    .error {
      font-size: 0.8rem;
      color: #f3a5a5;
    }
  `;

  constructor() {
    super();
    this.src = "";
    this.at = 0;
    this.loading = false;
  }

  override disconnectedCallback() {
    super.disconnectedCallback();
    if (this.clip) URL.revokeObjectURL(this.clip.url);
  }

  private async load() {
    if (!this.api || !this.src || this.loading) return;
    this.loading = true;
    this.failed = undefined;
    try {
      this.clip = await this.api.clip(this.src);
    } catch (err) {
      this.failed = (err as Error).message;
    } finally {
      this.loading = false;
    }
  }

  /** From a second before the face (or the start, if the clip begins later). */
  private seek(e: Event) {
    const video = e.target as HTMLVideoElement;
    if (this.clip) video.currentTime = Math.max(0, (this.at - this.clip.start) / 1000 - 1);
  }

  override render() {
    if (this.clip) {
      const face = Math.max(0, (this.at - this.clip.start) / 1000);
      return html`<video
          src=${this.clip.url}
          controls
          muted
          playsinline
          autoplay
          @loadedmetadata=${this.seek}
        ></video>
        <div class="note" data-field="clip-note">
          face at ${clock(face)} of ${clock((this.clip.end - this.clip.start) / 1000)}
          ${this.clip.short ? html` · ${this.clip.short}` : nothing}
        </div>`;
    }
    return html`<button @click=${() => this.load()} ?disabled=${this.loading}>
        ${this.loading ? "Loading clip…" : "▶ Clip"}
      </button>
      ${this.failed ? html`<div class="error" role="status">${this.failed}</div>` : nothing}`;
  }
}
customElements.define("vigil-clip", VigilClip);

declare global {
  interface HTMLElementTagNameMap {
    "vigil-clip": VigilClip;
  }
}
