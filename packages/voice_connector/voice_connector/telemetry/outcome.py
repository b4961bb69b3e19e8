"""How a call ended: one closed set, whatever the transport, so the outcome metric means the same
for a SIP call and a Twilio call.

The values are the `outcome` label of `voice_connector_calls_ended_total` and of the call
duration histogram; the detail (the bot's hang-up reason, the refusal, the error type) goes in a
separate field of the call record, never in the label.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CallOutcome(StrEnum):
    """The end of one call, as the side that ended it reported it first."""

    ACTIVE = "active"
    """Not ended yet."""
    CALLER_HANGUP = "caller_hangup"
    """The caller left: SIP BYE, Twilio `stop` or the stream closed."""
    BOT_HANGUP = "bot_hangup"
    """Our side ended the call: the conversation (end_call tool, marker), or the pipeline."""
    TRANSFERRED = "transferred"
    """Handed to another party (SIP REFER, Twilio `<Dial>`)."""
    CANCELLED = "cancelled"
    """The caller gave up before the call was answered (SIP CANCEL)."""
    REJECTED = "rejected"
    """Refused before the answer: no common codec, the node full, draining or not ready."""
    IDLE_TIMEOUT = "idle_timeout"
    """The far end went silent on the wire for too long."""
    MAX_DURATION = "max_duration"
    """The call reached its time limit and was ended with a goodbye."""
    FLAVOR_UNAVAILABLE = "flavor_unavailable"
    """The flavor's services were down: the caller heard the apology."""
    ERROR = "error"
    """The call failed on our side."""


@dataclass
class Ending:
    """A call's outcome and its detail, set once: the first side to report the end wins (a
    caller's BYE after our hang-up does not turn a bot hang-up into a caller hang-up)."""

    outcome: CallOutcome = CallOutcome.ACTIVE
    outcome_detail: str = ""
    """Why, in words: the bot's hang-up reason, the SIP refusal, the error type."""

    def end_with(self, outcome: CallOutcome, detail: str = "") -> bool:
        """Record the end unless one was recorded already; True when this one counted."""
        if self.outcome is not CallOutcome.ACTIVE or outcome is CallOutcome.ACTIVE:
            return False
        self.outcome, self.outcome_detail = outcome, detail
        return True
