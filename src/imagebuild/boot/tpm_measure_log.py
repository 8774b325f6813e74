"""systemd's userspace TPM measurement log, /run/log/systemd/tpm2-measure.log.

systemd 257's systemd-pcrextend (boot phases, machine id, file systems) and systemd-cryptsetup append one
JSON-SEQ record per measurement (RFC 7464: an ASCII RS byte, the JSON text, a newline), close to TCG
CEL-JSON without "recnum":

    {"pcr": 11, "digests": [{"hashAlg": "sha256", "digest": "<hex>"}, ...], "content_type": "systemd",
     "content": {"string": "enter-initrd", "bootId": "...", "timestamp": ..., "eventType": "phase"}}

The firmware log does not hold these: a PCR 11 replay needs the firmware's events (systemd-stub's
sections) followed by these.
"""

from __future__ import annotations

import json
from typing import Any

from imagebuild.boot.tpm_eventlog import Event, EventLogError

MEASURE_LOG_PATH = "/run/log/systemd/tpm2-measure.log"
RECORD_SEPARATOR = "\x1e"


def _event(record: Any, number: int) -> Event:
    where = f"tpm2-measure.log record {number}"
    if not isinstance(record, dict) or not isinstance(record.get("pcr"), int):
        raise EventLogError(f"{where}: not an object with a \"pcr\" number")
    digests = {}
    for entry in record.get("digests") or []:
        try:
            digests[str(entry["hashAlg"]).lower()] = bytes.fromhex(entry["digest"])
        except (KeyError, TypeError, ValueError):
            raise EventLogError(f"{where}: a digest is not {{\"hashAlg\": ..., \"digest\": <hex>}}") from None
    content: dict[str, Any] = record["content"] if isinstance(record.get("content"), dict) else {}
    description = content.get("string")
    kind = content.get("eventType")
    return Event(
        pcr=record["pcr"], event_type=None, digests=digests,
        description=str(description) if description is not None else (str(kind) if kind else None),
        source="userspace",
    )


def parse_measure_log(text: str) -> list[Event]:
    """The records of a tpm2-measure.log, in order."""
    events = []
    chunks = [chunk for chunk in text.split(RECORD_SEPARATOR) if chunk.strip()]
    for number, chunk in enumerate(chunks, start=1):
        try:
            record = json.loads(chunk)
        except json.JSONDecodeError as e:
            raise EventLogError(f"tpm2-measure.log record {number}: not JSON ({e.msg})") from None
        events.append(_event(record, number))
    return events
