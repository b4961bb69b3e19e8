"""The Cloud Functions as uploaded: the archive the program builds, unpacked into an empty
directory, its requirements.txt installed into a clean venv, started with functions-framework and
the env the program renders, and called the way Twilio calls them.

Twilio's side is computed with the `twilio` package's RequestValidator; the media node is the
rehearsal's Cloud Run node, which must accept the call token the function hands out.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from twilio.request_validator import RequestValidator

from tests.integration.twilio.rest_double import TwilioRestDouble
from tests.integration.twilio.stream_client import open_stream
from tests.rehearsal.launch import Running
from tests.rehearsal.rendered import Function, Rendered
from tests.support.servers import ServerThread, free_port

VENV_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vc-rehearsal"
CALL_SID = "CA" + "7" * 32


def function_venv(requirements: Path) -> Path:
    """A venv holding only `requirements` (PyPI and the files the archive carries), installed from
    the archive's directory as Cloud Functions' build does, kept per content between runs."""
    source = requirements.parent
    local = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix == ".whl")
    content = requirements.read_bytes() + b"".join(p.read_bytes() for p in local)
    digest = hashlib.sha256(content + sys.version.encode()).hexdigest()[:12]
    venv = VENV_CACHE / f"functions-{digest}"
    stamp = venv / ".complete"
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
             "-r", requirements.name],
            check=True,
            cwd=source,  # the archive's relative paths (its core wheel) resolve from here
        )
        stamp.touch()
    return venv


@pytest.fixture(scope="session")
def unpacked(stack: Rendered, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each archive the program uploads, unpacked into an empty directory."""
    out = {}
    for name, function in stack.functions.items():
        directory = tmp_path_factory.mktemp(f"fn-{name}")
        assert not any(directory.iterdir())
        with zipfile.ZipFile(function.archive) as archive:
            archive.extractall(directory)
        out[name] = directory
    return out


@pytest.fixture(scope="session")
def fn_venv(unpacked: dict[str, Path]) -> Path:
    requirements = {p.joinpath("requirements.txt").read_bytes() for p in unpacked.values()}
    assert len(requirements) == 1, "the functions ship different requirements"
    return function_venv(next(iter(unpacked.values())) / "requirements.txt")


@pytest.fixture(scope="session")
def twilio_api(stack: Rendered) -> Iterator[tuple[TwilioRestDouble, ServerThread]]:
    double = TwilioRestDouble(
        stack.secret_value("twilio-account-sid"), stack.secret_value("twilio-auth-token")
    )
    server = ServerThread(double.app).start(wait_ready=False)
    yield double, server
    server.stop()


def media_addresses(stack: Rendered, node: Running) -> dict[str, str]:
    """The media host the program hands the functions → the rehearsal's Cloud Run node."""
    host = stack.outputs["media_host"]
    local = f"127.0.0.1:{node.launch.port}"
    return {f"https://{host}": f"http://{local}", f"wss://{host}": f"ws://{local}"}


def start_function(
    function: Function,
    stack: Rendered,
    directory: Path,
    venv: Path,
    addresses: dict[str, str],
    extra_env: dict[str, str] | None = None,
) -> Running:
    """functions-framework in the unpacked directory, as the Python runtime starts it."""
    port = free_port()
    env = stack.env_of(function)
    for key, value in env.items():
        for cloud, local in addresses.items():
            value = value.replace(cloud, local)
        env[key] = value
    env |= {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(directory.parent),
        "PORT": str(port),
        "K_SERVICE": function.name.replace("_", "-"),
        "FUNCTION_TARGET": function.name,
        "FUNCTION_SIGNATURE_TYPE": "http",
        **(extra_env or {}),
    }
    argv = [
        str(venv / "bin" / "functions-framework"),
        f"--target={function.name}",
        "--source=main.py",
        "--host=127.0.0.1",
        f"--port={port}",
    ]
    from tests.rehearsal.launch import Launch

    launch = Launch(function.name, argv, env, directory, port, dict(addresses))
    process = Running(launch, directory.parent / f"{function.name}.log")
    process.wait_until(lambda: _answers(port), f"{function.name} listens", 60)
    return process


