import type { Point } from "../../geometry/index.ts";
import type { RecognisabilityModel } from "../pixels/quality.ts";
/**
 * The model registry: every model Vigil can run, with what it expects and where to get it. Colour order, range
 * and alignment template live here, never in code paths, because they differ per model.
 */

export type ModelSource =
  /** A file in the local mirror directory (`models.mirror` / VIGIL_MODEL_MIRROR). */
  | { kind: "mirror"; files: Record<string, string> }
  | { kind: "url"; files: Record<string, string> }
  /** A file inside an npm package tarball, fetched with `npm pack` from whatever registry npm is set up for. */
  | { kind: "npm"; package: string; version: string; files: Record<string, string> }
  /** A site's own file, declared in `models.packs` (absolute path): used where it lies, never copied. */
  | { kind: "file"; files: Record<string, string> };

export interface InputSpec {
  /** Fixed input size, or undefined where the model takes any size (a multiple of `stride`). */
  width?: number;
  height?: number;
  stride?: number;
  channels: "bgr" | "rgb" | "gray";
  /** pixel' = (pixel − mean) / std, per channel in the model's channel order; pixel in 0–255. */
  mean: [number, number, number];
  std: [number, number, number];
}

export type GraphFix = "dynamic-batch" | "flush-denormals";

export interface ModelSpec {
  id: string;
  task: "detect" | "embed" | "landmarks68";
  /** `decoder` picks the post-processing for detectors. */
  decoder?: "yunet" | "ultraface";
  format: "onnx" | "openvino-ir";
  /** Raw files as fetched, each checked against its sha256 before use. */
  files: Record<string, { sha256: string; bytes?: number }>;
  /** sha256 of the ONNX file Vigil derives (conversion and graph fixes are deterministic). */
  artifactSha256: string;
  sources: ModelSource[];
  fixes: GraphFix[];
  input: InputSpec;
  /** Embedders: the five-point template the crop is warped to, in input pixels. */
  template?: Point[];
  outputDim?: number;
  /** Embedders: the operating point (cosine threshold at a target false-accept rate) and how it was measured. */
  calibration?: {
    threshold: number;
    far: number;
    source: string;
    /** How the model's chance of recognising a face depends on its quality scores (`vigil eval quality`). */
    recognisability?: RecognisabilityModel;
    /** Least track trust (0–1) for an alert or a label; see services/match/template.ts. */
    minTrust?: number;
  };
  /** The batch the graph can take after fixes; 1 means items run one after another. */
  maxBatch: number;
  licence: string;
  notes: string;
}

/** Reference points of Open Model Zoo's face recognition demo, given on a 96×112 canvas. */
const OMZ_TEMPLATE_96x112: Point[] = [
  [30.2946, 51.6963],
  [65.5318, 51.5014],
  [48.0252, 71.7366],
  [33.5493, 92.3655],
  [62.7299, 92.2041],
];

/** The ArcFace/InsightFace 112×112 template. */
export const ARCFACE_TEMPLATE_112: Point[] = [
  [38.2946, 51.6963],
  [73.5318, 51.5014],
  [56.0252, 71.7366],
  [41.5493, 92.3655],
  [70.7299, 92.2041],
];

/** Five-point templates by name, on the canvas they were given on; `scaleTemplate` fits one to a crop size. */
export const NAMED_TEMPLATES = {
  omz: { width: 96, height: 112, points: OMZ_TEMPLATE_96x112 },
  arcface: { width: 112, height: 112, points: ARCFACE_TEMPLATE_112 },
} as const;

export function scaleTemplate(name: keyof typeof NAMED_TEMPLATES, width: number, height: number): Point[] {
  const t = NAMED_TEMPLATES[name];
  // At its own size a template is returned exactly (no rounding through a division).
  const fx = (x: number) => (width === t.width ? x : (x / t.width) * width);
  const fy = (y: number) => (height === t.height ? y : (y / t.height) * height);
  return t.points.map(([x, y]) => [fx(x), fy(y)] as Point);
}

/** The OMZ points scaled to reid-0095's 128×128 input. */
const OMZ_TEMPLATE_128 = scaleTemplate("omz", 128, 128);

const FACEPLUGIN = { kind: "npm", package: "faceplugin-face-recognition-js", version: "0.0.1" } as const;

