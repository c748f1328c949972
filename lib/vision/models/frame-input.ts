import {
  decodeModel,
  encodeModel,
  floatTensor,
  intAttr,
  intsAttr,
  onnx,
  type NodeProto,
  type TensorProto,
} from "./onnx-proto.ts";
import type { InputSpec } from "./registry.ts";

/**
 * A detector that takes the decoder's frame as it is: the yuv420p bytes (uint8), with the colour conversion,
 * the downscale to detector size, the normalisation, the NCHW layout and the zero padding done by nodes put in
 * front of the model's own graph. On a CPU ONNX Runtime runs them in its C++ kernels instead of a JavaScript
 * loop over every pixel; on a GPU they run on the device, and the host sends a quarter of the bytes a float
 * tensor of the same frame would need.
 *
 * The arithmetic is the one `fillTensorFromYuv420` does (lib/vision/pixels/yuv.ts): BT.601 limited range, luma
 * averaged over each k×k block (AveragePool), chroma read at the block's centre (the same indices), so the
 * detector sees the same tensor either way. One graph serves one frame geometry, every size in it a constant:
 * ONNX Runtime then knows every shape when it optimises the graph, and the model's own nodes run exactly as
 * fast as with its float input (with the geometry as run-time inputs they ran several times slower).
 */
export interface FrameGeometry {
  /** The frame, yuv420p (even sides). */
  width: number;
  height: number;
  /** The whole factor it is sampled down by, and the padded size the model is given. */
  k: number;
  padWidth: number;
  padHeight: number;
}

// BT.601 limited range, as in yuv.ts.
const KY = 1.164;
const KRV = 1.596;
const KGU = -0.392;
const KGV = -0.813;
const KBU = 2.017;

const T = onnx.TensorProto.DataType;

const int64s = (name: string, values: number[], dims = [values.length]) =>
  onnx.TensorProto.create({ name, dims, dataType: T.INT64, int64Data: values });

/**
 * The integer factor by which a `width`×`height` frame becomes `w`×`h`, or undefined when it is not one (the
 * caller then fills the float tensor itself).
 */
export function wholeFactor(width: number, height: number, w: number, h: number): number | undefined {
  const k = width / w;
  return Number.isInteger(k) && height === k * h && width % 2 === 0 && height % 2 === 0 ? k : undefined;
}

/** The chroma sample at the centre of each k×k luma block: ((x0 + x1 − 1) >> 2), as fillTensorFromYuv420 reads it. */
function chromaCentres(n: number, k: number): number[] {
  return Array.from({ length: n }, (_, i) => (k * i + k * (i + 1) - 1) >> 2);
}

