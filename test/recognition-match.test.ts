import { describe, expect, it } from "vitest";
import {
  AlertContract,
  SightingContract,
  Topics,
  vectorToBytes,
  type EmbeddingMessage,
  type QualityScores,
} from "../lib/contracts/index.ts";
import { cosine, l2normalize } from "../lib/geometry/index.ts";
import { minTrustFor, recognisabilityFor } from "../lib/vision/models/calibration.ts";
import { recognisability } from "../lib/vision/pixels/quality.ts";
import { SqliteStore } from "../lib/store/sqlite-store.ts";
import { MatchStage } from "../services/match/stage.ts";
import { TrackTemplate } from "../services/match/template.ts";

const MODEL = "reid-0095";
const DIM = 256;

function unit(seed: number): Float32Array {
  let s = seed;
  return l2normalize(
    new Float32Array(DIM).map(() => (s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff - 0.5),
  );
}
/** `base` moved towards `other` so that its cosine with `base` is about `similarity`. */
function blend(base: Float32Array, other: Float32Array, similarity: number): Float32Array {
  const k = Math.sqrt(1 - similarity ** 2) / similarity;
  return l2normalize(base.map((x, i) => x + k * other[i]!));
}

const model = recognisabilityFor(MODEL)!;
const minTrust = minTrustFor(MODEL);
/** A close, sharp face and a distant, blurred one, as the quality gate scores them. */
const good: QualityScores = {
  faceSize: 110,
  interOcular: 46,
  sharpness: 160,
  yawDeg: 5,
  pitchDeg: 3,
  detScore: 0.95,
};
const poor: QualityScores = {
  faceSize: 34,
  interOcular: 15,
  sharpness: 2.5,
  yawDeg: 5,
  pitchDeg: 3,
  detScore: 0.72,
};

describe("recognisability calibration of the default embedder", () => {
  it("is there, and tells a close sharp face from a distant blurred one", () => {
    expect(model).toBeDefined();
    expect(recognisability(good, model)).toBeGreaterThan(0.9);
    expect(recognisability(poor, model)).toBeLessThan(minTrust);
  });
});

describe("TrackTemplate", () => {
  it("lets one sharp close-up outweigh five blurred looks, where a plain mean would not", () => {
    const person = unit(1);
    const blurred = [2, 3, 4, 5, 6].map((s) => blend(unit(s), unit(s + 100), 0.9));
    const template = TrackTemplate.of(person, recognisability(good, model));
    for (const b of blurred) template.add(b, recognisability(poor, model));
    const plain = l2normalize(
      blurred.reduce((acc, v) => acc.map((x, i) => x + v[i]!), Float32Array.from(person)),
    );
    expect(cosine(template.vector, person)).toBeGreaterThan(0.95);
    expect(cosine(plain, person)).toBeLessThan(0.6);
  });

  it("trusts a track once enough agreeing poor looks add up to what one good look gives alone", () => {
    const q = 0.03;
    const t = TrackTemplate.of(unit(1), q);
    expect(t.trust).toBeCloseTo(q);
    t.add(unit(1), q);
    expect(t.trust).toBeCloseTo(1 - (1 - q) ** 2);
    expect(TrackTemplate.of(unit(1), 0.9).trust).toBeCloseTo(0.9);
  });
});

/** A real embedded store (in memory) with each person enrolled from one vector of the test's model. */
async function enrolled(people: { id: string; vector: Float32Array }[]) {
  const store = new SqliteStore(":memory:");
  for (const p of people) {
    await store.upsertPerson({ id: p.id, name: p.id, watchlistId: "default" });
    await store.addFace({
      faceId: `${p.id}:photo`,
      personId: p.id,
      modelId: MODEL,
      vector: p.vector,
      source: "test",
    });
  }
  return store;
}

const THRESHOLD = 0.45;
async function stage(people: { id: string; vector: Float32Array }[]) {
  const store = await enrolled(people);
  const match = new MatchStage(store, store, {
    thresholdFor: () => THRESHOLD,
    alertCooldownMs: 30_000,
    tracker: { timeoutMs: 3000, similarity: 0.3, iou: 0.1, reacquire: 0.55 },
    exclusionSimilarity: 0.5,
  });
  const sightings = async () => (await store.browse({ limit: 100 })).items;
  return { match, store, sightings };
}

let seq = 0;
function look(vector: Float32Array, quality: QualityScores, ts: number, x = 100): EmbeddingMessage {
  seq++;
  return {
    faceId: `cam-1:${seq}:0`,
    cameraId: "cam-1",
    frameSeq: seq,
    captureTs: ts,
    frameWidth: 1280,
    frameHeight: 720,
    box: { x, y: 100, width: 80, height: 80 },
    landmarks: [
      [120, 130],
      [160, 130],
      [140, 150],
      [125, 165],
      [155, 165],
    ],
    quality,
    detectorModel: "yunet-2026may",
    cropSize: { width: 4, height: 4 },
    crop: new Uint8Array(4 * 4 * 3).fill(128),
    modelId: MODEL,
    dim: DIM,
    vector: vectorToBytes(vector),
  };
}

const alertsOf = (emits: { topic: string; value: Uint8Array }[]) =>
  emits.filter((e) => e.topic === Topics.alerts).map((e) => AlertContract.decode(e.value));

describe("MatchStage decides on the track", () => {
  it("holds back a look too poor to trust alone, then alerts once a good look joins its track", async () => {
    const ann = unit(10);
    const { match, store, sightings } = await stage([{ id: "ann", vector: ann }]);
    // A blurred look that happens to score well above the threshold: not evidence enough on its own.
    const first = await match.handle([look(blend(ann, unit(11), 0.7), poor, 1000)]);
    expect(alertsOf(first)).toEqual([]);
    expect(match.stats.heldBack).toBe(1);
    const second = await match.handle([look(blend(ann, unit(12), 0.8), good, 1400, 110)]);
    expect(alertsOf(second).map((a) => a.personId)).toEqual(["ann"]);
    const out = await match.flush();
    const stored = out
      .filter((e) => e.topic === Topics.sightings)
      .map((e) => SightingContract.decode(e.value));
    expect(stored).toHaveLength(1);
    expect(stored[0]!.faces).toBe(2);
    expect(stored[0]!.match?.personId).toBe("ann");
    // The box and time of the look its crop shows (the good one), for marking the face in its clip.
    const best = { box: { x: 110, y: 100, width: 80, height: 80 }, boxTs: 1400 };
    expect(stored[0]).toMatchObject(best);
    // The sighting keeps the template, which leans to the good look.
    const [kept] = await sightings();
    expect(kept!.match?.personId).toBe("ann");
    expect(kept).toMatchObject(best);
    const full = await store.getSighting(kept!.id);
    expect(cosine(full!.vector, blend(ann, unit(12), 0.8))).toBeGreaterThan(0.99);
  });

  it("stores a track that never becomes trustworthy as an unknown sighting, however well it scores", async () => {
    const bob = unit(20);
    const { match } = await stage([{ id: "bob", vector: bob }]);
    const emits = await match.handle([look(blend(bob, unit(21), 0.75), poor, 1000)]);
    expect(alertsOf(emits)).toEqual([]);
    const stored = (await match.flush())
      .filter((e) => e.topic === Topics.sightings)
      .map((e) => SightingContract.decode(e.value));
    expect(stored.map((s) => s.match)).toEqual([null]);
  });

  it("never labels a stranger below the threshold, and labels from the template, not the best single face", async () => {
    const cy = unit(30);
    const { match } = await stage([{ id: "cy", vector: cy }]);
    const stranger = unit(31);
    await match.handle([look(stranger, good, 1000), look(blend(stranger, unit(32), 0.9), good, 1400)]);
    const stored = (await match.flush())
      .filter((e) => e.topic === Topics.sightings)
      .map((e) => SightingContract.decode(e.value));
    expect(stored).toHaveLength(1);
    expect(stored[0]!.match).toBeNull();
  });
});
