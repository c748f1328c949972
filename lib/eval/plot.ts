import sharp from "sharp";

/** A small line chart, drawn as SVG here and rasterised by sharp (librsvg): no plotting dependency. */
export interface Panel {
  title: string;
  xLabel: string;
  yLabel: string;
  x: number[];
  series: { name: string; y: number[] }[];
  /** Tick labels; both axes are shares shown as percentages unless given. */
  format?: { x?: (v: number) => string; y?: (v: number) => string };
}

const COLOURS = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e"];
const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** A round tick step giving about five ticks up to `v` (1, 2, 2.5 or 5 × a power of ten). */
function niceStep(v: number): number {
  const raw = (v > 0 ? v : 1) / 5;
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 2.5, 5, 10].map((m) => m * p).find((s) => s >= raw)!;
}

const percent = (v: number, step: number) => `${(v * 100).toFixed(step * 100 < 1 ? 1 : 0)}%`;

function panelSvg(p: Panel, ox: number, width: number, height: number): string {
  const m = { left: 58, right: 12, top: 30, bottom: 44 };
  const w = width - m.left - m.right;
  const h = height - m.top - m.bottom;
  const xMin = Math.min(...p.x),
    xMax = Math.max(...p.x);
  const yStep = niceStep(Math.max(...p.series.flatMap((s) => s.y)));
  const yMax = yStep * Math.ceil(Math.max(...p.series.flatMap((s) => s.y)) / yStep || 1);
  const xStep = niceStep(xMax - xMin);
  const X = (v: number) => ox + m.left + ((v - xMin) / (xMax - xMin || 1)) * w;
  const Y = (v: number) => m.top + h - (v / yMax) * h;
  const parts: string[] = [];
  parts.push(
    `<text x="${ox + m.left + w / 2}" y="18" text-anchor="middle" font-size="12" font-weight="bold">${esc(p.title)}</text>`,
  );
  for (let yv = 0; yv <= yMax + 1e-9; yv += yStep) {
    parts.push(
      `<line x1="${ox + m.left}" x2="${ox + m.left + w}" y1="${Y(yv)}" y2="${Y(yv)}" stroke="#e5e5e5"/>`,
      `<text x="${ox + m.left - 6}" y="${Y(yv) + 4}" text-anchor="end" font-size="10">${p.format?.y ? p.format.y(yv) : percent(yv, yStep)}</text>`,
    );
  }
  for (let xv = xMin; xv <= xMax + 1e-9; xv += xStep) {
    parts.push(
      `<text x="${X(xv)}" y="${m.top + h + 14}" text-anchor="middle" font-size="10">${p.format?.x ? p.format.x(xv) : percent(xv, xStep)}</text>`,
    );
  }
  parts.push(
    `<rect x="${ox + m.left}" y="${m.top}" width="${w}" height="${h}" fill="none" stroke="#444"/>`,
    `<text x="${ox + m.left + w / 2}" y="${height - 8}" text-anchor="middle" font-size="11">${esc(p.xLabel)}</text>`,
    `<text transform="translate(${ox + 14},${m.top + h / 2}) rotate(-90)" text-anchor="middle" font-size="11">${esc(p.yLabel)}</text>`,
  );
  p.series.forEach((s, k) => {
    const pts = s.y.map((y, i) => `${X(p.x[i]!).toFixed(1)},${Y(y).toFixed(1)}`).join(" ");
    const colour = COLOURS[k % COLOURS.length]!;
    parts.push(
      `<polyline points="${pts}" fill="none" stroke="${colour}" stroke-width="${k === 0 ? 2.5 : 1.5}"/>`,
    );
  });
  return parts.join("\n");
}

/** Panels side by side with one legend below them (every panel has the same series), as SVG text. */
export function chartSvg(panels: Panel[], panelWidth = 440, panelHeight = 290): string {
  const width = panelWidth * panels.length;
  const names = panels[0]?.series.map((s) => s.name) ?? [];
  const height = panelHeight + 26;
  const legend = names.map((name, k) => {
    const x = 60 + k * 170;
    const colour = COLOURS[k % COLOURS.length]!;
    return (
      `<line x1="${x}" x2="${x + 22}" y1="${panelHeight + 10}" y2="${panelHeight + 10}" stroke="${colour}" stroke-width="${k === 0 ? 3 : 2}"/>` +
      `<text x="${x + 28}" y="${panelHeight + 14}" font-size="11">${esc(name)}</text>`
    );
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans, sans-serif">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    ...panels.map((p, k) => panelSvg(p, k * panelWidth, panelWidth, panelHeight)),
    ...legend,
    `</svg>`,
  ].join("\n");
}

export async function writeChartPng(panels: Panel[], file: string): Promise<void> {
  await sharp(Buffer.from(chartSvg(panels)))
    .png({ compressionLevel: 9, palette: true })
    .toFile(file);
}
