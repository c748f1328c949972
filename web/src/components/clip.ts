import { LitElement, css, html, nothing } from "lit";
import { shared } from "../styles.ts";
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
    box: { attribute: false },
    mark: { state: true },
    clip: { attribute: false },
    failed: { state: true },
    loading: { state: true },
  };
  declare api: Api | undefined;
  declare src: string;
  /** The face's wall-clock time (ms). */
  declare at: number;
  /** The face's box in the frame its camera's faces are found in; drawn over the video at the face's time. */
  // `clip` may be given already loaded (a player of several), or is loaded on the button.
  declare box: { x: number; y: number; width: number; height: number } | undefined;
  declare clip: Awaited<ReturnType<Api["clip"]>> | undefined;
  /** Where the box is drawn now (CSS pixels over the video), or nothing away from the face's time. */
  declare mark: { left: number; top: number; width: number; height: number } | undefined;
  declare failed: string | undefined;
  declare loading: boolean;

  static override styles = [
    shared,
    css`
      .player {
        position: relative;
        max-width: 480px;
      }
      .face {
        position: absolute;
        border: 2px solid #ff6b4a;
        border-radius: 4px;
        pointer-events: none;
      }
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
    `,
  ];

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
    this.place(video);
  }

  /**
   * The box over the video while it shows the face's moment (half a second either side): from the detection
   * frame (the camera letterboxed into `frame`) back to the recording's own pixels, then to where the element
   * shows them (object-fit contain).
   */
  private place(video: HTMLVideoElement) {
    const { clip, box } = this;
    const near = clip && Math.abs(clip.start + video.currentTime * 1000 - this.at) <= 500;
    if (!near || !box || !clip.frame || !video.videoWidth) {
      this.mark = undefined;
      return;
    }
    const [vw, vh] = [video.videoWidth, video.videoHeight];
    const fit = Math.min(clip.frame.width / vw, clip.frame.height / vh);
    const padX = (clip.frame.width - vw * fit) / 2;
    const padY = (clip.frame.height - vh * fit) / 2;
    const shown = Math.min(video.clientWidth / vw, video.clientHeight / vh);
    const offX = (video.clientWidth - vw * shown) / 2;
    const offY = (video.clientHeight - vh * shown) / 2;
    const scale = shown / fit;
    this.mark = {
      left: offX + (box.x - padX) * scale,
      top: offY + (box.y - padY) * scale,
      width: box.width * scale,
      height: box.height * scale,
    };
  }

  override render() {
    if (this.clip) {
      const face = Math.max(0, (this.at - this.clip.start) / 1000);
      const m = this.mark;
      const place = (e: Event) => this.place(e.target as HTMLVideoElement);
      return html`<div class="player">
          <video
            src=${this.clip.url}
            controls
            muted
            playsinline
            autoplay
            @loadedmetadata=${this.seek}
            @timeupdate=${place}
            @seeked=${place}
            @ended=${() => this.dispatchEvent(new Event("ended"))}
          ></video>
          ${
            m
              ? html`<div
                  class="face"
                  data-field="face-box"
                  style="left:${m.left}px;top:${m.top}px;width:${m.width}px;height:${m.height}px"
                ></div>`
              : nothing
          }
        </div>
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
