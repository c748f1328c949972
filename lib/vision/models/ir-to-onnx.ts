import { XMLParser } from "fast-xml-parser";
import {
  encodeModel,
  floatTensor,
  floatValueInfo,
  flushDenormals,
  intAttr,
  intsAttr,
  onnx,
  type NodeProto,
  type TensorProto,
} from "./onnx-proto.ts";

/**
 * Converts an OpenVINO IR (v10/v11 XML + weights .bin) to an ONNX graph, for the op set used by the Open Model
 * Zoo face models. No npm package runs OpenVINO offline, so Vigil converts once at pull time and caches the
 * ONNX file. The batch dimension is made dynamic and denormal weights are flushed, both for CPU speed.
 */

export class IrConversionError extends Error {
  override name = "IrConversionError";
}

interface Port {
  id: number;
  dims: number[];
}
interface Layer {
  id: number;
  name: string;
  type: string;
  data: Record<string, string>;
  inputs: Port[];
  outputs: Port[];
}

const SUPPORTED = new Set([
  "Parameter",
  "Const",
  "Convert",
  "Convolution",
  "GroupConvolution",
  "PReLU",
  "Add",
  "Multiply",
  "AvgPool",
  "MaxPool",
  "Sigmoid",
  "Relu",
  "Result",
]);

const asArray = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

const ints = (s: string | undefined): number[] =>
  (s ?? "")
    .split(",")
    .map((x) => x.trim())
    .filter((x) => x.length > 0)
    .map(Number);

function parsePorts(raw: unknown): Port[] {
  return asArray((raw as { port?: unknown } | undefined)?.port).map((p) => {
    const port = p as { "@_id": string; dim?: unknown };
    return { id: Number(port["@_id"]), dims: asArray(port.dim).map(Number) };
  });
}

function parseLayers(xml: string): { layers: Map<number, Layer>; edges: { from: string; to: string }[] } {
  const parser = new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: "@_",
    parseAttributeValue: false,
  });
  const doc = parser.parse(xml) as { net?: { layers?: { layer?: unknown }; edges?: { edge?: unknown } } };
  if (!doc.net?.layers) throw new IrConversionError("not an OpenVINO IR file: no <net><layers>");
  const layers = new Map<number, Layer>();
  for (const raw of asArray(doc.net.layers.layer) as Record<string, unknown>[]) {
    const data: Record<string, string> = {};
    for (const [k, v] of Object.entries((raw.data as Record<string, string>) ?? {}))
      data[k.replace(/^@_/, "")] = v;
    const layer: Layer = {
      id: Number(raw["@_id"]),
      name: String(raw["@_name"]),
      type: String(raw["@_type"]),
      data,
      inputs: parsePorts(raw.input),
      outputs: parsePorts(raw.output),
    };
    if (!SUPPORTED.has(layer.type)) {
      throw new IrConversionError(`layer ${layer.name} has unsupported type ${layer.type}`);
    }
    layers.set(layer.id, layer);
  }
  const edges = (asArray(doc.net.edges?.edge) as Record<string, string>[]).map((e) => ({
    from: `${e["@_from-layer"]}:${e["@_from-port"]}`,
    to: `${e["@_to-layer"]}:${e["@_to-port"]}`,
  }));
  return { layers, edges };
}

function readConst(layer: Layer, weights: Uint8Array): Float32Array {
  const offset = Number(layer.data.offset);
  const size = Number(layer.data.size);
  if (offset + size > weights.byteLength) {
    throw new IrConversionError(`constant ${layer.name} runs past the end of the weights file`);
  }
  const view = new DataView(weights.buffer, weights.byteOffset + offset, size);
  const type = layer.data.element_type;
  if (type === "f32") {
    const out = new Float32Array(size / 4);
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
    return out;
  }
  if (type === "f16") {
    const out = new Float32Array(size / 2);
    for (let i = 0; i < out.length; i++) out[i] = halfToFloat(view.getUint16(i * 2, true));
    return out;
  }
  throw new IrConversionError(`constant ${layer.name} has unsupported element type ${type}`);
}

export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

export interface ConversionReport {
  nodes: number;
  initializers: number;
  flushedDenormals: number;
}

