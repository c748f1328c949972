import { LitElement, css, html, nothing } from "lit";
import { shared } from "../styles.ts";

/** The API key is the only credential: checked against /v1/me, kept for this tab (or this device, if asked). */
export class VigilSignIn extends LitElement {
  static override properties = { error: {}, busy: { state: true } };
  declare error: string | undefined;
  declare busy: boolean;

  static override styles = [
    shared,
    css`
      :host {
        display: grid;
        place-items: center;
        min-height: 100vh;
      }
      form {
        width: min(420px, 92vw);
        display: grid;
        gap: 0.75rem;
      }
      h1 {
        color: var(--accent);
        letter-spacing: 0.05em;
      }
    `,
  ];

  constructor() {
    super();
    this.busy = false;
  }

  override updated(changed: Map<string, unknown>) {
    if (changed.has("error")) this.busy = false;
  }

  override firstUpdated() {
    this.renderRoot.querySelector<HTMLInputElement>("#key")?.focus();
  }

  private submit(e: Event) {
    e.preventDefault();
    const form = e.target as HTMLFormElement;
    const key = (form.elements.namedItem("key") as HTMLInputElement).value.trim();
    const remember = (form.elements.namedItem("remember") as HTMLInputElement).checked;
    if (!key) return;
    this.busy = true;
    this.dispatchEvent(
      new CustomEvent("sign-in", { detail: { key, remember }, bubbles: true, composed: true }),
    );
  }

  override render() {
    return html`<form class="panel" @submit=${this.submit} aria-labelledby="title">
      <h1 id="title">VIGIL</h1>
      <p class="muted">
        Sign in with an API key (<code>vigil keys create --role operator --name you</code>).
      </p>
      <label for="key">API key</label>
      <input id="key" name="key" type="password" autocomplete="off" spellcheck="false" required />
      <label class="row"><input type="checkbox" name="remember" /> Remember on this device</label>
      <button class="primary" type="submit" ?disabled=${this.busy}>Sign in</button>
      ${this.error ? html`<p class="error" role="alert">${this.error}</p>` : nothing}
    </form>`;
  }
}
customElements.define("vigil-sign-in", VigilSignIn);

declare global {
  interface HTMLElementTagNameMap {
    "vigil-sign-in": VigilSignIn;
  }
}
