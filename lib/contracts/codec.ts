import type { z } from "zod";

/**
 * Wire format shared by every topic, so Kafka and the in-memory bus carry identical bytes:
 *   "VGL" | format version (u8) | message type (u8) | contract version (u8) | header length (u32 BE)
 *   | header JSON (UTF-8) | blob bytes, concatenated in the order the contract names them.
 * Blob lengths travel in the header (`_blobs`), so pixels and vectors stay raw bytes, never base64.
 */
const MAGIC = [0x56, 0x47, 0x4c];
const FORMAT_VERSION = 1;
const PREAMBLE = 3 + 1 + 1 + 1 + 4;
/** Refuses absurd headers before parsing them; a header is metadata, never pixels. */
const MAX_HEADER_BYTES = 1 << 20;

export class ContractError extends Error {
  override name = "ContractError";
}

export interface ContractSpec<H extends z.ZodType, B extends string> {
  /** Stable small integer identifying the message type on the wire. */
  typeId: number;
  name: string;
  version: number;
  header: H;
  blobs: readonly B[];
}

export type MessageOf<H extends z.ZodType, B extends string> = z.infer<H> & { [K in B]: Uint8Array };

export interface Contract<H extends z.ZodType, B extends string> extends ContractSpec<H, B> {
  encode(message: MessageOf<H, B>, options?: EncodeOptions): Uint8Array;
  /**
   * The same bytes as `encode`, written into `region` in front of the last blob, which must already lie in
   * `region` (a decoder wrote it there): the message is a view of `region`, and the blob is never copied.
   */
  encodeInPlace(message: MessageOf<H, B>, region: Uint8Array): Uint8Array;
  decode(bytes: Uint8Array): MessageOf<H, B>;
}

export interface EncodeOptions {
  /**
   * Put the bytes in a SharedArrayBuffer: a worker thread can then read a decoded message's blobs where they
   * are, with no copy (frames: 1.4 MB each, 40 a second).
   */
  shared?: boolean;
}

