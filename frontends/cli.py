"""The ``zoomreel`` command: render one video, or run the service.

``zoomreel render SOURCE -o OUT.mp4`` renders locally; ``zoomreel serve`` runs the
REST API with in-process workers (and its own Redis unless ``ZOOMREEL_REDIS_URL``);
``zoomreel worker`` runs workers only, against ``ZOOMREEL_REDIS_URL``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

from engine.errors import ZoomreelError

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="zoomreel", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    render = sub.add_parser("render", help="render one image (path or http(s) URL) to an MP4")
    render.add_argument("source", help="image file or http(s) URL")
    render.add_argument("-o", "--output", required=True, help="the MP4 to write")
    render.add_argument("--length", type=float, default=5.0, help="seconds (default 5)")
    render.add_argument("--frame-rate", type=int, default=30, help="15..60 (default 30)")
    render.add_argument("--zoom-speed", type=float, default=3.0,
                        help="zoom growth in %% per second, 0..100 (default 3)")
    render.add_argument("--width", type=int, default=1920)
    render.add_argument("--height", type=int, default=1080)
    render.add_argument("--crf", type=int, default=None,
                        help="x264 quality, 0..51 (default: the engine's, 26)")
    render.add_argument("--preset", default=None,
                        help="x264 preset (default: the engine's, ultrafast)")
    render.add_argument("--x264-params", default=None,
                        help='libx264 options over the preset, "key=value:..." '
                        "(default: the engine's, cabac=1:deblock=0,0)")
    render.add_argument("--allow-private-urls", action="store_true", default=None,
                        help="let SOURCE URLs reach loopback/private addresses")

    serve = sub.add_parser("serve", help="run the REST API with in-process workers")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--data-dir", default=None, help="default $ZOOMREEL_DATA_DIR or "
                       "./zoomreel-data")
    serve.add_argument("--workers", type=int, default=2, help="render threads (default 2)")
    serve.add_argument("--public-url", default=None, help="base of download_url")
    serve.add_argument("--redis-url", default=None, help="external Redis (default: embedded)")
    serve.add_argument("--max-queue-length", type=int, default=None)

    worker = sub.add_parser("worker", help="run workers against $ZOOMREEL_REDIS_URL")
    worker.add_argument("--threads", type=int, default=2, help="render threads (default 2)")
    worker.add_argument("--data-dir", default=None)
    worker.add_argument("--redis-url", default=None)
    return parser


class _Progress:
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if not self.tty or (now - self.last < 0.1 and done < total):
            return
        self.last = now
        width = 30
        filled = width * done // max(total, 1)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} frames")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _render(args: argparse.Namespace) -> int:
    from engine import RenderSpec, render_video

    encoder = {name: getattr(args, name) for name in ("crf", "preset", "x264_params")
               if getattr(args, name) is not None}
    spec = RenderSpec(length=args.length, frame_rate=args.frame_rate,
                      zoom_speed=args.zoom_speed, width=args.width, height=args.height,
                      **encoder)
    source: str | bytes = args.source
    if args.source.lower().startswith(("http://", "https://")):
        from engine.fetch import fetch_url

        allow = args.allow_private_urls
        if allow is None:
            allow = os.environ.get("ZOOMREEL_ALLOW_PRIVATE_URLS", "0") == "1"
        source = fetch_url(args.source, allow_private=allow)
    result = render_video(source, args.output, spec, progress=_Progress())
    print(f"{result.path}: {result.frames} frames, {result.duration:g} s, "
          f"{result.width}x{result.height}, {result.size_bytes} bytes")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``zoomreel`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "render":
            return _render(args)
        from frontends import serve

        if args.command == "serve":
            return serve.serve(args)
        return serve.worker(args)
    except ZoomreelError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except OSError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
