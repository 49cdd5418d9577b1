"""LoRA Studio: parse the flags, build the app, serve it on 127.0.0.1 (no public share link)."""

from __future__ import annotations

import argparse
import logging
import os
import signal

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
    # uvicorn shuts the server down on SIGINT / SIGTERM, then raises the signal again with the previous handler:
    # SIGINT's raises KeyboardInterrupt; this one makes SIGTERM an exit too, so that the finally below runs
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        # open pages keep streams open: wait at most 3 s for them, then stop serving
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=3)
    finally:
        stop_training_on_exit()


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


def stop_training_on_exit(timeout: float = 600.0) -> None:
    """Ctrl-C or SIGTERM while a run trains acts like Stop: the trainer ends its step and saves the adapter and a
    checkpoint, so the run can be resumed (the training thread is a daemon: without this it would die mid-step)."""
    from core.run import Status
    from core.train.job import active_job

    job = active_job()
    if job is None or job.state not in (Status.LOADING, Status.TRAINING, Status.STOPPING):
        return
    print(f"stopping the training run {job.run_dir or ''} (saving its adapter; Ctrl-C again to abandon it) ...",
          flush=True)
    job.stop()
    job.wait(timeout)
    print(f"training run {job.run_dir or ''}: {job.state.value}", flush=True)


if __name__ == "__main__":
    from core.allocator import reexec_with_jemalloc

    reexec_with_jemalloc()  # the process starts over under jemalloc when it is installed: faster training steps
    main()
