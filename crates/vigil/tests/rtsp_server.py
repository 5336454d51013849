#!/usr/bin/python3
"""A live RTSP camera for Vigil's camera tests: GStreamer's RTSP server serving a test pattern.

Usage: rtsp_server.py PORT [--codec h264|h265] [--audio] [--clock-rate RATE] [--resize-after S]

Serves rtsp://127.0.0.1:PORT/cam: a live 320x240 25 fps test pattern with a key frame every
25 frames, encoded as H.264 (x264enc) or H.265 (x265enc), and with --audio an AAC track
(audiotestsrc, avenc_aac). --clock-rate 1.05 gives the media pipeline a clock that runs 5 %
fast: the live sources produce by that clock, so the camera sends frames 5 % faster than real
time, and its RTP timestamps advance 5 % faster than the wall clock, as a camera whose crystal
runs fast does. --resize-after 6 switches the picture to 480x360 six seconds after the first
client plays, so the encoder starts over with new parameters (SPS/PPS) mid-session.

Prints "ready rtsp://..." on standard output once the server listens, and one line per client
that connects. Runs until killed.
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

VIDEO = {
    "h264": "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=300 "
    "! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=-1",
    "h265": "x265enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=300 "
    "option-string=open-gop=0 "
    "! rtph265pay name=pay0 pt=96 config-interval=-1",
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("--codec", choices=sorted(VIDEO), default="h264")
    p.add_argument("--audio", action="store_true")
    p.add_argument("--clock-rate", type=float, default=1.0)
    p.add_argument("--resize-after", type=float, default=0.0)
    args = p.parse_args()

    Gst.init(None)
    launch = (
        "( videotestsrc is-live=true pattern=ball "
        "! video/x-raw,width=320,height=240,framerate=25/1 "
        "! videoscale ! capsfilter name=size caps=video/x-raw,width=320,height=240 "
        "! " + VIDEO[args.codec]
    )
    if args.audio:
        launch += (
            " audiotestsrc is-live=true wave=sine ! audio/x-raw,rate=48000,channels=1 "
            "! avenc_aac ! rtpmp4gpay name=pay1 pt=97"
        )
    launch += " )"

    fast_clock = None
    if args.clock_rate != 1.0:
        # A clock of its own (not the process-wide system clock), calibrated to run at
        # clock_rate: external = (internal - now) * num / den + now.
        fast_clock = Gst.SystemClock()
        now = fast_clock.get_internal_time()
        den = 1_000_000
        fast_clock.set_calibration(now, now, int(args.clock_rate * den), den)

    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)
    factory.set_latency(0)

    def configure(_factory, media):
        if fast_clock is not None:
            media.set_clock(fast_clock)
        if args.resize_after > 0:
            size = media.get_element().get_by_name("size")

            def resize():
                size.set_property(
                    "caps", Gst.Caps.from_string("video/x-raw,width=480,height=360")
                )
                print("resized", flush=True)
                return False

            GLib.timeout_add(int(args.resize_after * 1000), resize)

    factory.connect("media-configure", configure)

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    server.get_mount_points().add_factory("/cam", factory)

    def client_connected(_server, client):
        print("client connected", flush=True)

    server.connect("client-connected", client_connected)
    if server.attach(None) == 0:
        print(f"cannot listen on port {args.port}", file=sys.stderr, flush=True)
        sys.exit(1)
    print(f"ready rtsp://127.0.0.1:{args.port}/cam", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
