"""The ``zoomreel`` command: render one video, or run the service.

``zoomreel render SOURCE -o OUT.mp4`` renders locally (``OUT.webm`` for ``--codec vp9``);
``zoomreel reel A.jpg B.jpg ... -o OUT.mp4`` renders many photos as one reel;
``zoomreel serve`` runs the REST API with in-process workers (and its own Redis unless
``ZOOMREEL_REDIS_URL``);
``zoomreel worker`` runs workers only, against ``ZOOMREEL_REDIS_URL``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from zoomreel.errors import SpecError, ZoomreelError
from zoomreel.reelspec import MOTION_FIELDS, REEL_FIELDS
from zoomreel.spec import AUTO, RENDER_FIELDS, Field

from ._process import prefer_passive_openmp, prepare_rendering
from .config import add_options, from_env

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors ending on an ``error: ...`` line and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {message}\n")


def _point(text: str) -> tuple[float, ...]:
    """``X,Y`` as a pair of numbers (a point's option; ``auto`` is a literal)."""
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not X,Y (two numbers) or {AUTO}") from None


def _option_type(field: Field) -> Any:
    kinds: dict[str, Callable[[str], Any]] = {"integer": int, "number": float,
                                              "point": _point}
    kind = kinds.get(field.kind, str)
    if not field.literals:
        return kind

    def number_or_word(text: str) -> Any:  # ``--length audio`` or ``--length 30``
        return text if text in field.literals else kind(text)

    number_or_word.__name__ = getattr(kind, "__name__", "value")  # argparse's message
    return number_or_word


def _option_help(field: Field) -> str:
    text = f"{field.help}: {field.rule().removeprefix('must be ')}"
    default = field.to_json(field.default)
    if isinstance(default, list):
        text += f" (default {','.join(f'{v:g}' for v in default)})"
    elif isinstance(default, int | float):
        text += f" (default {default:g})"
    elif default is not None:
        text += f" (default {default})"
    return text.replace("%", "%%")


def _add_field_options(parser: argparse.ArgumentParser,
                       fields: dict[str, Field] = RENDER_FIELDS) -> None:
    """One option per field: ``--frame-rate`` for ``frame_rate``, and so on.

    Ranges are checked by RenderSpec (ReelSpec, Slide), so the CLI says exactly what
    the API says.
    """
    for name, field in fields.items():
        if field.cli:
            metavar = "X,Y" if field.kind == "point" else name.upper()
            if field.literals:
                metavar = "|".join((metavar, *field.literals))
            parser.add_argument("--" + name.replace("_", "-"), type=_option_type(field),
                                default=None, metavar=metavar, help=_option_help(field))


#: The motion options of ``reel`` (its ``--focus`` is the reel's field).
_SLIDE_MOTION = {name: f for name, f in MOTION_FIELDS.items() if name not in REEL_FIELDS}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = _Parser(prog="zoomreel", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    render = sub.add_parser("render", help="render one image (path or http(s) URL) to a video")
    render.add_argument("source", help="image file or http(s) URL")
    render.add_argument("-o", "--output", required=True,
                        help="the video to write: .mp4 (.webm for --codec vp9)")
    _add_field_options(render)
    render.add_argument("--allow-private-urls", action="store_true", default=None,
                        help="let SOURCE URLs reach loopback/private addresses")
    render.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="render in N processes at once, each an equal part of the "
                        "video starting with a key frame, then join the parts without "
                        "re-encoding (AV1: always one)")

    reel = sub.add_parser("reel", help="render many photos as one video, with transitions, "
                          "a track and words")
    reel.add_argument("sources", nargs="+", metavar="SOURCE",
                      help="the slides' images in order: files or http(s) URLs")
    reel.add_argument("-o", "--output", required=True,
                      help="the video to write: .mp4 (.webm for --codec vp9)")
    reel.add_argument("--audio", metavar="FILE",
                      help="a track (mp3, m4a/aac, wav, flac, ogg/opus): file or http(s) URL")
    reel.add_argument("--caption", action="append", default=None, metavar="TEXT",
                      help="text shown over a slide: the first --caption over the first "
                      "slide, and so on")
    _add_field_options(reel, REEL_FIELDS)  # the output fields are RenderSpec's own
    group = reel.add_argument_group("motion of every slide (none given: a varied move each, "
                                    "aimed at --focus)")
    _add_field_options(group, _SLIDE_MOTION)  # type: ignore[arg-type]
    reel.add_argument("--poster", metavar="FILE.jpg", help="also write one frame as a JPEG")
    reel.add_argument("--allow-private-urls", action="store_true", default=None,
                      help="let URLs reach loopback/private addresses")

    serve = sub.add_parser("serve", help="run the REST API with in-process workers")
    add_options(serve, "serve")  # every flag with its range (config.py)
    # an API process started by serve: serve's pid, the socket it answers checks on
    serve.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    serve.add_argument("--ready-fd", type=int, default=None, help=argparse.SUPPRESS)

    worker = sub.add_parser("worker", help="run workers against $ZOOMREEL_REDIS_URL")
    add_options(worker, "worker")
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


def _check_extension(output: str, codec: str) -> None:
    from zoomreel.codecs import CODECS

    extension = CODECS[codec].extension
    if not output.lower().endswith(extension):  # a player trusts the extension
        raise SpecError("output", f"must end in {extension} for codec {codec}", output)


def _source(text: str, args: argparse.Namespace) -> str | bytes:
    """A file's path as is; an http(s) URL fetched through the URL rules."""
    if not text.lower().startswith(("http://", "https://")):
        return text
    from zoomreel.net import fetch_url

    allow = args.allow_private_urls
    if allow is None:
        allow = from_env("allow_private_urls")
    return fetch_url(text, allow_private=allow)


def _render(args: argparse.Namespace) -> int:
    from zoomreel import RenderSpec, render_video

    prepare_rendering()
    spec = RenderSpec(**{name: getattr(args, name) for name in RENDER_FIELDS
                         if getattr(args, name, None) is not None})
    _check_extension(args.output, spec.codec)
    source = _source(args.source, args)
    if args.jobs < 1:
        raise SpecError("jobs", "must be a whole number of at least 1", args.jobs)
    if args.jobs > 1:
        from ._parts import render_in_parts

        result = render_in_parts(source, args.output, spec, args.jobs, _Progress())
    else:
        result = render_video(source, args.output, spec, progress=_Progress())
    print(f"{result.path}: {result.frames} frames, {result.duration:g} s, "
          f"{result.width}x{result.height}, {result.size_bytes} bytes")
    if result.focus_used is not None:
        used = result.focus_used
        print(f"focus auto: {used.x:.2f}, {used.y:.2f} (by {used.by})")
    return 0


def _reel(args: argparse.Namespace) -> int:
    from zoomreel import ReelSpec, Slide, render_reel

    prepare_rendering()
    given = {name: getattr(args, name) for name in REEL_FIELDS
             if getattr(args, name, None) is not None}
    audio = None if args.audio is None else _source(args.audio, args)
    reel = ReelSpec(audio=audio, **given)
    _check_extension(args.output, reel.codec)
    captions = args.caption or []
    if len(captions) > len(args.sources):
        raise SpecError("caption", f"is given {len(captions)} times for "
                        f"{len(args.sources)} slides (one per slide, in order)")
    motion = {name: getattr(args, name) for name in _SLIDE_MOTION
              if getattr(args, name, None) is not None}
    slides = []
    for i, text in enumerate(args.sources):
        caption = captions[i] if i < len(captions) else None
        fields = {**motion, **({"caption": caption} if caption is not None else {})}
        slides.append(Slide.from_request(_source(text, args), fields, i))
    result = render_reel(slides, args.output, reel, progress=_Progress(), poster=args.poster)
    print(f"{result.path}: {result.slides} slides, {result.frames} frames, "
          f"{result.duration:g} s, {result.width}x{result.height}, "
          f"{'with' if result.audio else 'no'} audio, {result.size_bytes} bytes")
    for i, used in enumerate(result.focus_used):
        if used is not None:
            print(f"slide {i + 1}: focus auto: {used.x:.2f}, {used.y:.2f} (by {used.by})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``zoomreel`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    prefer_passive_openmp()
    try:
        if args.command == "render":
            return _render(args)
        if args.command == "reel":
            return _reel(args)
        from . import serve

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