/** The model's bytes with one uint8 input, `frames` [1, W·H·3/2], for frames of geometry `g`. */
export function withYuv420Input(
  bytes: Uint8Array,
  input: InputSpec,
  g: FrameGeometry,
  /** 1 for the one-frame detector (its batch is fixed); `dynamic` for a batch detector's graph. */
  batch: 1 | "dynamic" = 1,
): Uint8Array {
  const { width: W, height: H, k, padWidth, padHeight } = g;
  if (!Number.isInteger(k) || k < 1 || W % (2 * k) !== 0 || H % (2 * k) !== 0 || (W / k) % 1 || (H / k) % 1)
    throw new Error(`a ${W}×${H} frame cannot be sampled down by a whole factor ${k}`);
  if (input.channels === "gray") throw new Error("the frame input converts to colour; this model takes grey");
  const model = decodeModel(bytes);
  const graph = model.graph;
  if (!graph || graph.input?.length !== 1) throw new Error("the frame input needs a model with one input");
  const target = graph.input[0]!.name!;
  const w = W / k;
  const h = H / k;
  const luma = W * H;
  const chroma = luma / 4;
  const p = (name: string) => `vigil_frame_${name}`;
  // Reshapes keep the batch as it comes (-1) when it is not fixed.
  const n = batch === 1 ? 1 : -1;
  const nodes: NodeProto[] = [];
  const initializers: TensorProto[] = [];
  const node = (
    opType: string,
    inputs: string[],
    output: string,
    attribute: ReturnType<typeof intAttr>[] = [],
  ) =>
    nodes.push(onnx.NodeProto.create({ opType, input: inputs, output: [output], name: output, attribute }));
  const constant = (tensor: TensorProto) => {
    initializers.push(tensor);
    return tensor.name!;
  };
  const plane = (name: string, start: number, end: number, rows: number, cols: number) => {
    node(
      "Slice",
      [
        "frames",
        constant(int64s(p(`${name}_start`), [start])),
        constant(int64s(p(`${name}_end`), [end])),
        constant(int64s(p(`${name}_axis`), [1])),
      ],
      p(`${name}_flat`),
    );
    node(
      "Reshape",
      [p(`${name}_flat`), constant(int64s(p(`${name}_shape`), [n, 1, rows, cols]))],
      p(`${name}_u8`),
    );
  };
  plane("y", 0, luma, H, W);
  plane("u", luma, luma + chroma, H / 2, W / 2);
  plane("v", luma + chroma, luma + 2 * chroma, H / 2, W / 2);
  node("Cast", [p("y_u8")], p("y_f"), [intAttr("to", T.FLOAT)]);
  if (k > 1)
    node("AveragePool", [p("y_f")], p("y_small"), [
      intsAttr("kernel_shape", [k, k]),
      intsAttr("strides", [k, k]),
    ]);
  const rows = chromaCentres(h, k);
  const cols = chromaCentres(w, k);
  const identity = (xs: number[], n: number) => xs.length === n && xs.every((x, i) => x === i);
  for (const c of ["u", "v"]) {
    let at = p(`${c}_u8`);
    // At k = 2 (720p to 640×360, the usual case) the chroma planes already have the detector's size.
    if (!identity(rows, H / 2)) {
      node("Gather", [at, constant(int64s(p(`${c}_rows`), rows))], p(`${c}_r`), [intAttr("axis", 2)]);
      at = p(`${c}_r`);
    }
    if (!identity(cols, W / 2)) {
      node("Gather", [at, constant(int64s(p(`${c}_cols`), cols))], p(`${c}_rc`), [intAttr("axis", 3)]);
      at = p(`${c}_rc`);
    }
    node("Cast", [at], p(`${c}_f`), [intAttr("to", T.FLOAT)]);
  }
  node("Concat", [k > 1 ? p("y_small") : p("y_f"), p("u_f"), p("v_f")], p("yuv"), [intAttr("axis", 1)]);
  // The colour conversion as one 3×3 matrix product over every pixel, plus an offset per channel that takes in
  // the −16 and −128 of limited-range video; rows in the model's channel order. (A 1×1 convolution computes the
  // same, but ONNX Runtime's blocked-layout kernels take several times longer for three channels.)
  const rowsByColour: Record<"b" | "g" | "r", [number, number, number]> = {
    b: [KY, KBU, 0],
    g: [KY, KGU, KGV],
    r: [KY, 0, KRV],
  };
  const order = input.channels === "rgb" ? (["r", "g", "b"] as const) : (["b", "g", "r"] as const);
  const weights = order.flatMap((c) => rowsByColour[c]);
  const bias = order.map((c) => {
    const [a, b, d] = rowsByColour[c];
    return -16 * a - 128 * b - 128 * d;
  });
  node("Reshape", [p("yuv"), constant(int64s(p("flat_shape"), [n, 3, h * w]))], p("yuv_flat"));
  node(
    "MatMul",
    [constant(floatTensor(p("rgb_w"), [3, 3], Float32Array.from(weights))), p("yuv_flat")],
    p("rgb_flat"),
  );
  node(
    "Add",
    [p("rgb_flat"), constant(floatTensor(p("rgb_b"), [3, 1], Float32Array.from(bias)))],
    p("rgb_offset"),
  );
  node(
    "Clip",
    [
      p("rgb_offset"),
      constant(floatTensor(p("c0"), [], new Float32Array([0]))),
      constant(floatTensor(p("c255"), [], new Float32Array([255]))),
    ],
    p("rgb_clip"),
  );
  node("Reshape", [p("rgb_clip"), constant(int64s(p("nchw_shape"), [n, 3, h, w]))], p("clipped"));
  let pixels = p("clipped");
  if (input.mean.some((m) => m !== 0) || input.std.some((s) => s !== 1)) {
    node(
      "Sub",
      [pixels, constant(floatTensor(p("mean"), [1, 3, 1, 1], Float32Array.from(input.mean)))],
      p("centred"),
    );
    node(
      "Mul",
      [
        p("centred"),
        constant(floatTensor(p("inv_std"), [1, 3, 1, 1], Float32Array.from(input.std.map((s) => 1 / s)))),
      ],
      p("normalised"),
    );
    pixels = p("normalised");
  }
  node(
    "Pad",
    [
      pixels,
      constant(int64s(p("pads"), [0, 0, 0, 0, 0, 0, padHeight - h, padWidth - w])),
      constant(floatTensor(p("pad_value"), [], new Float32Array([0]))),
    ],
    target,
  );

  graph.node = [...nodes, ...(graph.node ?? [])];
  graph.initializer = [...(graph.initializer ?? []), ...initializers];
  graph.input = [
    onnx.ValueInfoProto.create({
      name: "frames",
      type: {
        tensorType: {
          elemType: T.UINT8,
          shape: {
            dim: [batch === 1 ? { dimValue: 1 } : { dimParam: "batch" }, { dimValue: luma + 2 * chroma }],
          },
        },
      },
    }),
  ];
  return encodeModel(model);
}
