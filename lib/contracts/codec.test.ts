import { describe, expect, it } from "vitest";
import {
  AlertContract,
  ContractError,
  EmbeddingContract,
  FrameContract,
  bytesToVector,
  vectorToBytes,
  type EmbeddingMessage,
  type FrameMessage,
} from "./index.ts";

const frame = (): FrameMessage => ({
  cameraId: "cam-1",
  seq: 42,
  captureTs: 1_700_000_000_000,
  width: 4,
  height: 2,
  format: "bgr24",
  image: Uint8Array.from({ length: 24 }, (_, i) => i),
});

describe("contracts", () => {
  it("round-trips a frame with its bytes intact", () => {
    const msg = frame();
    const bytes = FrameContract.encode(msg);
    const back = FrameContract.decode(bytes);
    expect(back).toMatchObject({ cameraId: "cam-1", seq: 42, width: 4, height: 2, format: "bgr24" });
    expect(Array.from(back.image)).toEqual(Array.from(msg.image));
    // bytes travel as bytes: the header is small JSON, pixels follow raw
    expect(bytes.byteLength).toBeLessThan(24 + 200);
  });

  it("encodes in place around a blob already in its buffer: the same bytes as encode, no copy of the blob", () => {
    const region = new Uint8Array(new SharedArrayBuffer(300));
    const image = region.subarray(200, 212);
    image.set(Array.from({ length: 12 }, (_, i) => 100 + i));
    const msg = { ...frame(), format: "yuv420p" as const, image };
    const inPlace = FrameContract.encodeInPlace(msg, region);
    expect(Array.from(inPlace)).toEqual(Array.from(FrameContract.encode(msg)));
    expect(inPlace.buffer).toBe(region.buffer);
    expect(inPlace.byteOffset + inPlace.byteLength).toBe(212);
    const back = FrameContract.decode(inPlace);
    expect(back.image.buffer).toBe(region.buffer);
    expect(back.image.byteOffset).toBe(200);
  });

  it("refuses to encode in place without room for the header or with the blob elsewhere", () => {
    const region = new Uint8Array(64);
    const msg = { ...frame(), image: region.subarray(10, 34) };
    expect(() => FrameContract.encodeInPlace(msg, region)).toThrow(/more room/);
    expect(() => FrameContract.encodeInPlace(frame(), new Uint8Array(4096))).toThrow(/not inside the region/);
  });

  it("can put a message in shared memory, which a decoded blob still views without a copy", () => {
    const msg = {
      ...frame(),
      format: "yuv420p" as const,
      image: Uint8Array.from({ length: 12 }, (_, i) => i),
    };
    const bytes = FrameContract.encode(msg, { shared: true });
    expect(bytes.buffer).toBeInstanceOf(SharedArrayBuffer);
    const back = FrameContract.decode(bytes);
    expect(back.format).toBe("yuv420p");
    expect(back.image.buffer).toBe(bytes.buffer);
    expect(Array.from(back.image)).toEqual(Array.from(msg.image));
    expect(FrameContract.encode(msg).buffer).toBeInstanceOf(ArrayBuffer);
  });

  it("round-trips an embedding with a float vector and a crop", () => {
    const vector = Float32Array.from([0.6, -0.8, 0, 1e-7]);
    const msg: EmbeddingMessage = {
      faceId: "cam-1:42:0",
      cameraId: "cam-1",
      frameSeq: 42,
      captureTs: 1,
      frameWidth: 640,
      frameHeight: 480,
      box: { x: 1, y: 2, width: 30, height: 40 },
      landmarks: [
        [1, 2],
        [3, 4],
        [5, 6],
        [7, 8],
        [9, 10],
      ],
      quality: { faceSize: 40, interOcular: 15, sharpness: 100, yawDeg: 3, pitchDeg: 1, detScore: 0.9 },
      detectorModel: "yunet",
      cropSize: { width: 2, height: 1 },
      modelId: "reid0095",
      dim: 4,
      vector: vectorToBytes(vector),
      crop: Uint8Array.from([1, 2, 3, 4, 5, 6]),
    };
    const back = EmbeddingContract.decode(EmbeddingContract.encode(msg));
    expect(Array.from(bytesToVector(back.vector))).toEqual(Array.from(vector));
    expect(Array.from(back.crop)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(back.landmarks[4]).toEqual([9, 10]);
    expect(back.modelId).toBe("reid0095");
  });

  it("rejects malformed messages with a reason", () => {
    const good = FrameContract.encode(frame());
    expect(() => FrameContract.decode(new Uint8Array([1, 2, 3]))).toThrowError(ContractError);
    expect(() => FrameContract.decode(new Uint8Array([1, 2, 3]))).toThrowError(/shorter than the preamble/);
    const badMagic = good.slice();
    badMagic[0] = 0;
    expect(() => FrameContract.decode(badMagic)).toThrowError(/bad magic/);
    expect(() => AlertContract.decode(good)).toThrowError(/message type 1 where 5 \(alert\)/);
    expect(() => FrameContract.decode(good.subarray(0, good.byteLength - 1))).toThrowError(
      /runs past the end/,
    );
    const trailing = new Uint8Array(good.byteLength + 3);
    trailing.set(good);
    expect(() => FrameContract.decode(trailing)).toThrowError(/trailing bytes/);
    const newer = good.slice();
    newer[5] = 9;
    expect(() => FrameContract.decode(newer)).toThrowError(/contract version 9/);
  });

  it("validates header fields on both sides", () => {
    expect(() => FrameContract.encode({ ...frame(), seq: -1 })).toThrowError(/seq/);
    const bytes = FrameContract.encode(frame());
    const text = Buffer.from(bytes).toString("latin1").replace('"format":"bgr24"', '"format":"bmp24"');
    expect(() => FrameContract.decode(Buffer.from(text, "latin1"))).toThrowError(/format/);
  });

  it("stores vectors little-endian", () => {
    const v = Float32Array.from([1.5, -2.25, 3e-8]);
    const bytes = vectorToBytes(v);
    expect(new DataView(bytes.buffer).getFloat32(0, true)).toBe(1.5);
    expect(Array.from(bytesToVector(bytes))).toEqual(Array.from(v));
    expect(() => bytesToVector(new Uint8Array(5))).toThrowError(/multiple of 4/);
  });
});
