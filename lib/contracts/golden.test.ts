import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { TopicTable, Topics, type TopicName } from "./index.ts";

/**
 * Golden bytes per contract version: a change to a contract that alters what goes on the wire fails here, so
 * it is made on purpose (a new contract version, with old readers in mind), never by accident. After a
 * deliberate version bump, `VIGIL_UPDATE_GOLDEN=1 npx vitest run lib/contracts/golden.test.ts` writes the new
 * version's fixture beside the old ones.
 */
const dir = path.resolve("test/fixtures/contracts");
const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
const box = { x: 10.5, y: 20, width: 64, height: 72 };
const quality = {
  faceSize: 64,
  interOcular: 24.5,
  sharpness: 120.25,
  yawDeg: -5,
  pitchDeg: 3,
  detScore: 0.93,
};
const face = {
  faceId: "door:1700000000000123:0",
  cameraId: "door",
  frameSeq: 1700000000000123,
  captureTs: 1_700_000_000_123,
  frameWidth: 1280,
  frameHeight: 720,
  box,
  landmarks: [
    [30, 40],
    [60, 40],
    [45, 55],
    [35, 70],
    [55, 70],
  ] as [number, number][],
  quality,
  detectorModel: "yunet-2026may",
  cropSize: { width: 4, height: 2 },
};

const samples: Record<TopicName, Record<string, unknown>> = {
  [Topics.frames]: {
    cameraId: "door",
    seq: 1700000000000123,
    captureTs: 1_700_000_000_123,
    width: 4,
    height: 2,
    format: "yuv420p",
    image: bytes(12, 1),
  },
  [Topics.faces]: { ...face, crop: bytes(24, 2) },
  [Topics.embeddings]: { ...face, modelId: "reid-0095", dim: 2, vector: bytes(8, 3), crop: bytes(24, 4) },
  [Topics.sightings]: {
    sightingId: "sighting:door:1700000000000123:0",
    trackId: "door#7",
    cameraId: "door",
    startTs: 1_700_000_000_123,
    endTs: 1_700_000_004_000,
    faces: 6,
    modelId: "reid-0095",
    dim: 2,
    quality,
    match: { personId: "ann", name: "Ann Example", score: 0.71 },
    vector: bytes(8, 5),
    crop: bytes(16, 6),
  },
  [Topics.alerts]: {
    alertId: "alert:door:1700000000000123:0:ann",
    watchlistId: "default",
    personId: "ann",
    personName: "Ann Example",
    cameraId: "door",
    ts: 1_700_000_000_123,
    score: 0.71,
    threshold: 0.44,
    modelId: "reid-0095",
    faceId: "door:1700000000000123:0",
    box,
    crop: bytes(16, 7),
  },
  [Topics.cameraStatus]: {
    cameraId: "door",
    state: "backoff",
    ts: 1_700_000_000_123,
    lastError: "connection refused",
    framesIn: 1200,
    framesDropped: 3,
    framesUndecodable: 1,
    reconnects: 2,
  },
  [Topics.watchlistChanges]: {
    kind: "enrolled",
    watchlistId: "default",
    personId: "ann",
    ts: 1_700_000_000_123,
  },
  [Topics.dlq]: {
    sourceTopic: "vigil.frames",
    key: "door",
    reason: "malformed frame message: bad magic",
    ts: 1_700_000_000_123,
    original: bytes(10, 8),
  },
};

/**
 * Optional fields added within a contract version: pinned by fixtures of their own, while the plain fixtures above
 * keep pinning messages from producers that predate them.
 */
const optionalFields: Partial<Record<TopicName, { tag: string; extra: Record<string, unknown> }[]>> = {
  // A yuv420p crop of 4×2 pixels: 8 luma bytes and two chroma planes of 2.
  [Topics.faces]: [{ tag: "cropFormat", extra: { cropFormat: "yuv420p", crop: bytes(12, 9) } }],
  [Topics.embeddings]: [{ tag: "cropFormat", extra: { cropFormat: "yuv420p", crop: bytes(12, 10) } }],
  [Topics.sightings]: [
    {
      tag: "unknownId",
      extra: { match: null, unknownId: "unknown:sighting:door:1700000000000123:0" },
    },
    { tag: "box", extra: { box, boxTs: 1_700_000_002_000 } },
  ],
  [Topics.alerts]: [{ tag: "matchedFaceId", extra: { matchedFaceId: "ann:ann-2.jpg" } }],
};

function checkGolden(spec: (typeof TopicTable)[number], sample: Record<string, unknown>, file: string) {
  const contract = spec.contract as unknown as {
    encode(m: Record<string, unknown>): Uint8Array;
    decode(b: Uint8Array): Record<string, unknown>;
  };
  const encoded = contract.encode(sample);
  if (!existsSync(file) && process.env.VIGIL_UPDATE_GOLDEN === "1") {
    mkdirSync(dir, { recursive: true });
    writeFileSync(file, encoded);
  }
  expect(existsSync(file), `${file} is missing: a contract version with no golden bytes`).toBe(true);
  const golden = new Uint8Array(readFileSync(file));
  expect(Buffer.from(encoded).equals(Buffer.from(golden))).toBe(true);
  const decoded = contract.decode(golden);
  for (const [k, v] of Object.entries(sample)) {
    if (v instanceof Uint8Array) expect(Array.from(decoded[k] as Uint8Array)).toEqual(Array.from(v));
    else expect(decoded[k]).toEqual(v);
  }
}

describe("wire format golden bytes", () => {
  for (const spec of TopicTable) {
    const name = `${spec.contract.name}-v${spec.contract.version}`;
    it(`${spec.name}: ${spec.contract.name} v${spec.contract.version} encodes to and decodes from its fixture`, () =>
      checkGolden(spec, samples[spec.name], path.join(dir, `${name}.bin`)));
    for (const optional of optionalFields[spec.name] ?? [])
      it(`${spec.name}: ${name} with ${optional.tag} (optional in v${spec.contract.version}) too`, () =>
        checkGolden(
          spec,
          { ...samples[spec.name], ...optional.extra },
          path.join(dir, `${name}-${optional.tag}.bin`),
        ));
  }
});
