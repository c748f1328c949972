import { LitElement, css, html } from "lit";

/**
 * Photos by drag-and-drop, or by the file picker behind the same button (keyboard: Enter or Space). Fires
 * `files` with the chosen images.
 */
export class VigilDropZone extends LitElement {
  static override properties = {
    multiple: { type: Boolean },
    label: {},
    over: { state: true },
  };
  declare multiple: boolean;
  declare label: string;
  declare over: boolean;

  static override styles = css`
    button {
      display: block;
      width: 100%;
      min-height: 88px;
      border: 2px dashed #2d3643;
      border-radius: 8px;
      background: #161b22;
      color: #8b96a8;
      font: inherit;
      cursor: pointer;
      padding: 1rem;
    }
    button.over,
    button:hover {
      border-color: #4cc2ff;
      color: #d9dee7;
    }
    button:focus-visible {
      outline: 2px solid #4cc2ff;
      outline-offset: 2px;
    }
    input {
      display: none;
    }
  `;

  constructor() {
    super();
    this.multiple = false;
    this.label = "Drop photos here, or press to choose";
    this.over = false;
  }

  private emit(list: FileList | null | undefined) {
    const files = [...(list ?? [])].filter((f) => f.type.startsWith("image/") || f.type === "");
    if (files.length === 0) return;
    this.dispatchEvent(
      new CustomEvent<File[]>("files", {
        detail: this.multiple ? files : files.slice(0, 1),
        bubbles: true,
        composed: true,
      }),
    );
  }

  override render() {
    return html`<button
        type="button"
        class=${this.over ? "over" : ""}
        aria-label=${this.label}
        @click=${() => this.renderRoot.querySelector("input")?.click()}
        @dragover=${(e: DragEvent) => {
          e.preventDefault();
          this.over = true;
        }}
        @dragleave=${() => (this.over = false)}
        @drop=${(e: DragEvent) => {
          e.preventDefault();
          this.over = false;
          this.emit(e.dataTransfer?.files);
        }}
      >
        ${this.label}
      </button>
      <input
        type="file"
        accept="image/*"
        ?multiple=${this.multiple}
        @change=${(e: Event) => {
          const input = e.target as HTMLInputElement;
          this.emit(input.files);
          input.value = "";
        }}
      />`;
  }
}
customElements.define("vigil-drop-zone", VigilDropZone);

declare global {
  interface HTMLElementTagNameMap {
    "vigil-drop-zone": VigilDropZone;
  }
}
