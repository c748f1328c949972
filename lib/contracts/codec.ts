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
  const encode = (message: MessageOf<H, B>, options: EncodeOptions = {}): Uint8Array => {
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
    const total = PREAMBLE + header.byteLength + blobs.reduce((n, b) => n + b.byteLength, 0);
    const out = new Uint8Array(options.shared ? new SharedArrayBuffer(total) : new ArrayBuffer(total));
    const view = new DataView(out.buffer);
    out.set(MAGIC, 0);
    out[3] = FORMAT_VERSION;
    out[4] = spec.typeId;
    out[5] = spec.version;
    view.setUint32(6, header.byteLength);
    out.set(header, PREAMBLE);
    let offset = PREAMBLE + header.byteLength;
    for (const blob of blobs) {
      out.set(blob, offset);
      offset += blob.byteLength;
    }
    return out;
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

  return { ...spec, encode, decode };
}

const isLength = (n: unknown) => typeof n === "number" && Number.isInteger(n) && n >= 0;

function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join(".") || "(header)"}: ${i.message}`).join("; ");
}
