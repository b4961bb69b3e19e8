"""A Twilio-only node with remote AI services (the Cloud Run image) never loads local models.

Checked in a fresh interpreter: build the media node app for `providers = twilio` with remote
STT/LLM/TTS, run its start-up and health endpoints, build one call's services, then look at
`sys.modules`. The `local-models` extra (faster-whisper, Piper, Vosk) and everything OpenSIPS
(the `opensips` package, aiortc, our RTP transport) must be absent.
"""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
from starlette.testclient import TestClient
from voice_connector_core.config import load_settings
from voice_connector.pipeline.builder import create_services
from media_node.app import create_app

settings = load_settings(None, env={
    "VC_TRANSPORT_PROVIDERS": "twilio",
    "VC_STT_MODE": "remote", "VC_STT_URL": "http://127.0.0.1:9/",
    "VC_TTS_MODE": "remote", "VC_TTS_URL": "ws://127.0.0.1:9/tts",
    "VC_LLM_URL": "http://127.0.0.1:9",
})
with TestClient(create_app(settings)) as client:
    assert client.get("/healthz").status_code == 200
    client.get("/readyz")
create_services(settings, "CAslim")
print(json.dumps(sorted(sys.modules)))
"""
LOCAL_MODELS = {"faster_whisper", "ctranslate2", "piper", "vosk"}
OPENSIPS = {"opensips", "aiortc"}


def test_twilio_only_node_with_remote_services_imports_no_local_model_or_opensips(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    modules = json.loads(result.stdout.strip().splitlines()[-1])
    top_level = {name.split(".")[0] for name in modules}
    assert top_level & LOCAL_MODELS == set()
    assert top_level & OPENSIPS == set()
    assert [m for m in modules if m.startswith("voice_connector.transports.opensips")] == []
