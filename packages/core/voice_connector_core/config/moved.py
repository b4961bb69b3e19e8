"""Keys that moved to another section: still read at their old place, with a deprecation warning.

Why: users' files and deployments' `VC_` variables must keep working after a key moves. The old
key is mapped onto the new one in each layer (file, then environment) before validation; the
same key set at both places to different values is an error, since which one wins would be a
guess. `config migrate` rewrites a file to the new places (`upgrade`).
"""

from __future__ import annotations

from collections.abc import Callable

from voice_connector_core.config.sections import env_name

MOVED: dict[tuple[str, str], tuple[str, str]] = {
    **{
        ("transport", key): ("pipeline", key)
        for key in (
            "vad_stop_secs",
            "user_speech_timeout_secs",
            "vad_confidence",
            "allow_interruptions",
            "turn_detection",
        )
    },
    ("twilio", "max_call_seconds"): ("pipeline", "max_call_seconds"),
    ("twilio", "max_message_bytes"): ("general", "http_ws_max_message_bytes"),
}
"""(old section, old key) → (new section, new key)."""

Problem = Callable[[str, str, str, str], None]
"""(source, section, key, message) of an error."""


def home(section: str, key: str) -> str:
    return f"[{section}] {key}"


def apply(
    layer: dict[str, dict[str, str]],
    origin: dict[str, dict[str, str]],
    warn: Callable[[str], None],
    problem: Problem,
) -> None:
    """Move the old keys of one layer (section → key → value) to their new places, in place.

    `origin` (section → key → a file or an env variable) follows each key that moves.
    """
    for (old_section, old_key), (new_section, new_key) in MOVED.items():
        old_values = layer.get(old_section, {})
        if old_key not in old_values:
            continue
        value = old_values.pop(old_key)
        source = origin[old_section][old_key]
        new_values = layer.setdefault(new_section, {})
        current = new_values.get(new_key)
        if current is not None and current.strip() != value.strip():
            also = origin[new_section][new_key]
            problem(
                source,
                old_section,
                old_key,
                f"moved to {home(new_section, new_key)}, which {also} sets to another value: "
                "keep only the new key",
            )
            continue
        new_values[new_key] = value
        origin.setdefault(new_section, {})[new_key] = source
        hint = env_name(new_section, new_key) if source.startswith("env ") else "`config migrate`"
        warn(
            f"{source}: {home(old_section, old_key)} is deprecated, now "
            f"{home(new_section, new_key)} ({hint})"
        )