export const MODELS: Record<string, ModelSpec> = {
  "yunet-2026may": {
    id: "yunet-2026may",
    task: "detect",
    decoder: "yunet",
    format: "onnx",
    files: { model: { sha256: "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0" } },
    artifactSha256: "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0",
    sources: [
      { kind: "mirror", files: { model: "face_detection_yunet_2026may.onnx" } },
      {
        kind: "url",
        files: {
          model:
            "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/face_detection_yunet_2026may.onnx",
        },
      },
    ],
    fixes: [],
    input: { stride: 32, channels: "bgr", mean: [0, 0, 0], std: [1, 1, 1] },
    maxBatch: 1,
    licence: "MIT (OpenCV zoo)",
    notes: "Anchor-free detector with five keypoints; any input size that is a multiple of 32.",
  },
  "reid-0095": {
    id: "reid-0095",
    task: "embed",
    format: "openvino-ir",
    files: {
      xml: { sha256: "ce53d2c9c08c0bd1c1660fb8a5b6d0e3e4ec19eb92f1036d2d83a85e83082dce" },
      bin: { sha256: "241229ca3d206321868d46ce74a3c0b06c49cea58db7dc70b2e842ff287545d1" },
    },
    artifactSha256: "62da5108901c205e01d2291f9a2db656810ae5a68f96a7918b9ebfda10fcfc62",
    sources: [
      {
        kind: "mirror",
        files: {
          xml: "omz/face-reidentification-retail-0095.FP16.xml",
          bin: "omz/face-reidentification-retail-0095.FP16.bin",
        },
      },
      {
        kind: "url",
        files: {
          xml: "https://storage.openvinotoolkit.org/repositories/open_model_zoo/2023.0/models_bin/1/face-reidentification-retail-0095/FP16/face-reidentification-retail-0095.xml",
          bin: "https://storage.openvinotoolkit.org/repositories/open_model_zoo/2023.0/models_bin/1/face-reidentification-retail-0095/FP16/face-reidentification-retail-0095.bin",
        },
      },
    ],
    fixes: ["dynamic-batch", "flush-denormals"],
    input: { width: 128, height: 128, channels: "bgr", mean: [0, 0, 0], std: [1, 1, 1] },
    template: OMZ_TEMPLATE_128,
    outputDim: 256,
    calibration: {
      threshold: 0.5177,
      far: 1e-4,
      source:
        "vigil eval threshold (faces live video decides on: the live gate and the trust rule): the highest of four " +
        "collections' thresholds at FAR 1e-4, set by the demo's photos (274 impostor pairs, normal-tail quantile; " +
        "their highest impostor 0.4706, a look-alike); LFW dev alone 0.4408 (2,687,149 pairs; FAR there 1.45e-5), " +
        "deepface-pairs 0.4316, faces-bbt 0.3812 (photo-gate faces only: 0.4994). " +
        "vigil eval lfw, all cross-identity pairs: FAR 1e-3 → 0.3509, 1e-4 → 0.4406, 1e-5 → 0.5401. " +
        "Recognisability: vigil eval quality on LFW dev, as stored and surveillance-degraded (seed 1), 2,150 " +
        "faces against their identity's first image at 0.5177; held-out AUC 0.931 / 0.911",
      recognisability: { intercept: -38.735, logSharpness: 1.3985, detScore: 37.921 },
      minTrust: 0.05,
    },
    maxBatch: 64,
    licence: "Apache-2.0 (Open Model Zoo)",
    notes:
      "MobileFaceNet-SE trained with a cosine margin (AM-softmax, s=30, m=0.35); converted from OpenVINO IR.",
  },
  "ultraface-rfb-320": {
    id: "ultraface-rfb-320",
    task: "detect",
    decoder: "ultraface",
    format: "onnx",
    files: { model: { sha256: "6c0256ccd3164f844736a401faf936ec2930764a87ae39442180887d0c5c8854" } },
    artifactSha256: "6c0256ccd3164f844736a401faf936ec2930764a87ae39442180887d0c5c8854",
    sources: [{ ...FACEPLUGIN, files: { model: "package/model/fr_detect.onnx" } }],
    fixes: [],
    input: { width: 320, height: 240, channels: "rgb", mean: [127, 127, 127], std: [128, 128, 128] },
    maxBatch: 1,
    licence: "MIT as stated by the faceplugin package; weights' origin undocumented",
    notes: "UltraFace-RFB; boxes only, landmarks come from the 68-point model.",
  },
  "landmarks68-faceplugin": {
    id: "landmarks68-faceplugin",
    task: "landmarks68",
    format: "onnx",
    files: { model: { sha256: "f10b0ba1d2a8a099adefede1ebf3733e44fe370715e7303dbeb7f59c02142258" } },
    artifactSha256: "752ba43640a96ad0be8adc9c27f56b38e41acd34b5f535694a02304132cffdf6",
    sources: [{ ...FACEPLUGIN, files: { model: "package/model/fr_landmark.onnx" } }],
    fixes: ["flush-denormals"],
    input: { width: 64, height: 64, channels: "gray", mean: [0, 0, 0], std: [255, 255, 255] },
    maxBatch: 1,
    licence: "MIT as stated by the faceplugin package; weights' origin undocumented",
    notes:
      "68 landmarks on a 64×64 grey crop (0–1), output normalised to the crop; ~26k denormal weights flushed.",
  },
  "mobilefacenet-faceplugin": {
    id: "mobilefacenet-faceplugin",
    task: "embed",
    format: "onnx",
    files: { model: { sha256: "87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581" } },
    artifactSha256: "8a6232e9ed694065a9ae6f949ac390afa16fd3b551594b0da31f03201ed4c016",
    sources: [{ ...FACEPLUGIN, files: { model: "package/model/fr_feature.onnx" } }],
    fixes: ["dynamic-batch", "flush-denormals"],
    input: { width: 112, height: 112, channels: "rgb", mean: [127.5, 127.5, 127.5], std: [128, 128, 128] },
    template: ARCFACE_TEMPLATE_112,
    outputDim: 512,
    calibration: {
      threshold: 0.4142,
      far: 1e-4,
      source:
        "vigil eval lfw on LFW folds 1-3 (flip on): 2,687,149 cross-identity pairs; FAR 1e-3 → 0.3386, 1e-5 → 0.4726",
    },
    maxBatch: 64,
    licence: "MIT as stated by the faceplugin package; weights possibly InsightFace-derived (non-commercial)",
    notes:
      "MobileFaceNet 512-D; shipped with batch fixed at 1 and ~9k denormal weights, both fixed at pull time.",
  },
};