def _answers(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
    except httpx.HTTPError:
        return False
    return True


def post_as_twilio(
    process: Running, public_url: str, auth_token: str, form: dict[str, str]
) -> httpx.Response:
    """POST as Twilio does to `public_url`, through a front end like Google's (TLS ends there)."""
    signature = RequestValidator(auth_token).compute_signature(public_url, form)
    host = urlparse(public_url).netloc
    return httpx.post(
        f"http://127.0.0.1:{process.launch.port}/",
        data=form,
        headers={
            "X-Twilio-Signature": signature,
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": host,
        },
        timeout=30,
    )


def stream_of(xml: str) -> tuple[str, dict[str, str]]:
    (connect,) = list(ET.fromstring(xml))
    (stream,) = list(connect)
    return stream.get("url", ""), {p.get("name", ""): p.get("value", "") for p in stream}


def node_accepts(node: Running, stream_url: str, call_sid: str, params: dict[str, str]) -> bool:
    """Open the stream as Twilio would (signed upgrade); True once the node speaks on it."""
    token = RequestValidator(node.launch.env["VC_TWILIO_AUTH_TOKEN"])
    headers = {"X-Twilio-Signature": token.compute_signature(stream_url, {})}
    loop = asyncio.new_event_loop()  # not asyncio.run: it would unset the current loop
    try:
        outcome = loop.run_until_complete(
            open_stream(stream_url, call_sid, params, headers, wait_seconds=20)
        )
    finally:
        loop.close()
    return outcome.got_media


def test_twilio_voice_as_uploaded_connects_the_call_to_the_media_node(
    stack: Rendered, unpacked: dict[str, Path], fn_venv: Path, cloud_run_node: Running
) -> None:
    addresses = media_addresses(stack, cloud_run_node)
    function = stack.functions["twilio_voice"]
    process = start_function(function, stack, unpacked["twilio_voice"], fn_venv, addresses)
    try:
        url = stack.outputs["url:twilio_voice"]
        form = {
            "CallSid": CALL_SID,
            "AccountSid": stack.secret_value("twilio-account-sid"),
            "From": "+15550001111",
            "To": "+18005550000",  # the shipped INI's [flavor:support] matches ^\+?1800
            "CallStatus": "ringing",
            "Direction": "inbound",
        }
        auth = stack.secret_value("twilio-auth-token")
        forged = post_as_twilio(process, url + "/", "not-the-auth-token", form)
        assert forged.status_code == 403, forged.text
        response = post_as_twilio(process, url + "/", auth, form)
        assert response.status_code == 200, process.output()
        stream_url, params = stream_of(response.text)
        expected = f"wss://{stack.outputs['media_host']}/twilio/stream"
        for cloud, local in addresses.items():
            expected = expected.replace(cloud, local)
        assert stream_url == expected
        assert params["flavor"] == "support"
        assert node_accepts(cloud_run_node, stream_url, CALL_SID, params), cloud_run_node.output()
        tampered = {**params, "flavor": "default"}
        assert not node_accepts(cloud_run_node, stream_url, "CA" + "8" * 32, tampered)
    finally:
        process.close()


def test_twilio_status_as_uploaded_logs_the_callback(
    stack: Rendered, unpacked: dict[str, Path], fn_venv: Path, cloud_run_node: Running
) -> None:
    addresses = media_addresses(stack, cloud_run_node)
    function = stack.functions["twilio_status"]
    process = start_function(function, stack, unpacked["twilio_status"], fn_venv, addresses)
    try:
        url = stack.outputs["url:twilio_status"]
        form = {"CallSid": CALL_SID, "CallStatus": "completed", "CallDuration": "42"}
        response = post_as_twilio(process, url + "/", stack.secret_value("twilio-auth-token"), form)
        assert response.status_code == 204, process.output()
        assert CALL_SID in process.output()
    finally:
        process.close()


def test_outbound_call_as_uploaded_places_a_call_the_node_accepts(
    stack: Rendered,
    unpacked: dict[str, Path],
    fn_venv: Path,
    cloud_run_node: Running,
    twilio_api: tuple[TwilioRestDouble, ServerThread],
) -> None:
    double, api = twilio_api
    addresses = media_addresses(stack, cloud_run_node)
    function = stack.functions["outbound_call"]
    process = start_function(
        function,
        stack,
        unpacked["outbound_call"],
        fn_venv,
        addresses,
        {"VC_TWILIO_API_BASE_URL": api.http},  # Twilio's REST API → its double
    )
    try:
        token = stack.secret_value("outbound-call-token")
        refused = httpx.post(
            f"http://127.0.0.1:{process.launch.port}/", json={"to": "+15550002222"}, timeout=30
        )
        assert refused.status_code == 401
        response = httpx.post(
            f"http://127.0.0.1:{process.launch.port}/",
            json={"to": "+18005550123"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert response.status_code == 201, process.output()
        assert response.json()["flavor"] == "support"
        (created,) = [r.form for r in double.requests if r.path.endswith("/Calls.json")]
        assert created["From"] == "+15550100200"  # OUTBOUND_FROM_NUMBER from twilioPhoneNumber
        assert created["StatusCallback"] == stack.outputs["url:twilio_status"]
        stream_url, params = stream_of(created["Twiml"])
        assert node_accepts(cloud_run_node, stream_url, "CA" + "9" * 32, params)
    finally:
        process.close()
