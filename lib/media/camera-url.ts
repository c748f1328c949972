/** A camera that streams (RTSP, RTMP, SRT, UDP/TCP): it is reconnected when it drops, and it can be recorded. */
export const isLiveUrl = (url: string) => /^(rtsps?|rtmp|srt|udp|tcp):\/\//i.test(url);
export const isHttpUrl = (url: string) => /^https?:\/\//i.test(url);

/**
 * Whether a camera's video can be recorded for clips at all: a live stream can (unless its codec turns out not
 * to be copyable, which only the decoder finds out); a file is the recording already, and gets no clips.
 */
export const recordableUrl = (url: string) => isLiveUrl(url) || isHttpUrl(url);