export function defineContract<H extends z.ZodType, B extends string>(
  spec: ContractSpec<H, B>,
): Contract<H, B> {
  /** The checked header's bytes and the blobs, in the contract's order. */
  const parts = (message: MessageOf<H, B>) => {
    const headerFields: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(message as Record<string, unknown>)) {
      if (!(spec.blobs as readonly string[]).includes(k)) headerFields[k] = v;
    }
    const checked = spec.header.safeParse(headerFields);
    if (!checked.success) {
      throw new ContractError(`cannot encode ${spec.name}: ${describeIssues(checked.error)}`);
    }
    const blobs = spec.blobs.map((name) => {
      const blob = (message as Record<string, unknown>)[name];
      if (!(blob instanceof Uint8Array))
        throw new ContractError(`cannot encode ${spec.name}: ${name} is not bytes`);
      return blob;
    });
    const header = Buffer.from(
      JSON.stringify({ ...(checked.data as object), _blobs: blobs.map((b) => b.byteLength) }),
      "utf8",
    );
    return { header, blobs };
  };

  /** Preamble, header and the first `count` blobs into `out` from `start`; returns where the next blob goes. */
  const writeFront = (
    out: Uint8Array,
    start: number,
    header: Uint8Array,
    blobs: Uint8Array[],
    count: number,
  ) => {
    out.set(MAGIC, start);
    out[start + 3] = FORMAT_VERSION;
    out[start + 4] = spec.typeId;
    out[start + 5] = spec.version;
    new DataView(out.buffer, out.byteOffset).setUint32(start + 6, header.byteLength);
    out.set(header, start + PREAMBLE);
    let offset = start + PREAMBLE + header.byteLength;
    for (const blob of blobs.slice(0, count)) {
      out.set(blob, offset);
      offset += blob.byteLength;
    }
    return offset;
  };

  const encode = (message: MessageOf<H, B>, options: EncodeOptions = {}): Uint8Array => {
    const { header, blobs } = parts(message);
    const total = PREAMBLE + header.byteLength + blobs.reduce((n, b) => n + b.byteLength, 0);
    const out = new Uint8Array(options.shared ? new SharedArrayBuffer(total) : new ArrayBuffer(total));
    const offset = writeFront(out, 0, header, blobs, blobs.length - 1);
    if (blobs.length > 0) out.set(blobs[blobs.length - 1]!, offset);
    return out;
  };

  const encodeInPlace = (message: MessageOf<H, B>, region: Uint8Array): Uint8Array => {
    const { header, blobs } = parts(message);
    const last = blobs[blobs.length - 1];
    const at = last ? last.byteOffset - region.byteOffset : -1;
    if (!last || last.buffer !== region.buffer || at < 0 || at + last.byteLength > region.byteLength) {
      throw new ContractError(`cannot encode ${spec.name} in place: its last blob is not inside the region`);
    }
    const front = PREAMBLE + header.byteLength + blobs.slice(0, -1).reduce((n, b) => n + b.byteLength, 0);
    if (front > at) {
      throw new ContractError(`cannot encode ${spec.name} in place: ${front} bytes of header need more room`);
    }
    writeFront(region, at - front, header, blobs, blobs.length - 1);
    return region.subarray(at - front, at + last.byteLength);
  };

  const decode = (bytes: Uint8Array): MessageOf<H, B> => {
    const fail = (why: string): never => {
      throw new ContractError(`malformed ${spec.name} message: ${why}`);
    };
    if (!(bytes instanceof Uint8Array)) fail("payload is not bytes");
    if (bytes.byteLength < PREAMBLE) fail(`only ${bytes.byteLength} bytes, shorter than the preamble`);
    if (bytes[0] !== MAGIC[0] || bytes[1] !== MAGIC[1] || bytes[2] !== MAGIC[2])
      fail("bad magic (not a Vigil message)");
    if (bytes[3] !== FORMAT_VERSION) fail(`unsupported wire format version ${bytes[3]}`);
    if (bytes[4] !== spec.typeId)
      fail(`message type ${bytes[4]} where ${spec.typeId} (${spec.name}) was expected`);
    if (bytes[5] !== spec.version)
      fail(`contract version ${bytes[5]}, this build reads version ${spec.version}`);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const headerLength = view.getUint32(6);
    if (headerLength > MAX_HEADER_BYTES)
      fail(`header of ${headerLength} bytes exceeds the ${MAX_HEADER_BYTES} limit`);
    if (PREAMBLE + headerLength > bytes.byteLength) fail("header runs past the end of the message");
    let json: unknown;
    try {
      json = JSON.parse(
        Buffer.from(bytes.buffer, bytes.byteOffset + PREAMBLE, headerLength).toString("utf8"),
      );
    } catch (err) {
      fail(`header is not JSON (${(err as Error).message})`);
    }
    const { _blobs: lengths, ...fields } = (json ?? {}) as { _blobs?: unknown };
    if (!Array.isArray(lengths) || lengths.length !== spec.blobs.length || !lengths.every(isLength)) {
      fail(`header must list ${spec.blobs.length} blob length(s)`);
    }
    const parsed = spec.header.safeParse(fields);
    if (!parsed.success) fail(describeIssues(parsed.error));
    const result = { ...(parsed.data as object) } as Record<string, unknown>;
    let offset = PREAMBLE + headerLength;
    (lengths as number[]).forEach((length, i) => {
      if (offset + length > bytes.byteLength) fail(`blob ${spec.blobs[i]} runs past the end of the message`);
      result[spec.blobs[i]!] = bytes.subarray(offset, offset + length);
      offset += length;
    });
    if (offset !== bytes.byteLength) fail(`${bytes.byteLength - offset} trailing bytes after the last blob`);
    return result as MessageOf<H, B>;
  };

  return { ...spec, encode, encodeInPlace, decode };
}

const isLength = (n: unknown) => typeof n === "number" && Number.isInteger(n) && n >= 0;

function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join(".") || "(header)"}: ${i.message}`).join("; ");
}
