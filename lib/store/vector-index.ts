import * as ort from "onnxruntime-node";
import { encodeModel, onnx } from "../vision/models/onnx-proto.ts";

/**
 * Brute-force similarity search over a growing set of vectors, scored by ONNX Runtime's SIMD matrix kernels
 * (a JavaScript loop is ~10× slower). Two precisions:
 * - `float32`: exact; for the watchlist (tens of thousands of vectors), queries batched into one GEMM.
 * - `int8`: each vector quantised with its own scale (4× less memory and bandwidth); candidates are then
 *   rescored exactly by the caller from the stored float vectors. For history (millions of sightings).
 */
export type Precision = "float32" | "int8";

const sessions = new Map<Precision, Promise<ort.InferenceSession>>();
/** Below this share of rows passing a filter, the passing rows are scored directly. */
const PREFILTER_FRACTION = 0.1;
/**
 * From this many int8 rows on, search runs in two stages: every row is scored on the first half of its
 * dimensions (a contiguous copy: half the memory traffic of the memory-bound full pass), then the best
 * candidates are scored on all dimensions. Recall is measured by `vigil bench search`.
 */
const TWO_STAGE_ROWS = 200_000;
const STAGE_ONE_MIN = 2000;

function valueInfo(name: string, type: number, dims: (number | string)[]) {
  return onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType: type,
        shape: { dim: dims.map((d) => (typeof d === "string" ? { dimParam: d } : { dimValue: d })) },
      },
    },
  });
}

function scoringSession(precision: Precision): Promise<ort.InferenceSession> {
  let session = sessions.get(precision);
  if (!session) {
    const T = onnx.TensorProto.DataType;
    const [inType, outType, op] =
      precision === "int8" ? [T.INT8, T.INT32, "MatMulInteger"] : [T.FLOAT, T.FLOAT, "MatMul"];
    const model = encodeModel(
      onnx.ModelProto.create({
        irVersion: 7,
        opsetImport: [{ domain: "", version: 13 }],
        graph: {
          name: `scores-${precision}`,
          node: [{ opType: op, input: ["matrix", "queries"], output: ["scores"] }],
          input: [valueInfo("matrix", inType, ["n", "d"]), valueInfo("queries", inType, ["d", "q"])],
          output: [valueInfo("scores", outType, ["n", "q"])],
        },
      }),
    );
    session = ort.InferenceSession.create(model, { graphOptimizationLevel: "all", logSeverityLevel: 3 });
    sessions.set(precision, session);
  }
  return session;
}

export interface Hit {
  row: number;
  score: number;
}

export class VectorIndex {
  private count = 0;
  private data: Float32Array | Int8Array;
  /** int8 only: each row's dequantisation scale. */
  private scales = new Float32Array(0);
  /** int8 only: the first `headDim` values of every row, contiguous, for the first stage of large searches. */
  private head = new Int8Array(0);
  private readonly headDim: number;

  constructor(
    readonly dim: number,
    readonly precision: Precision,
    initialCapacity = 1024,
  ) {
    this.data =
      precision === "int8" ? new Int8Array(initialCapacity * dim) : new Float32Array(initialCapacity * dim);
    this.headDim = Math.floor(dim / 2);
    if (precision === "int8") {
      this.scales = new Float32Array(initialCapacity);
      this.head = new Int8Array(initialCapacity * this.headDim);
    }
  }

  get size(): number {
    return this.count;
  }

  /** Bytes held by the vectors (and scales). */
  get memoryBytes(): number {
    return this.data.byteLength + this.scales.byteLength + this.head.byteLength;
  }

  /** Appends a vector; returns its row. */
  add(vector: Float32Array): number {
    if (vector.length !== this.dim)
      throw new Error(`vector has ${vector.length} dimensions, index has ${this.dim}`);
    this.reserve(this.count + 1);
    const row = this.count++;
    this.write(row, vector);
    return row;
  }

