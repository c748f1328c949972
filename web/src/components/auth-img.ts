import { LitElement, css, html, nothing } from "lit";
import type { Api } from "../api.ts";

/**
 * An image from an API route (crop, snapshot), fetched with the operator's key and shown from a blob: URL.
 * `refresh` changes make it fetch again (snapshots).
 */
export class VigilImg extends LitElement {
  static override properties = {
    api: { attribute: false },
    src: {},
    alt: {},
    refresh: { type: Number },
    url: { state: true },
    failed: { state: true },
  };
  declare api: Api | undefined;
  declare src: string;
  declare alt: string;
  declare refresh: number;
  declare url: string | undefined;
  declare failed: string | undefined;

  static override styles = css`
    :host {
      display: inline-block;
      width: 96px;
      height: 96px;
      background: #000;
      border-radius: 6px;
      overflow: hidden;
    }
    img {
      width: 100%;
      height: 100%;
      object-fit: cover;
      display: block;
    }
    span {
      display: flex;
      width: 100%;
      height: 100%;
      align-items: center;
      justify-content: center;
      text-align: center;
      font-size: 0.75rem;
      color: #8b96a8;
      padding: 0.25rem;
    }
  `;

  constructor() {
    super();
    this.src = "";
    this.alt = "";
    this.refresh = 0;
  }

  override updated(changed: Map<string, unknown>) {
    if (changed.has("src") || changed.has("api") || changed.has("refresh")) void this.load();
  }

  private async load() {
    if (!this.api || !this.src) return;
    const src = this.src;
    try {
      const url = await this.api.image(src, this.refresh > 0);
      if (src !== this.src) return;
      if (this.refresh > 0 && this.url && this.url !== url) URL.revokeObjectURL(this.url);
      this.url = url;
      this.failed = undefined;
    } catch (err) {
      if (src === this.src) this.failed = (err as Error).message;
    }
  }

  override render() {
    if (this.failed) return html`<span title=${this.failed}>${this.failed}</span>`;
    if (!this.url) return html`<span aria-hidden="true">…</span>`;
    return html`<img src=${this.url} alt=${this.alt || nothing} />`;
  }
}
customElements.define("vigil-img", VigilImg);

declare global {
  interface HTMLElementTagNameMap {
    "vigil-img": VigilImg;
  }
}
