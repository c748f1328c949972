#!/usr/bin/python3
"""A real RTSP server for Vigil's ingest tests: GStreamer's gst-rtsp-server, driven through python3-gi.

Usage: rtsp_server.py PORT MOUNTS_JSON [USER:PASSWORD]
MOUNTS_JSON maps a mount path to a source:
  {"kind": "test", "width": 640, "height": 360, "fps": 25, "pattern": "ball"}  generated H.264, encoded live
    ("codec": "jpeg": Motion JPEG instead, as older IP cameras send)
  {"kind": "file", "path": "/x/clip.ts"}                                      an MPEG-TS/H.264 file, played in real time
Prints "READY <port>" once it listens on 127.0.0.1.
"""
import json
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def launch_line(spec):
    if spec["kind"] == "test":
        w, h, fps = spec.get("width", 640), spec.get("height", 360), spec.get("fps", 25)
        pattern = spec.get("pattern", "ball")
        source = f"videotestsrc is-live=true pattern={pattern} ! video/x-raw,width={w},height={h},framerate={fps}/1"
        if spec.get("codec") == "jpeg":
            # What many older IP cameras send: every frame a JPEG (RTP payload type 26).
            return f"( {source},format=I420 ! jpegenc quality=80 ! rtpjpegpay name=pay0 pt=26 )"
        return (
            f"( {source} ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} bitrate=1500 "
            f"! rtph264pay name=pay0 pt=96 config-interval=1 )"
        )
    if spec["kind"] == "file":
        return (
            f"( filesrc location={spec['path']} ! tsdemux ! h264parse "
            f"! rtph264pay name=pay0 pt=96 config-interval=1 )"
        )
    raise ValueError(f"unknown mount kind {spec['kind']}")


def main():
    port, mounts = sys.argv[1], json.loads(sys.argv[2])
    credentials = sys.argv[3] if len(sys.argv) > 3 else None
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    if credentials:
        user, password = credentials.split(":", 1)
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "user")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        server.set_auth(auth)
    for path, spec in mounts.items():
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch_line(spec))
        factory.set_shared(True)
        if credentials:
            # add_role() is variadic and invisible to gi; the structure form says the same thing.
            factory.add_role_from_structure(
                Gst.Structure.new_from_string(
                    "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
                )
            )
        server.get_mount_points().add_factory(path, factory)
    if server.attach(None) == 0:
        print(f"FAILED to listen on {port}", flush=True)
        sys.exit(1)
    print(f"READY {port}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
