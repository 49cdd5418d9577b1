"""LoRA Studio: parse the flags, build the app, serve it on 127.0.0.1 (no public share link)."""

from __future__ import annotations

import argparse
import logging
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="LoRA Studio: fine-tune a small language model with LoRA.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this computer only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--lang", choices=("vi", "en"), default="vi", help="language of the page at / (default vi)")
    parser.add_argument("--runs-dir", default=None, help="where run folders go (default $LORA_STUDIO_RUNS or runs/)")
    parser.add_argument("--data-dir", action="append", default=[], metavar="DIR",
                        help="a folder whose data files the page may open by name, besides uploads (repeatable)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    import uvicorn

    from gui.app import create_server

    app = create_server(args.lang, args.runs_dir, host=args.host, port=args.port, data_dirs=tuple(args.data_dir))
    print(f"LoRA Studio on http://{args.host}:{args.port}/", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