  /** Overwrites a row (the last row moved into a deleted one's place). */
  set(row: number, vector: Float32Array) {
    this.write(row, vector);
  }

  /** Removes `row` by moving the last row into it; returns the row that moved (or -1). */
  swapRemove(row: number): number {
    const last = this.count - 1;
    if (row !== last) {
      this.data.copyWithin(row * this.dim, last * this.dim, (last + 1) * this.dim);
      if (this.precision === "int8") {
        this.scales[row] = this.scales[last]!;
        this.head.copyWithin(row * this.headDim, last * this.headDim, (last + 1) * this.headDim);
      }
    }
    this.count--;
    return row === last ? -1 : last;
  }

  /**
   * Top `k` rows for each query (scores are cosine for normalised vectors; int8 scores approximate).
   * `accept` filters rows (camera, time) before ranking.
   */
  async search(queries: Float32Array[], k: number, accept?: (row: number) => boolean): Promise<Hit[][]> {
    if (this.count === 0 || queries.length === 0) return queries.map(() => []);
    if (accept) {
      // A selective filter (one camera, one week) leaves few rows: scoring just those beats a full matrix pass.
      const rows: number[] = [];
      for (let row = 0; row < this.count; row++) if (accept(row)) rows.push(row);
      if (rows.length < this.count * PREFILTER_FRACTION)
        return queries.map((v) => this.scoreRows(v, rows, k));
    }
    if (this.precision === "int8" && this.count >= TWO_STAGE_ROWS) {
      return Promise.all(queries.map((v) => this.twoStage(v, k, accept)));
    }
    const session = await scoringSession(this.precision);
    const q = queries.length;
    let matrix: ort.Tensor;
    let queryTensor: ort.Tensor;
    const qScales = new Float32Array(q);
    if (this.precision === "int8") {
      const packed = new Int8Array(this.dim * q);
      queries.forEach((v, j) => {
        qScales[j] = quantise(v, (i, value) => (packed[i * q + j] = value));
      });
      matrix = new ort.Tensor("int8", (this.data as Int8Array).subarray(0, this.count * this.dim), [
        this.count,
        this.dim,
      ]);
      queryTensor = new ort.Tensor("int8", packed, [this.dim, q]);
    } else {
      const packed = new Float32Array(this.dim * q);
      queries.forEach((v, j) => v.forEach((value, i) => (packed[i * q + j] = value)));
      matrix = new ort.Tensor("float32", (this.data as Float32Array).subarray(0, this.count * this.dim), [
        this.count,
        this.dim,
      ]);
      queryTensor = new ort.Tensor("float32", packed, [this.dim, q]);
    }
    const out = await session.run({ matrix, queries: queryTensor });
    const scores = out.scores!.data as Float32Array | Int32Array;
    return queries.map((_, j) => {
      const top = new TopK(k);
      const int8 = this.precision === "int8";
      for (let row = 0; row < this.count; row++) {
        const raw = scores[row * q + j]!;
        const score = int8 ? raw * this.scales[row]! * qScales[j]! : raw;
        if (score > top.floor && (!accept || accept(row))) top.push(row, score);
      }
      return top.sorted();
    });
  }

  private async twoStage(v: Float32Array, k: number, accept?: (row: number) => boolean): Promise<Hit[]> {
    const session = await scoringSession("int8");
    const h = this.headDim;
    const packed = new Int8Array(this.dim);
    // The query's own scale is the same for every row, so ranking can ignore it.
    quantise(v, (i, value) => (packed[i] = value));
    const out = await session.run({
      matrix: new ort.Tensor("int8", this.head.subarray(0, this.count * h), [this.count, h]),
      queries: new ort.Tensor("int8", packed.subarray(0, h), [h, 1]),
    });
    const partial = out.scores!.data as Int32Array;
    const stageOne = new TopK(Math.max(k * 10, STAGE_ONE_MIN));
    for (let row = 0; row < this.count; row++) {
      const score = partial[row]! * this.scales[row]!;
      if (score > stageOne.floor && (!accept || accept(row))) stageOne.push(row, score);
    }
    return this.scoreRows(
      v,
      stageOne.sorted().map((c) => c.row),
      k,
    );
  }

