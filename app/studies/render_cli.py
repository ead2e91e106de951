"""`huatuo render FILE --out OUT.png [--frame N] [--window C,W | --preset NAME] [--invert] [--rotate D]`:
the pixels the viewer shows, and the model sees, from the command line."""

from __future__ import annotations

import sys
from pathlib import Path

from .frames import PixelDecodeError
from .pixels import Window, is_hounsfield
from .presets import CT_PRESETS
from .view import FrameRenderer, ViewState, to_png


def add_arguments(parser) -> None:
    parser.add_argument("file", type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--frame", type=int, default=0)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--window", help="CENTER,WIDTH in modality units (HU for CT)")
    group.add_argument("--preset", choices=sorted(CT_PRESETS), help="a CT preset (HU data only)")
    parser.add_argument("--invert", action="store_true")
    parser.add_argument("--rotate", type=int, default=0, choices=[0, 90, 180, 270])


def run(args) -> int:
    try:
        window = None
        if args.window:
            centre, width = (float(v) for v in args.window.split(","))
            window = Window(centre, width)
        view = ViewState(window=window, invert=args.invert, rotation=args.rotate)
        if not args.file.is_file():
            print(f"error: {args.file}: no such file", file=sys.stderr)
            return 1
        renderer = FrameRenderer()  # DICOM and plain images alike: the viewer's pipeline
        if args.preset:
            if not is_hounsfield(renderer.header(args.file)):
                print(f"error: {args.file.name} is not CT in Hounsfield units; presets apply to CT only",
                      file=sys.stderr)
                return 2
            view = ViewState(window=Window(*CT_PRESETS[args.preset]), invert=args.invert, rotation=args.rotate)
        pixels = renderer.pixels(args.file, args.frame, view)
        args.out.write_bytes(to_png(pixels))
    except (PixelDecodeError, IndexError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a damaged file: say so, in one line
        print(f"error: {args.file.name} could not be read ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 1
    print(f"{args.out} ({pixels.shape[1]}×{pixels.shape[0]})")
    return 0
