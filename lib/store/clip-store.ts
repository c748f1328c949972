import { keyName, type CropStore } from "./crop-store.ts";

/** Clips are cut for alerts, and for sightings on cameras that keep them (`record.keep: sightings`). */
export type ClipKind = "alerts" | "sightings";

/** What is known of a clip besides its video: kept beside it as JSON. */
export interface ClipInfo {
  kind: ClipKind;
  id: string;
  cameraId: string;
  /** The record's time (an alert's, a sighting's start): what its key is found by. */
  ts: number;
  /** Wall-clock span the video covers, ms: its first frame is at `start`. */
  start: number;
  end: number;
  /** The span asked for (pre-roll before the first face to post-roll after the last). */
  from: number;
  to: number;
  /** Why the video stops short of what was asked for (the camera dropped, the buffer had moved on); else null. */
  short: string | null;
  bytes: number;
  /** When it was cut. */
  cutTs: number;
  /** The frame geometry the record's box is measured in (see RecordSpec.frame). */
  frame?: { width: number; height: number };
  /** Why there is no video at all (nothing recorded then); `bytes` is 0. */
  none?: string;
}

const DAY_MS = 86_400_000;
const day = (ts: number) => new Date(ts).toISOString().slice(0, 10);

/**
 * Where a record's clip lies: `clips/<kind>/<day of the record's time>/<id>.{mp4,json}`. The day comes from the
 * record (an alert's time, a sighting's start), so a reader who has the record finds its clip with one request,
 * and retention deletes whole days by listing `clips/<kind>/` (a few keys a day per camera, not millions).
 */
export function clipKeys(kind: ClipKind, id: string, ts: number) {
  const base = `clips/${kind}/${day(ts)}/${keyName(id).name}`;
  return { video: `${base}.mp4`, info: `${base}.json` };
}

/** Clips in the crop store (a folder, or the S3 bucket beside the crops). */
export class ClipStore {
  constructor(readonly crops: CropStore) {}

  /** The info last, so a clip whose info is readable is whole. */
  async put(
    info: Omit<ClipInfo, "bytes" | "cutTs">,
    video: Uint8Array,
    cutTs = Date.now(),
  ): Promise<ClipInfo> {
    const keys = clipKeys(info.kind, info.id, info.ts);
    const full: ClipInfo = { ...info, bytes: video.length, cutTs };
    await this.crops.put(keys.video, video);
    await this.crops.put(keys.info, new TextEncoder().encode(JSON.stringify(full)));
    return full;
  }

  /** That a record has no clip, and why: what a reader is told instead of a bare 404. */
  async putNone(
    info: Pick<ClipInfo, "kind" | "id" | "cameraId" | "ts" | "from" | "to">,
    none: string,
    cutTs = Date.now(),
  ): Promise<ClipInfo> {
    const full: ClipInfo = { ...info, start: 0, end: 0, short: null, bytes: 0, cutTs, none };
    await this.crops.put(
      clipKeys(info.kind, info.id, info.ts).info,
      new TextEncoder().encode(JSON.stringify(full)),
    );
    return full;
  }

  async info(kind: ClipKind, id: string, ts: number): Promise<ClipInfo | undefined> {
    const bytes = await this.crops.get(clipKeys(kind, id, ts).info);
    return bytes && (JSON.parse(new TextDecoder().decode(bytes)) as ClipInfo);
  }

  async video(kind: ClipKind, id: string, ts: number): Promise<Uint8Array | undefined> {
    return this.crops.get(clipKeys(kind, id, ts).video);
  }

  /**
   * Deletes the clips of records older than `before` (whole days before its day: a record's clip is kept at
   * least as long as the record). Returns how many objects went.
   */
  async purgeBefore(kind: ClipKind, before: number): Promise<number> {
    const cutoff = day(before - DAY_MS);
    const old: string[] = [];
    for await (const { key } of this.crops.list(`clips/${kind}/`)) {
      const d = key.split("/")[2];
      if (d !== undefined && d <= cutoff) old.push(key);
    }
    await this.crops.delete(old);
    return old.length;
  }
}