  /** Scores chosen rows directly (dequantised), for pre-filtered searches. */
  private scoreRows(v: Float32Array, rows: number[], k: number): Hit[] {
    const top = new TopK(k);
    const { dim, data } = this;
    for (const row of rows) {
      const base = row * dim;
      let dot = 0;
      for (let i = 0; i < dim; i++) dot += data[base + i]! * v[i]!;
      const score = this.precision === "int8" ? dot * this.scales[row]! : dot;
      if (score > top.floor) top.push(row, score);
    }
    return top.sorted();
  }

  private write(row: number, vector: Float32Array) {
    if (this.precision === "int8") {
      const base = row * this.dim;
      const data = this.data as Int8Array;
      this.scales[row] = quantise(vector, (i, v) => (data[base + i] = v));
      this.head.set(data.subarray(base, base + this.headDim), row * this.headDim);
    } else {
      (this.data as Float32Array).set(vector, row * this.dim);
    }
  }

  private reserve(rows: number) {
    const capacity = this.data.length / this.dim;
    if (rows <= capacity) return;
    const next = Math.max(rows, Math.ceil(capacity * 1.5));
    const grown =
      this.precision === "int8" ? new Int8Array(next * this.dim) : new Float32Array(next * this.dim);
    grown.set(this.data.subarray(0, this.count * this.dim) as never);
    this.data = grown;
    if (this.precision === "int8") {
      const scales = new Float32Array(next);
      scales.set(this.scales.subarray(0, this.count));
      this.scales = scales;
      const head = new Int8Array(next * this.headDim);
      head.set(this.head.subarray(0, this.count * this.headDim));
      this.head = head;
    }
  }
}

/** Symmetric per-vector int8 quantisation; returns the scale that maps int8 back to float. */
function quantise(v: Float32Array, write: (i: number, value: number) => void): number {
  let max = 0;
  for (const x of v) max = Math.max(max, Math.abs(x));
  const scale = max > 0 ? max / 127 : 1;
  for (let i = 0; i < v.length; i++) write(i, Math.round(v[i]! / scale));
  return scale;
}

/** A bounded min-heap keeping the k best (row, score) pairs. */
class TopK {
  private rows: number[] = [];
  private scores: number[] = [];
  constructor(private readonly k: number) {}

  get floor(): number {
    return this.rows.length < this.k ? -Infinity : this.scores[0]!;
  }

  push(row: number, score: number) {
    if (this.k <= 0) return;
    if (this.rows.length < this.k) {
      this.rows.push(row);
      this.scores.push(score);
      this.up(this.rows.length - 1);
    } else if (score > this.scores[0]!) {
      this.rows[0] = row;
      this.scores[0] = score;
      this.down(0);
    }
  }

  sorted(): Hit[] {
    return this.rows.map((row, i) => ({ row, score: this.scores[i]! })).sort((a, b) => b.score - a.score);
  }

  private swap(a: number, b: number) {
    [this.rows[a], this.rows[b]] = [this.rows[b]!, this.rows[a]!];
    [this.scores[a], this.scores[b]] = [this.scores[b]!, this.scores[a]!];
  }
  private up(i: number) {
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.scores[p]! <= this.scores[i]!) return;
      this.swap(p, i);
      i = p;
    }
  }
  private down(i: number) {
    const n = this.rows.length;
    for (;;) {
      const l = 2 * i + 1,
        r = l + 1;
      let m = i;
      if (l < n && this.scores[l]! < this.scores[m]!) m = l;
      if (r < n && this.scores[r]! < this.scores[m]!) m = r;
      if (m === i) return;
      this.swap(m, i);
      i = m;
    }
  }
}
