"""A stand-in for Twilio's REST API (the Calls resource of api.twilio.com/2010-04-01).

It speaks Twilio's wire shape, so the real `twilio` client (base URL pointed here through
`[twilio] api_base_url`) and Pipecat's serializer hang-up (its `base_url`) talk to it unchanged:

- `POST /2010-04-01/Accounts/{AccountSid}/Calls.json` (form: To, From, Twiml|Url, ...) → 201 and
  the new call resource;
- `POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json` (form: Status=completed, or
  Twiml=...) → 200 and the updated call resource; unknown calls → 404 with Twilio error 20404;
- `GET` of a call → its resource;
- HTTP Basic auth AccountSid:AuthToken, else 401 with Twilio error 20003.

Every request is recorded (method, path, form, time) for the tests to assert on.
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

API = "/2010-04-01"


@dataclass
class RecordedRequest:
    method: str
    path: str
    form: dict[str, str]
    authorized: bool
    at: float = field(default_factory=time.monotonic)


class TwilioRestDouble:
    """Stands in for Twilio's REST API: the Calls list and instance resources, recorded."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.calls: dict[str, dict[str, Any]] = {}
        self.requests: list[RecordedRequest] = []
        self.app = Starlette(
            routes=[
                Route(API + "/Accounts/{account}/Calls.json", self._create, methods=["POST"]),
                Route(
                    API + "/Accounts/{account}/Calls/{sid}.json",
                    self._instance,
                    methods=["GET", "POST"],
                ),
            ]
        )

    def add_call(self, sid: str, to: str = "+15550002222", from_: str = "+15550001111") -> None:
        """A call in progress that the connector may update (as if Twilio had placed it)."""
        self.calls[sid] = self._resource(sid, to, from_, "in-progress", "inbound")

    def updates(self, sid: str) -> list[dict[str, str]]:
        """The forms of the update requests made to call `sid`, in order."""
        suffix = f"/Calls/{sid}.json"
        return [r.form for r in self.requests if r.method == "POST" and r.path.endswith(suffix)]

    def _resource(self, sid: str, to: str, from_: str, status: str, direction: str) -> dict:
        now = formatdate(usegmt=True)
        return {
            "sid": sid,
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "to": to,
            "from": from_,
            "status": status,
            "direction": direction,
            "date_created": now,
            "date_updated": now,
            "start_time": now,
            "end_time": None,
            "duration": None,
            "price": None,
            "parent_call_sid": None,
            "uri": f"{API}/Accounts/{self.account_sid}/Calls/{sid}.json",
        }

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == self.account_sid and password == self.auth_token

    async def _record(self, request: Request) -> RecordedRequest:
        body = (await request.body()).decode()
        recorded = RecordedRequest(
            method=request.method,
            path=request.url.path,
            form=dict(parse_qsl(body, keep_blank_values=True)),
            authorized=self._authorized(request),
        )
        self.requests.append(recorded)
        return recorded

    @staticmethod
    def _error(status: int, code: int, message: str) -> JSONResponse:
        body = {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }
        return JSONResponse(body, status_code=status)

    async def _create(self, request: Request) -> JSONResponse:
        recorded = await self._record(request)
        if not recorded.authorized or request.path_params["account"] != self.account_sid:
            return self._error(401, 20003, "Authenticate")
        form = recorded.form
        if not form.get("To") or not form.get("From") or not (form.get("Twiml") or form.get("Url")):
            return self._error(400, 21201, "No 'To' number is specified")
        sid = "CA" + uuid.uuid4().hex
        self.calls[sid] = self._resource(sid, form["To"], form["From"], "queued", "outbound-api")
        return JSONResponse(self.calls[sid], status_code=201)

    async def _instance(self, request: Request) -> JSONResponse:
        recorded = await self._record(request)
        if not recorded.authorized or request.path_params["account"] != self.account_sid:
            return self._error(401, 20003, "Authenticate")
        call = self.calls.get(request.path_params["sid"])
        if call is None:
            return self._error(404, 20404, "The requested resource was not found")
        if request.method == "POST":
            if recorded.form.get("Status") == "completed":
                call["status"] = "completed"
            elif recorded.form.get("Twiml") or recorded.form.get("Url"):
                call["status"] = "in-progress"
            call["date_updated"] = formatdate(usegmt=True)
        return JSONResponse(call)
