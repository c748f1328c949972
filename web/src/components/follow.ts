import { LitElement, css, html, nothing } from "lit";
import { enc, type Api } from "../api.ts";
import { shared } from "../styles.ts";
import { ago, time } from "../format.ts";
import type { Sighting } from "../types.ts";
import "./auth-img.ts";

interface FollowView {
  follow: { personId: string; until: number; by: string } | null;
  sightings: Sighting[];
  next: { cameraId: string; transitS: number | null }[];
}

/**
 * Following a person live: while on, every pass of theirs alerts past the cool-down; their sightings on any camera
 * appear here newest first (polled), with where the camera map says they may appear next.
 */
export class VigilFollow extends LitElement {
  static override properties = {
    api: { attribute: false },
    person: {},
    view: { state: true },
    error: { state: true },
  };
  declare api: Api | undefined;
  declare person: string;
  declare view: FollowView | undefined;
  declare error: string | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;

  static override styles = [
    shared,
    css`
      ol {
        list-style: none;
        padding: 0;
        display: grid;
        gap: 0.4rem;
      }
      li {
        display: flex;
        gap: 0.6rem;
        align-items: center;
      }
      vigil-img {
        width: 48px;
        height: 48px;
      }
      .next {
        font-weight: 600;
      }
      .muted {
        color: #8b96a8;
        font-size: 0.85rem;
      }
    `,
  ];

  constructor() {
    super();
    this.person = "";
  }

  override connectedCallback() {
    super.connectedCallback();
    void this.refresh();
  }

  override disconnectedCallback() {
    super.disconnectedCallback();
    this.poll(false);
  }

  override updated(changed: Map<string, unknown>) {
    if (changed.has("person") && changed.get("person") !== undefined) void this.refresh();
  }

  private poll(on: boolean) {
    if (this.timer) clearInterval(this.timer);
    this.timer = on ? setInterval(() => void this.refresh(), 2000) : undefined;
  }

  private async refresh() {
    if (!this.api || !this.person) return;
    try {
      this.view = await this.api.get<FollowView>(`/v1/follows/${enc(this.person)}`);
      this.error = undefined;
      this.poll(this.view.follow !== null);
    } catch (err) {
      this.error = (err as Error).message;
    }
  }

  private async toggle() {
    try {
      if (this.view?.follow) await this.api!.del(`/v1/follows/${enc(this.person)}`);
      else await this.api!.put(`/v1/follows/${enc(this.person)}`, { forS: 3600 });
      await this.refresh();
    } catch (err) {
      this.error = (err as Error).message;
    }
  }

  override render() {
    const v = this.view;
    const following = !!v?.follow;
    return html`<button class=${following ? "" : "primary"} @click=${() => void this.toggle()}>
        ${following ? "Stop following" : "Follow live"}
      </button>
      ${this.error ? html`<div class="error" role="alert">${this.error}</div>` : nothing}
      ${
        following && v
          ? html`<div data-field="following" class="muted">
                following until ${time(v.follow!.until)}: every pass alerts, cool-down or not
              </div>
              ${
                v.next.length
                  ? html`<div data-field="next">
                      may appear next:
                      <span class="next"
                        >${v.next
                          .map((n) => `${n.cameraId}${n.transitS !== null ? ` (~${n.transitS} s)` : ""}`)
                          .join(", ")}</span
                      >
                    </div>`
                  : nothing
              }
              <ol aria-label="latest sightings, newest first">
                ${v.sightings.map(
                  (s) =>
                    html`<li data-camera=${s.cameraId} data-start=${s.startTs}>
                      <vigil-img .api=${this.api} src=${s.cropUrl} alt="face on ${s.cameraId}"></vigil-img>
                      <span>${s.cameraId}</span>
                      <span class="muted">${time(s.startTs)} (${ago(s.startTs)})</span>
                    </li>`,
                )}
              </ol>`
          : nothing
      }`;
  }
}
customElements.define("vigil-follow", VigilFollow);

declare global {
  interface HTMLElementTagNameMap {
    "vigil-follow": VigilFollow;
  }
}
