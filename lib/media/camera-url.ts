/** A camera that streams (RTSP, RTMP, SRT, UDP/TCP): it is reconnected when it drops, and it can be recorded. */
export const isLiveUrl = (url: string) => /^(rtsps?|rtmp|srt|udp|tcp):\/\//i.test(url);
export const isHttpUrl = (url: string) => /^https?:\/\//i.test(url);

/**
 * Whether a camera's video can be recorded for clips at all: a live stream can (unless its codec turns out not
 * to be copyable, which only the decoder finds out); a file is the recording already, and gets no clips.
 */
export const recordableUrl = (url: string) => isLiveUrl(url) || isHttpUrl(url);

/** Why a file camera has no clips, wherever it is said (its status, the API's 404). */
export const FILE_NOT_RECORDED = "a file, not a live camera: clips are recorded from live cameras only";

/** Whether a camera's `record.keep` cuts clips of its sightings as well as of its alerts. */
export const keepsSightingClips = (keep: string) => keep === "sightings" || keep === "all";
