import type { VigilEvent } from "../lib/events/events.ts";

const time = (ts: number) => new Date(ts).toISOString().slice(11, 23);
const round = (v: number, d = 3) => Math.round(v * 10 ** d) / 10 ** d;

/** One JSON line per event (machine-readable), or a readable log line. */
export function eventPrinter(format: "ndjson" | "text", out: NodeJS.WritableStream = process.stdout) {
  return (e: VigilEvent) => {
    if (format === "ndjson") {
      out.write(`${JSON.stringify(e, (_k, v: unknown) => (typeof v === "number" ? round(v, 4) : v))}\n`);
      return;
    }
    out.write(`${describe(e)}\n`);
  };
}

function describe(e: VigilEvent): string {
  switch (e.type) {
    case "camera":
      return `${time(e.ts)} ${e.cameraId} camera ${e.state}${e.lastError ? `: ${e.lastError}` : ""}`;
    case "face":
      return `${time(e.ts)} ${e.cameraId} face ${e.faceId} at ${Math.round(e.box.x)},${Math.round(e.box.y)} ${Math.round(e.box.width)}px (yaw ${Math.round(e.quality.yawDeg)}°, sharpness ${Math.round(e.quality.sharpness)})`;
    case "alert":
      return `${time(e.ts)} ${e.cameraId} ALERT ${e.name} (${e.personId}) score ${round(e.score)} ≥ ${round(e.threshold)}  face ${e.faceId}`;
    case "sighting":
      return `${time(e.startTs)}–${time(e.endTs)} ${e.cameraId} sighting ${e.sightingId} (${e.faces} faces)${e.personId ? ` = ${e.personId} ${round(e.score ?? 0)}` : ""}`;
    case "enrol":
      return e.ok
        ? `enrolled ${e.personId} from ${e.file}`
        : `REJECTED ${e.file} for ${e.personId}: ${e.reason}`;
    case "dead-letter":
      return `${time(e.ts)} dead letter from ${e.sourceTopic} (${e.key}): ${e.reason}`;
    case "warning":
      return `warning: ${e.message}`;
    case "summary": {
      const { type: _t, ...rest } = e;
      return `summary: ${Object.entries(rest)
        .map(([k, v]) => `${k}=${typeof v === "number" ? round(v) : JSON.stringify(v)}`)
        .join(" ")}`;
    }
  }
}
