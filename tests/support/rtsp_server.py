"""A real RTSP server for tests: serves an MP4 (H.264) file as a live camera on loopback.

Run it with Debian's own interpreter, which is the only one that can import GStreamer's RTSP
server library (``python3-gi`` + ``gir1.2-gst-rtsp-server-1.0``)::

    /usr/bin/python3 tests/support/rtsp_server.py VIDEO.mp4 --port 0 --path /cam

It prints ``READY <port>`` on stdout once it listens (port 0 picks a free one) and serves until
killed. Why it is built this way:

- One "camera" pipeline plays the file in real time (``appsink sync=true``) and seeks back to the
  start at the end, forever. Every RTSP client is fed from it through one shared media, so all
  clients see one timeline that runs whether or not anyone watches, like a real camera: a reader
  that reconnects joins the live stream instead of restarting the file.
- H.264 is passed through without re-encoding (Debian's GStreamer has no H.264 encoder), so a
  client's first picture waits for the next keyframe: serve clips with a ~1 s GOP.
- Only the standard library and ``gi`` are imported: the project's venv is not on this path.
"""

from __future__ import annotations

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer

CAMERA = (
    "filesrc name=file ! qtdemux ! h264parse config-interval=-1 "
    "! video/x-h264,stream-format=byte-stream,alignment=au "
    "! appsink name=sink sync=true emit-signals=true max-buffers=2"
)
MEDIA = "( appsrc name=src is-live=true do-timestamp=true format=time ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )"


class Camera:
    """Plays the file in real time, looping, and pushes each access unit to every open media."""

    def __init__(self, path: str, loop: GLib.MainLoop) -> None:
        self.loop = loop
        self.pipeline = Gst.parse_launch(CAMERA)
        self.pipeline.get_by_name("file").set_property("location", path)
        self.pipeline.get_by_name("sink").connect("new-sample", self._on_sample)
        self.outputs: list = []
        self.start = None  # the first frame's timestamp: video often starts after 0 (audio first)
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self._on_message)

    def attach(self, factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia) -> None:
        """A client opened the shared media: start feeding its appsrc."""
        appsrc = media.get_element().get_by_name("src")
        self.outputs.append(appsrc)
        media.connect("unprepared", lambda _media: self.outputs.remove(appsrc))

    def _on_sample(self, sink) -> Gst.FlowReturn:
        sample = sink.emit("pull-sample")
        if self.start is None:
            self.start = sample.get_segment().to_stream_time(Gst.Format.TIME, sample.get_buffer().pts)
        for appsrc in list(self.outputs):
            if appsrc.get_property("caps") is None:
                appsrc.set_property("caps", sample.get_caps())
            buffer = sample.get_buffer().copy()
            buffer.pts = buffer.dts = Gst.CLOCK_TIME_NONE  # appsrc stamps it with live time
            appsrc.emit("push-buffer", buffer)
        return Gst.FlowReturn.OK

    def _on_message(self, _bus, message) -> None:
        if message.type == Gst.MessageType.EOS:
            # Seek to the first frame, not to 0, or each loop would stall for the gap before it.
            self.pipeline.seek_simple(
                Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT, self.start
            )
        elif message.type == Gst.MessageType.ERROR:
            error, _debug = message.parse_error()
            print(f"rtsp_server: camera pipeline error: {error.message}", file=sys.stderr)
            self.loop.quit()


def serve(video: str, port: int, path: str) -> int:
    """Serve ``video`` at ``rtsp://127.0.0.1:<port><path>`` until killed; 1 if it cannot listen."""
    Gst.init(None)
    loop = GLib.MainLoop()
    camera = Camera(video, loop)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(MEDIA)
    factory.set_shared(True)
    factory.connect("media-configure", camera.attach)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    server.get_mount_points().add_factory(path, factory)
    if server.attach(None) == 0:
        print(f"rtsp_server: cannot listen on 127.0.0.1:{port}", file=sys.stderr)
        return 1
    if camera.pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        print(f"rtsp_server: cannot play {video}", file=sys.stderr)
        return 1
    print(f"READY {server.get_bound_port()}", flush=True)
    loop.run()
    return 1  # the loop only ends on a pipeline error


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", help="MP4 file with an H.264 video track")
    parser.add_argument("--port", type=int, default=0, help="loopback port; 0 picks a free one")
    parser.add_argument("--path", default="/cam", help="mount path")
    args = parser.parse_args()
    return serve(args.video, args.port, args.path)


if __name__ == "__main__":
    sys.exit(main())
