import path from "node:path";
import { describe, expect, it } from "vitest";
import { SightingContract, Topics, type EmbeddingMessage } from "../lib/contracts/index.ts";
import { seededRandom } from "../lib/eval/cluster.ts";
import { l2normalize } from "../lib/geometry/index.ts";
import { SqliteStore } from "../lib/store/sqlite-store.ts";
import { embeddingMessage, partitionBatch } from "../lib/testing/embedding-message.ts";
import { MatchStage } from "../services/match/stage.ts";
import { tempDir, testMatchOptions } from "./helpers.ts";

const random = seededRandom(21);
const direction = () => l2normalize(new Float32Array(32).map(() => random() - 0.5));
const near = (v: Float32Array) => {
  const d = direction();
  return l2normalize(v.map((x, k) => x + 0.15 * d[k]!));
};
const quality = { faceSize: 90, interOcular: 40, sharpness: 120, yawDeg: 0, pitchDeg: 0, detScore: 0.95 };

const message = (cameraId: string, seq: number, ts: number, vector: Float32Array): EmbeddingMessage =>
  embeddingMessage({ cameraId, seq, ts, vector, modelId: "m1", quality });

const batch = partitionBatch;

describe("the match stage assigns unknown identities, once per track, exactly once across a crash", () => {
  it("one stranger on two cameras is one identity; a replayed batch after a crash counts nothing twice", async () => {
    const store = new SqliteStore(path.join(tempDir(), "vigil.db"));
    const options = testMatchOptions(0.5, {
      checkpoints: { state: store, namespace: "match-test" },
      unknowns: { store: store.unknowns, thresholdFor: () => 0.6 },
    });
    const stranger = direction();
    // Five looks on each of two cameras (two tracks), then a second stranger much later, which ends them.
    const first = batch(
      [0, 1, 2, 3, 4].flatMap((i) => [
        message("door", i, 1000 + i * 200, near(stranger)),
        message("yard", i, 1100 + i * 200, near(stranger)),
      ]),
      0,
    );
    const second = batch([message("lobby", 0, 20_000, direction())], 10);

    const a = new MatchStage(store, store, options);
    await a.assigned([{ topic: Topics.embeddings, partition: 0 }]);
    await a.handle(first.messages, first.info);
    await a.checkpoint();
    await a.handle(second.messages, second.info);
    // …and the process dies here: sightings stored and assigned, the checkpoint and offsets not.
    expect(a.stats).toMatchObject({ sightings: 2, unknownsCreated: 1, unknownsJoined: 1 });
    const [identity] = (await store.unknowns.listUnknowns({ limit: 10 })).items;
    expect(identity).toMatchObject({ count: 2, cameras: ["door", "yard"] });

    // The replacement resumes from the checkpoint and is handed the uncommitted batch again.
    const b = new MatchStage(store, store, options);
    await b.assigned([{ topic: Topics.embeddings, partition: 0 }]);
    const replayed = await b.handle(second.messages, second.info);
    expect(b.stats).toMatchObject({ sightings: 2, unknownsCreated: 0, unknownsJoined: 0 });
    // The replay announces the sightings again with the identity they were given the first time.
    const announced = replayed
      .filter((e) => e.topic === Topics.sightings)
      .map((e) => SightingContract.decode(e.value));
    expect(announced.map((s) => [s.cameraId, s.unknownId])).toEqual([
      ["door", identity!.id],
      ["yard", identity!.id],
    ]);
    expect(await store.unknowns.getUnknown(identity!.id)).toMatchObject({ count: 2 });
    // One sighting per track, each labelled with the identity.
    const theirs = await store.browse({ limit: 10, unknownId: identity!.id });
    expect(theirs.items.map((s) => [s.cameraId, s.faces])).toEqual([
      ["yard", 5],
      ["door", 5],
    ]);

    // The lobby's stranger ends with the stream: an identity of its own.
    await b.flush();
    expect(b.stats.unknownsCreated).toBe(1);
    expect((await store.unknowns.listUnknowns({ limit: 10 })).items).toHaveLength(2);
    store.close();
  });
});
