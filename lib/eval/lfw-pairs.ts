import { readFileSync } from "node:fs";
import path from "node:path";

export interface LfwPair {
  fold: number;
  same: boolean;
  a: string;
  b: string;
}

export interface LfwPairs {
  folds: number;
  perClass: number;
  pairs: LfwPair[];
}

const imagePath = (name: string, index: string) => path.join(name, `${name}_${index.padStart(4, "0")}.jpg`);

/**
 * The standard pairs.txt: a header "folds<TAB>n", then per fold n matched rows (name i j) followed by
 * n mismatched rows (name1 i name2 j). Image paths are relative to the images directory.
 */
export function parseLfwPairs(file: string): LfwPairs {
  const lines = readFileSync(file, "utf8")
    .split(/\r?\n/)
    .filter((l) => l.trim().length > 0);
  const header = lines[0]?.trim().split(/\s+/).map(Number);
  if (!header || header.length !== 2 || !header.every((n) => Number.isInteger(n) && n > 0)) {
    throw new Error(`${file}: first line must be "<folds> <pairs per class>", found "${lines[0] ?? ""}"`);
  }
  const [folds, perClass] = header as [number, number];
  const expected = folds * perClass * 2;
  if (lines.length - 1 < expected)
    throw new Error(`${file}: header promises ${expected} pairs, found ${lines.length - 1}`);
  const pairs: LfwPair[] = [];
  for (let i = 0; i < expected; i++) {
    const fields = lines[i + 1]!.trim().split(/\s+/);
    const fold = Math.floor(i / (2 * perClass));
    const same = i % (2 * perClass) < perClass;
    if (same && fields.length === 3) {
      pairs.push({ fold, same, a: imagePath(fields[0]!, fields[1]!), b: imagePath(fields[0]!, fields[2]!) });
    } else if (!same && fields.length === 4) {
      pairs.push({ fold, same, a: imagePath(fields[0]!, fields[1]!), b: imagePath(fields[2]!, fields[3]!) });
    } else {
      throw new Error(
        `${file}: line ${i + 2} should be a ${same ? "matched" : "mismatched"} pair: "${lines[i + 1]}"`,
      );
    }
  }
  return { folds, perClass, pairs };
}
