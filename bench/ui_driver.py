"""Start a training run in a running app through its public API, as gradio_client users do."""

from __future__ import annotations

from core import config as C
from core.paths import REPO_ROOT


def start_training_via_api(client, preset: str = "presets/demo.yaml") -> str:
    """POST /start_training with the preset's full config and the bundled MCQ sample; returns the app's note."""
    cfg = C.load_yaml(REPO_ROOT / preset)
    dataset = {"source": cfg.data.source, "hub_split": cfg.data.hub_split, "column_map": cfg.data.column_map}
    return client.predict(C.to_dict(cfg), dataset, "bench-ui", api_name="/start_training")
