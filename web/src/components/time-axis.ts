import { LitElement, css, html, svg } from "lit";
import { time } from "../format.ts";

export interface AxisItem {
  lane: string;
  start: number;
  end: number;
  label: string;
  /** Highlighted (e.g. a hit above the threshold). */
  strong?: boolean;
}

/** One lane per camera, time left to right: where and when, at a glance. */
export class VigilTimeAxis extends LitElement {
  static override properties = { items: { attribute: false }, lanes: { attribute: false } };
  declare items: AxisItem[];
  declare lanes: string[];

  static override styles = css`
    :host {
      display: block;
    }
    svg {
      width: 100%;
      height: auto;
      display: block;
    }
    .lane {
      fill: #8b96a8;
      font-size: 12px;
    }
    .tick {
      fill: #8b96a8;
      font-size: 11px;
    }
    line {
      stroke: #2d3643;
    }
    rect.item {
      fill: #4c6a8f;
    }
    rect.item.strong {
      fill: #4cc2ff;
    }
  `;

  constructor() {
    super();
    this.items = [];
    this.lanes = [];
  }

  override render() {
    const lanes = this.lanes.length ? this.lanes : [...new Set(this.items.map((i) => i.lane))].sort();
    if (this.items.length === 0) return html``;
    const W = 1000;
    const left = 120;
    const right = 16;
    const laneH = 28;
    const top = 8;
    const H = top + lanes.length * laneH + 28;
    let min = Math.min(...this.items.map((i) => i.start));
    let max = Math.max(...this.items.map((i) => i.end));
    if (max - min < 10_000) {
      const mid = (min + max) / 2;
      min = mid - 5000;
      max = mid + 5000;
    }
    const pad = (max - min) * 0.03;
    min -= pad;
    max += pad;
    const x = (t: number) => left + ((t - min) / (max - min)) * (W - left - right);
    const ticks = Array.from({ length: 5 }, (_, i) => min + ((max - min) * i) / 4);
    return html`<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="sightings by camera over time">
      ${lanes.map(
        (lane, i) => svg`
          <text class="lane" x="4" y=${top + i * laneH + 18}>${lane}</text>
          <line x1=${left} x2=${W - right} y1=${top + i * laneH + laneH} y2=${top + i * laneH + laneH}></line>`,
      )}
      ${[...this.items]
        .sort((a, b) => Number(!!a.strong) - Number(!!b.strong))
        .map((item) => {
          const lane = lanes.indexOf(item.lane);
          const x0 = x(item.start);
          const w = Math.max(6, x(item.end) - x0);
          return svg`<rect class="item ${item.strong ? "strong" : ""}" x=${x0} y=${top + lane * laneH + 6} width=${w} height=${laneH - 12} rx="3"><title>${item.label}</title></rect>`;
        })}
      ${ticks.map(
        (t, i) =>
          svg`<text class="tick" x=${x(t)} y=${H - 8} text-anchor=${i === 0 ? "start" : i === ticks.length - 1 ? "end" : "middle"}>${time(t)}</text>`,
      )}
    </svg>`;
  }
}
customElements.define("vigil-time-axis", VigilTimeAxis);

declare global {
  interface HTMLElementTagNameMap {
    "vigil-time-axis": VigilTimeAxis;
  }
}
