import {
  decodeModel,
  encodeModel,
  flushDenormals,
  onnx,
  tensorFloats,
  type ModelProto,
  type TensorProto,
} from "./onnx-proto.ts";
import type { GraphFix } from "./registry.ts";

export interface FixReport {
  flushedDenormals: number;
  reshapesFreed: number;
}

/**
 * Load-time repairs applied to a model's graph, reproducibly (same input bytes → same output bytes):
 * - `dynamic-batch`: many exports fix batch = 1 in the input and in internal Reshapes; batched inference
 *   needs the batch dimension symbolic and Reshapes that copy it (shape value 0) instead of hard-coding 1.
 * - `flush-denormals`: denormal weights make CPU inference several times slower and change nothing.
 */
export function applyGraphFixes(
  bytes: Uint8Array,
  fixes: GraphFix[],
): { model: Uint8Array; report: FixReport } {
  const model = decodeModel(bytes);
  const report: FixReport = { flushedDenormals: 0, reshapesFreed: 0 };
  if (fixes.includes("flush-denormals")) report.flushedDenormals = flushAll(model);
  if (fixes.includes("dynamic-batch")) report.reshapesFreed = makeBatchDynamic(model);
  return { model: encodeModel(model), report };
}

function flushAll(model: ModelProto): number {
  let flushed = 0;
  for (const tensor of model.graph?.initializer ?? []) {
    const values = tensorFloats(tensor);
    if (!values) continue;
    const n = flushDenormals(values);
    if (n > 0) {
      flushed += n;
      tensor.rawData = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
      tensor.floatData = [];
    }
  }
  return flushed;
}

function makeBatchDynamic(model: ModelProto): number {
  const graph = model.graph;
  if (!graph) throw new Error("model has no graph");
  const initializerNames = new Set((graph.initializer ?? []).map((t) => t.name));
  for (const info of [...(graph.input ?? []), ...(graph.output ?? [])]) {
    if (initializerNames.has(info.name)) continue;
    const first = info.type?.tensorType?.shape?.dim?.[0];
    if (first) {
      first.dimValue = undefined as unknown as number;
      first.dimParam = "batch";
    }
  }
  // Intermediate shapes recorded at export time would contradict the new batch size.
  graph.valueInfo = [];
  const inits = new Map((graph.initializer ?? []).map((t) => [t.name, t]));
  let freed = 0;
  for (const node of graph.node ?? []) {
    if (node.opType !== "Reshape") continue;
    const shape = inits.get(node.input?.[1] ?? "");
    if (!shape || shape.dataType !== onnx.TensorProto.DataType.INT64) continue;
    const values = readInt64(shape);
    if (values[0] !== 1n) continue;
    values[0] = 0n; // 0 copies the input's dimension: the batch
    shape.int64Data = [];
    shape.rawData = new Uint8Array(values.buffer);
    freed++;
  }
  return freed;
}

function readInt64(tensor: TensorProto): BigInt64Array {
  if (tensor.rawData && tensor.rawData.length > 0)
    return new BigInt64Array(new Uint8Array(tensor.rawData).buffer);
  return BigInt64Array.from((tensor.int64Data ?? []).map((v) => BigInt(v.toString())));
}