export interface Pack {
  id: string;
  detector: string;
  landmarks?: string;
  embedder: string;
  description: string;
  /** Declared packs (`models.packs`): the site's licence text for the weights it brought. */
  licence?: string;
  declared?: boolean;
}

export const PACKS: Record<string, Pack> = {
  "yunet-reid0095": {
    id: "yunet-reid0095",
    detector: "yunet-2026may",
    embedder: "reid-0095",
    description:
      "YuNet detector + five keypoints, Open Model Zoo face-reidentification-retail-0095 (AM-softmax)",
  },
  "faceplugin-npm": {
    id: "faceplugin-npm",
    detector: "ultraface-rfb-320",
    landmarks: "landmarks68-faceplugin",
    embedder: "mobilefacenet-faceplugin",
    description: "UltraFace + 68 landmarks + MobileFaceNet-512, all from one npm package (offline fallback)",
  },
};

export const DEFAULT_PACK = "yunet-reid0095";
export const FALLBACK_PACK = "faceplugin-npm";

/**
 * Models of packs declared in config (lib/vision/models/custom-packs.ts registers them when it resolves a pack),
 * so code that holds only a model id — a vector's, a session's — finds their spec like a built-in one's.
 */
const declaredModels = new Map<string, ModelSpec>();

export function registerDeclaredModel(spec: ModelSpec): void {
  if (MODELS[spec.id]) throw new Error(`declared model ${spec.id} would shadow a built-in model`);
  declaredModels.set(spec.id, spec);
}

export function modelSpec(id: string): ModelSpec {
  const spec = MODELS[id] ?? declaredModels.get(id);
  if (!spec) {
    const known = [...Object.keys(MODELS), ...declaredModels.keys()];
    throw new Error(`unknown model ${id}; known: ${known.join(", ")}`);
  }
  return spec;
}

export function packModels(pack: Pack): ModelSpec[] {
  return [pack.detector, pack.landmarks, pack.embedder].filter((x): x is string => !!x).map(modelSpec);
}
