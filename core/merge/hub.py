"""Publishing a merged model (or an adapter) to a Hugging Face Hub model repository, the token kept in memory only."""

from __future__ import annotations

import re
from pathlib import Path

from core.errors import StudioError
from core.models.registry import hub_reachable

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def push_to_hub(folder: str | Path, repo_id: str, token: str, private: bool = True) -> str:
    """Upload a merged model (or an adapter) folder to a Hugging Face Hub model repository.

    The token lives only in this call's memory: it is handed to ``HfApi`` and never written to a
    file, an environment variable or a log, and it is scrubbed from any error message.

    Args:
        folder: a merged folder (config.json) or an adapter folder (adapter_config.json).
        repo_id: ``owner/name``; created if missing.
        token: a Hugging Face token with write access.
        private: create the repository as private.
    Returns:
        The repository's URL.
    Raises:
        StudioError: bad folder or repo id, no token, the Hub unreachable (offline), or refused.
    """
    folder = Path(folder)
    if not ((folder / "config.json").is_file() or (folder / "adapter_config.json").is_file()):
        raise StudioError(f"{folder} holds no model (no config.json or adapter_config.json)", field=str(folder))
    if not _REPO_ID.match(repo_id or ""):
        raise StudioError(f"the repository id must look like owner/name, got {repo_id!r}", field="repo_id")
    if not token or not token.strip():
        raise StudioError("a Hugging Face token with write access is needed to push", field="token")
    if not hub_reachable():
        raise StudioError("cannot push: the Hugging Face Hub is unreachable (offline?); the model stays in "
                          f"{folder}", field="hub")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token.strip())
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                          commit_message="Upload from LoRA Studio", ignore_patterns=[".*", "**/.*"])
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status in (401, 403):
            msg = "the Hub refused the token (it needs write access to this repository)"
        else:
            msg = f"the Hub answered HTTP {status}: {str(e).splitlines()[0][:200]}"
        raise StudioError(msg.replace(token.strip(), "***"), field="hub") from None
    except (OSError, ValueError) as e:  # connection dropped, bad arguments
        raise StudioError(f"push failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}".replace(token.strip(),
                                                                                                      "***"),
                          field="hub") from None
    return str(url) if url else f"https://huggingface.co/{repo_id}"
