import { createReadStream, createWriteStream } from "node:fs";
import { once } from "node:events";
import { createInterface } from "node:readline";

/** Writes items one JSON document a line, waiting on the stream when it is full; how many. */
export async function writeJsonl(
  file: string,
  items: AsyncIterable<unknown> | Iterable<unknown>,
): Promise<number> {
  const out = createWriteStream(file);
  let n = 0;
  try {
    for await (const item of items) {
      if (!out.write(`${JSON.stringify(item)}\n`)) await once(out, "drain");
      n++;
    }
  } finally {
    out.end();
    await once(out, "close");
  }
  return n;
}

/** Reads a JSON-lines file in batches of `size`, naming the line of anything that is not JSON. */
export async function* readJsonl<T>(file: string, size: number): AsyncGenerator<T[]> {
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  let batch: T[] = [];
  let n = 0;
  for await (const line of lines) {
    n++;
    if (line.trim() === "") continue;
    try {
      batch.push(JSON.parse(line) as T);
    } catch (err) {
      throw new Error(`${file}:${n}: not a JSON line (${(err as Error).message})`);
    }
    if (batch.length >= size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}