export function convertIrToOnnx(
  xml: string,
  weights: Uint8Array,
  opts: { inputName?: string; outputName?: string } = {},
): { model: Uint8Array; report: ConversionReport } {
  const { layers, edges } = parseLayers(xml);
  const producer = new Map<string, string>(); // "layer:port" (consumer side) → tensor name
  const tensorName = (layerId: number, portId: number) => `t${layerId}_${portId}`;
  for (const e of edges) {
    const [fl, fp] = e.from.split(":").map(Number) as [number, number];
    producer.set(e.to, tensorName(fl, fp));
  }
  const inputOf = (layer: Layer, index: number): string => {
    const port = layer.inputs[index];
    const name = port && producer.get(`${layer.id}:${port.id}`);
    if (!name) throw new IrConversionError(`layer ${layer.name} input ${index} is not connected`);
    return name;
  };
  const outName = (layer: Layer) => tensorName(layer.id, layer.outputs[0]!.id);

  const constants = new Map<string, { dims: number[]; values: Float32Array }>();
  const nodes: NodeProto[] = [];
  const initializers = new Map<string, TensorProto>();
  const inputs = [];
  const outputs = [];
  let flushed = 0;
  const inputName = opts.inputName ?? "input";
  const outputName = opts.outputName ?? "output";
  const rename = new Map<string, string>();
  const ref = (name: string) => rename.get(name) ?? name;

  const useConst = (name: string, dims?: number[]): string => {
    const c = constants.get(name);
    if (!c) return ref(name);
    const finalDims = dims ?? c.dims;
    const key = `${name}${dims ? `_${dims.join("x")}` : ""}`;
    if (!initializers.has(key)) initializers.set(key, floatTensor(key, finalDims, c.values));
    return key;
  };

  // IR layer ids are in topological order for the exported models this converter targets.
  for (const layer of [...layers.values()].sort((a, b) => a.id - b.id)) {
    const node = (opType: string, nodeInputs: string[], attribute: ReturnType<typeof intsAttr>[] = []) =>
      nodes.push(
        onnx.NodeProto.create({
          name: layer.name,
          opType,
          input: nodeInputs,
          output: [outName(layer)],
          attribute,
        }),
      );
    switch (layer.type) {
      case "Parameter": {
        const dims = layer.outputs[0]!.dims;
        rename.set(outName(layer), inputName);
        inputs.push(floatValueInfo(inputName, ["batch", ...dims.slice(1)]));
        break;
      }
      case "Const": {
        const values = readConst(layer, weights);
        flushed += flushDenormals(values);
        constants.set(outName(layer), { dims: ints(layer.data.shape), values });
        break;
      }
      case "Convert": {
        const source = constants.get(inputOf(layer, 0));
        if (!source || layer.data.destination_type !== "f32") {
          throw new IrConversionError(`Convert ${layer.name} is only supported on constants, to f32`);
        }
        constants.set(outName(layer), source);
        break;
      }
      case "Convolution":
      case "GroupConvolution": {
        const weightsName = inputOf(layer, 1);
        const w = constants.get(weightsName);
        if (!w) throw new IrConversionError(`${layer.type} ${layer.name} needs constant weights`);
        const group = layer.type === "GroupConvolution" ? w.dims[0]! : 1;
        const dims =
          group > 1 || layer.type === "GroupConvolution"
            ? [w.dims[0]! * w.dims[1]!, ...w.dims.slice(2)]
            : w.dims;
        if (layer.data.auto_pad && !["explicit", "notset"].includes(layer.data.auto_pad)) {
          throw new IrConversionError(`${layer.name}: auto_pad=${layer.data.auto_pad} is not supported`);
        }
        const pads = [...ints(layer.data.pads_begin), ...ints(layer.data.pads_end)];
        node(
          "Conv",
          [ref(inputOf(layer, 0)), useConst(weightsName, dims)],
          [
            intsAttr("kernel_shape", dims.slice(2)),
            intsAttr("strides", ints(layer.data.strides)),
            intsAttr("dilations", ints(layer.data.dilations)),
            intsAttr("pads", pads),
            intAttr("group", group),
          ],
        );
        break;
      }
      case "PReLU": {
        const slopeName = inputOf(layer, 1);
        const slope = constants.get(slopeName);
        // IR slopes are per channel ([C]); ONNX broadcasts from the right, so they must become [C,1,1].
        const dims =
          slope && slope.dims.length === 1 && slope.dims[0]! > 1 ? [slope.dims[0]!, 1, 1] : undefined;
        node("PRelu", [ref(inputOf(layer, 0)), useConst(slopeName, dims)]);
        break;
      }
      case "Add":
      case "Multiply":
        node(layer.type === "Add" ? "Add" : "Mul", [
          useConst(inputOf(layer, 0)),
          useConst(inputOf(layer, 1)),
        ]);
        break;
      case "AvgPool":
      case "MaxPool": {
        const spatial = layer.inputs[0]!.dims.slice(2);
        const padded = [...ints(layer.data.pads_begin), ...ints(layer.data.pads_end)].some((p) => p !== 0);
        if (!padded && ints(layer.data.kernel).join() === spatial.join()) {
          // Squeeze-excitation pools cover the whole map; the global kernel is faster and shape-agnostic.
          node(layer.type === "AvgPool" ? "GlobalAveragePool" : "GlobalMaxPool", [ref(inputOf(layer, 0))]);
          break;
        }
        const attrs = [
          intsAttr("kernel_shape", ints(layer.data.kernel)),
          intsAttr("strides", ints(layer.data.strides)),
          intsAttr("pads", [...ints(layer.data.pads_begin), ...ints(layer.data.pads_end)]),
          intAttr("ceil_mode", layer.data.rounding_type === "ceil" ? 1 : 0),
        ];
        if (layer.type === "AvgPool")
          attrs.push(intAttr("count_include_pad", layer.data["exclude-pad"] === "true" ? 0 : 1));
        node(layer.type === "AvgPool" ? "AveragePool" : "MaxPool", [ref(inputOf(layer, 0))], attrs);
        break;
      }
      case "Sigmoid":
      case "Relu":
        node(layer.type, [ref(inputOf(layer, 0))]);
        break;
      case "Result": {
        const source = ref(inputOf(layer, 0));
        nodes.push(
          onnx.NodeProto.create({
            name: layer.name,
            opType: "Identity",
            input: [source],
            output: [outputName],
          }),
        );
        const dims = layer.inputs[0]!.dims;
        outputs.push(floatValueInfo(outputName, ["batch", ...dims.slice(1)]));
        break;
      }
    }
  }
  if (inputs.length !== 1 || outputs.length !== 1) {
    throw new IrConversionError(
      `expected one input and one output, found ${inputs.length} and ${outputs.length}`,
    );
  }
  const model = onnx.ModelProto.create({
    irVersion: 7,
    producerName: "vigil-ir-to-onnx",
    opsetImport: [{ domain: "", version: 13 }],
    graph: onnx.GraphProto.create({
      name: "converted",
      node: nodes,
      initializer: [...initializers.values()],
      input: inputs,
      output: outputs,
    }),
  });
  return {
    model: encodeModel(model),
    report: { nodes: nodes.length, initializers: initializers.size, flushedDenormals: flushed },
  };
}
