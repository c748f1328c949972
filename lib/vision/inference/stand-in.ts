import type { ort } from "./runtime.ts";

/**
 * A model of known, constant cost in place of a real one (`models.standIn`, for `vigil bench plumbing`): the
 * session is opened as usual (so inputs, outputs and every graph change are the real ones), but `run` answers
 * with fixed outputs after `costMs`. What the pipeline then spends is its own plumbing, not the model's.
 *
 * The wait blocks the calling thread without using the CPU (Atomics.wait), as a GPU run does: a thread that
 * waits on a device is held but burns nothing, so CPU time measured around a stand-in is all plumbing.
 */
export interface StandInOptions {
  /** Faces the detector "finds" in every frame (a grid across the frame). */
  faces: number;
  /** Milliseconds each run holds its thread. */
  costMs: number;
}

type Tensor = ort.Tensor;
type Feeds = Record<string, Tensor>;
type Outputs = Record<string, Tensor>;

const STRIDES = [8, 16, 32] as const;
/** Where the five landmarks sit in a face's box (fractions of width and height): a frontal face. */
const LANDMARKS: [number, number][] = [
  [0.32, 0.42],
  [0.68, 0.42],
  [0.5, 0.6],
  [0.36, 0.78],
  [0.64, 0.78],
];

const waitCell = new Int32Array(new SharedArrayBuffer(4));

function hold(ms: number) {
  if (ms > 0) Atomics.wait(waitCell, 0, 0, ms);
}

/** The detector's input grid: its float NCHW input, or what a frame-input graph pads its frame to. */
function detectorGrid(feeds: Feeds, grid?: { width: number; height: number }) {
  if (feeds.frames) {
    if (!grid)
      throw new Error("stand-in detector: a frame-input graph needs its grid (SessionOptions.detectorGrid)");
    return { batch: feeds.frames.dims[0]!, ...grid };
  }
  const input = Object.values(feeds)[0]!;
  return { batch: input.dims[0]!, height: input.dims[2]!, width: input.dims[3]! };
}

/**
 * YuNet's twelve outputs with `faces` confident predictions at stride 16, laid out on a grid over the image
 * (never overlapping, so non-maximum suppression keeps them all), everything else scoring zero.
 */
function yunetOutputs(
  ortApi: typeof ort,
  feeds: Feeds,
  faces: number,
  grid?: { width: number; height: number },
): Outputs {
  const { batch, width, height } = detectorGrid(feeds, grid);
  const out: Outputs = {};
  const perRow = Math.ceil(Math.sqrt(faces));
  const rows = Math.ceil(faces / perRow);
  for (const s of STRIDES) {
    const cols = Math.ceil(width / s);
    const anchors = cols * Math.ceil(height / s);
    const cls = new Float32Array(batch * anchors);
    const obj = new Float32Array(batch * anchors);
    const bbox = new Float32Array(batch * anchors * 4);
    const kps = new Float32Array(batch * anchors * 10);
    if (s === 16) {
      // Each face fills half its grid cell's smaller side: about 90 px in a 640-wide detector input of 4 faces.
      const cellW = width / perRow;
      const cellH = height / rows;
      const side = Math.min(cellW, cellH) / 2;
      for (let item = 0; item < batch; item++) {
        for (let f = 0; f < faces; f++) {
          const cx = (f % perRow) * cellW + cellW / 2;
          const cy = Math.floor(f / perRow) * cellH + cellH / 2;
          const col = Math.floor(cx / s);
          const row = Math.floor(cy / s);
          const a = item * anchors + row * cols + col;
          cls[a] = 0.95;
          obj[a] = 0.95;
          // Centre offset in cells, log size in strides: YuNet's encoding (decodeYuNet reverses it).
          bbox[a * 4] = cx / s - col;
          bbox[a * 4 + 1] = cy / s - row;
          bbox[a * 4 + 2] = Math.log(side / s);
          bbox[a * 4 + 3] = Math.log((side * 1.2) / s);
          LANDMARKS.forEach(([lx, ly], k) => {
            kps[a * 10 + 2 * k] = (cx - side / 2 + lx * side) / s - col;
            kps[a * 10 + 2 * k + 1] = (cy - side * 0.6 + ly * side * 1.2) / s - row;
          });
        }
      }
    }
    out[`cls_${s}`] = new ortApi.Tensor("float32", cls, [batch, anchors, 1]);
    out[`obj_${s}`] = new ortApi.Tensor("float32", obj, [batch, anchors, 1]);
    out[`bbox_${s}`] = new ortApi.Tensor("float32", bbox, [batch, anchors, 4]);
    out[`kps_${s}`] = new ortApi.Tensor("float32", kps, [batch, anchors, 10]);
  }
  return out;
}

/** One fixed unit vector per input item, of the real model's output shape (e.g. [n, 256] or [n, 256, 1, 1]). */
function embedderOutputs(ortApi: typeof ort, session: ort.InferenceSession, feeds: Feeds): Outputs {
  const batch = Object.values(feeds)[0]!.dims[0]!;
  const meta = session.outputMetadata[0];
  const item = (meta && "shape" in meta ? meta.shape : []).slice(1).map(Number);
  const dim = item.reduce((a, d) => a * d, 1);
  if (item.length === 0 || !Number.isInteger(dim) || dim <= 0)
    throw new Error("stand-in embedder: the model's output size is not fixed");
  const data = new Float32Array(batch * dim).fill(1 / Math.sqrt(dim));
  return { [session.outputNames[0]!]: new ortApi.Tensor("float32", data, [batch, ...item]) };
}

/** Wraps an opened session: same metadata, fixed outputs, `costMs` per run. */
export function standInSession(
  ortApi: typeof ort,
  session: ort.InferenceSession,
  options: StandInOptions,
  /** A frame-input detector's padded input size, which its uint8 input does not show. */
  grid?: { width: number; height: number },
): ort.InferenceSession {
  const isYuNet = session.outputNames.includes("cls_16");
  // Fixed outputs are made once per input shape: building them is no part of the pipeline's cost (a real
  // model's outputs come out of ONNX Runtime ready-made). Callers only read them.
  const made = new Map<string, Outputs>();
  const run = async (feeds: Feeds): Promise<Outputs> => {
    hold(options.costMs);
    const key = Object.values(feeds)
      .map((t) => t.dims.join("x"))
      .join(",");
    let out = made.get(key);
    if (!out) {
      out = isYuNet
        ? yunetOutputs(ortApi, feeds, options.faces, grid)
        : embedderOutputs(ortApi, session, feeds);
      made.set(key, out);
    }
    return out;
  };
  return new Proxy(session, {
    get: (target, prop, receiver) =>
      prop === "run" ? run : (Reflect.get(target, prop, receiver) as unknown),
  });
}
