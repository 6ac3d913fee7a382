#!/usr/bin/env python3
"""Acceptance check: two seed-000 clients in one session see each other.

Usage:
    python3 tests/python/two_clients.py ws://127.0.0.1:8080/ws [--timeout SECONDS]

A teacher and a student join a fresh session (random unique id) with the
Python `websockets` library and check, each from its own socket, that it sees
the other's chat (`chat.send` -> `chat.message`), presence (`presence.update`
with `extra` -> `presence.event`), typing (`isTyping: true` -> `presence.event`
with `status: "typing"`) and lease changes (`control.lease.set` /
`control.lease.release` -> `control.lease.state`), plus ping/pong, that live
events arrive in strictly increasing `seq` after the connect snapshot, that no
`error` envelope arrives, and that a clean close shows the leaver offline.

Exits 0 with one "ok: ..." line on success; exits 1 with a "FAIL: ..." message
(listing what arrived while waiting) on the first failed check.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from typing import Any, Callable, Optional
from urllib.parse import urlencode, urlsplit, urlunsplit

try:
    import websockets
    import websockets.exceptions
except ImportError:  # pragma: no cover - reported, not tested
    print(
        "FAIL: the Python package 'websockets' is not installed "
        "(python3 -m pip install --user websockets)",
        file=sys.stderr,
    )
    sys.exit(1)

Frame = dict[str, Any]
Predicate = Callable[[Frame], bool]

# Envelope types that carry a live event's seq (the snapshot types carry the
# seq they are current to instead).
LIVE_TYPES = {"chat.message", "presence.event", "control.lease.state"}
SNAPSHOT_TYPES = {"chat.sync", "presence.snapshot"}


class CheckFailed(Exception):
    """One acceptance check did not hold; the message says which and why."""


def short(frame: Any, limit: int = 300) -> str:
    text = frame if isinstance(frame, str) else json.dumps(frame, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def close_info(exc: BaseException) -> str:
    """Close code and reason of a ConnectionClosed, across websockets versions."""
    rcvd = getattr(exc, "rcvd", None)
    if rcvd is not None:
        return f"close code {rcvd.code} {rcvd.reason!r}"
    code = getattr(exc, "code", None)
    if code is not None:
        return f"close code {code} {getattr(exc, 'reason', '')!r}"
    return f"closed without a close frame ({exc})"


class Client:
    """One participant's socket, with a backlog of frames not yet matched."""

    def __init__(self, label: str, base_url: str, session_id: str, participant_id: str,
                 name: str, role: str, client: str, timeout: float) -> None:
        self.label = label
        self.session_id = session_id
        self.participant_id = participant_id
        self.name = name
        self.role = role
        self.timeout = timeout
        query = urlencode({
            "sessionId": session_id,
            "participantId": participant_id,
            "name": name,
            "role": role,
            "client": client,
        })
        parts = urlsplit(base_url)
        joined = f"{parts.query}&{query}" if parts.query else query
        self.url = urlunsplit((parts.scheme, parts.netloc, parts.path or "/", joined, ""))
        self.ws: Any = None
        self.backlog: list[Frame] = []
        self.received = 0
        self.snapshot_seq: Optional[int] = None
        self.last_live_seq: Optional[int] = None

    async def connect(self) -> None:
        try:
            self.ws = await websockets.connect(
                self.url, open_timeout=self.timeout, max_size=2**20
            )
        except Exception as exc:  # refused, HTTP 400, timeout: all fatal here
            detail = f"{type(exc).__name__}: {exc}"
            body = getattr(getattr(exc, "response", None), "body", None)
            if isinstance(body, (bytes, bytearray)) and body.strip():
                detail += f" ({bytes(body).decode('utf-8', 'replace').strip()})"
            raise CheckFailed(f"{self.label}: cannot open {self.url}: {detail}") from exc

    async def send(self, action: str, payload: Optional[dict[str, Any]] = None) -> None:
        envelope: dict[str, Any] = {"action": action}
        if payload is not None:
            envelope["payload"] = payload
        try:
            await self.ws.send(json.dumps(envelope))
        except websockets.exceptions.ConnectionClosed as exc:
            raise CheckFailed(
                f"{self.label}: socket closed while sending {action}: {close_info(exc)}"
            ) from exc

    def _check_frame(self, frame: Frame) -> None:
        """Checks every frame as it arrives: no errors, seq order."""
        kind = frame.get("type")
        if kind == "error":
            raise CheckFailed(f"{self.label}: got an error envelope: {short(frame)}")
        seq = frame.get("seq")
        if kind in SNAPSHOT_TYPES:
            if not isinstance(seq, int):
                raise CheckFailed(f"{self.label}: {kind} without an integer seq: {short(frame)}")
            self.snapshot_seq = seq
        elif kind in LIVE_TYPES:
            if not isinstance(seq, int):
                raise CheckFailed(f"{self.label}: {kind} without an integer seq: {short(frame)}")
            floor = max(x for x in (self.snapshot_seq, self.last_live_seq, -1) if x is not None)
            if seq <= floor:
                raise CheckFailed(
                    f"{self.label}: {kind} seq {seq} is not above the last seen seq {floor} "
                    f"(missed ordering or a duplicate): {short(frame)}"
                )
            self.last_live_seq = seq

    async def _read_one(self, deadline: float, what: str, seen: list[str],
                        earlier: int = 0) -> Frame:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise asyncio.TimeoutError
        try:
            raw = await asyncio.wait_for(self.ws.recv(), remaining)
        except websockets.exceptions.ConnectionClosed as exc:
            raise CheckFailed(self._failure(
                f"socket closed ({close_info(exc)}) while waiting for {what}", seen, earlier
            )) from exc
        if isinstance(raw, bytes):
            raise CheckFailed(f"{self.label}: got a binary frame ({len(raw)} bytes)")
        try:
            frame = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise CheckFailed(f"{self.label}: got a frame that is not JSON: {short(raw)}") from exc
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            raise CheckFailed(f"{self.label}: got a frame without a string type: {short(raw)}")
        self.received += 1
        seen.append(short(frame))
        self._check_frame(frame)
        return frame

    def _failure(self, headline: str, seen: list[str], earlier: int = 0) -> str:
        lines = [f"{self.label} ({self.participant_id}): {headline}"]
        if seen:
            lines.append(f"  frames that arrived meanwhile ({len(seen)}):")
            lines.extend(f"    {text}" for text in seen[-20:])
        else:
            lines.append("  no frame arrived meanwhile")
        if earlier:
            lines.append(f"  earlier frames not matched by any check ({earlier}):")
            lines.extend(f"    {short(frame)}" for frame in self.backlog[:earlier][-10:])
        return "\n".join(lines)

    async def expect(self, what: str, predicate: Predicate,
                     timeout: Optional[float] = None) -> Frame:
        """Returns the first frame (backlog first, then new ones) matching
        `predicate`; frames that do not match stay in the backlog."""
        for index, frame in enumerate(self.backlog):
            if predicate(frame):
                return self.backlog.pop(index)
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        earlier = len(self.backlog)
        seen: list[str] = []
        while True:
            try:
                frame = await self._read_one(deadline, what, seen, earlier)
            except asyncio.TimeoutError:
                raise CheckFailed(
                    self._failure(f"no {what} within {limit:g} s", seen, earlier)
                ) from None
            if predicate(frame):
                return frame
            self.backlog.append(frame)

    async def expect_first(self, what: str, predicate: Predicate) -> Frame:
        """The very next frame must match."""
        if self.backlog:
            frame = self.backlog.pop(0)
        else:
            seen: list[str] = []
            deadline = time.monotonic() + self.timeout
            try:
                frame = await self._read_one(deadline, what, seen)
            except asyncio.TimeoutError:
                raise CheckFailed(
                    self._failure(f"no {what} within {self.timeout:g} s", seen)
                ) from None
        if not predicate(frame):
            raise CheckFailed(f"{self.label}: expected {what} next, got {short(frame)}")
        return frame

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


def is_type(kind: str, **data: Any) -> Predicate:
    """A frame of `kind` whose data has every given field equal."""
    def predicate(frame: Frame) -> bool:
        if frame.get("type") != kind:
            return False
        body = frame.get("data")
        if not isinstance(body, dict):
            return False
        return all(body.get(key) == value for key, value in data.items())
    return predicate


def require(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


async def check_chat(sender: Client, receivers: list[Client], message_id: str,
                     content: str) -> None:
    await sender.send("chat.send", {"messageId": message_id, "content": content})
    for client in receivers:
        frame = await client.expect(
            f"chat.message {message_id} from {sender.label}",
            is_type("chat.message", messageId=message_id),
        )
        data = frame["data"]
        expected = {
            "sessionId": sender.session_id,
            "messageId": message_id,
            "participantId": sender.participant_id,
            "participantName": sender.name,
            "role": sender.role,
            "content": content,
        }
        for key, value in expected.items():
            require(data.get(key) == value,
                    f"{client.label}: chat.message {message_id} has {key}={data.get(key)!r}, "
                    f"expected {value!r}: {short(frame)}")
        require(isinstance(data.get("createdAt"), str) and data["createdAt"].endswith("Z"),
                f"{client.label}: chat.message createdAt is not an ISO-8601 UTC time: "
                f"{short(frame)}")


async def check_presence_extra(sender: Client, receiver: Client, extra: dict[str, Any]) -> None:
    await sender.send("presence.update", {"status": "online", "extra": extra})
    frame = await receiver.expect(
        f"presence.event with {sender.label}'s extra",
        is_type("presence.event", participantId=sender.participant_id, extra=extra),
    )
    data = frame["data"]
    require(data.get("sessionId") == sender.session_id and data.get("name") == sender.name
            and data.get("role") == sender.role and data.get("status") == "online",
            f"{receiver.label}: presence.event for {sender.label} has wrong fields: {short(frame)}")
    if isinstance(extra.get("color"), str):
        require(data.get("color") == extra["color"],
                f"{receiver.label}: color should come from extra.color {extra['color']!r}: "
                f"{short(frame)}")


async def check_typing(sender: Client, receiver: Client) -> None:
    await sender.send("presence.update", {"isTyping": True})
    await receiver.expect(
        f"presence.event with {sender.label} typing",
        is_type("presence.event", participantId=sender.participant_id,
                status="typing", isTyping=True),
    )
    await sender.send("presence.update", {"isTyping": False})
    await receiver.expect(
        f"presence.event with {sender.label} no longer typing",
        is_type("presence.event", participantId=sender.participant_id,
                status="online", isTyping=False),
    )


async def check_lease(holder: Client, clients: list[Client], step_index: int) -> None:
    await holder.send("control.lease.set", {"stepIndex": step_index, "leaseDurationMs": 30_000})
    lease_id = None
    for client in clients:
        frame = await client.expect(
            f"control.lease.state with the lease to {holder.label}",
            is_type("control.lease.state", leaseTo=holder.participant_id, stepIndex=step_index),
        )
        data = frame["data"]
        require(data.get("sessionId") == holder.session_id
                and isinstance(data.get("leaseId"), str) and data["leaseId"]
                and isinstance(data.get("epoch"), int)
                and isinstance(data.get("issuedAt"), str)
                and isinstance(data.get("expiresAt"), str),
                f"{client.label}: incomplete control.lease.state: {short(frame)}")
        if lease_id is None:
            lease_id = data["leaseId"]
        require(data["leaseId"] == lease_id,
                f"{client.label}: saw leaseId {data['leaseId']!r}, another client saw {lease_id!r}")
    await holder.send("control.lease.release", {"leaseId": lease_id})
    for client in clients:
        frame = await client.expect(
            f"cleared control.lease.state after {holder.label}'s release",
            is_type("control.lease.state", leaseId=None),
        )
        data = frame["data"]
        require(data.get("leaseTo") is None and data.get("issuedAt") is None
                and data.get("expiresAt") is None and data.get("stepIndex") == step_index
                and data.get("sessionId") == holder.session_id,
                f"{client.label}: a cleared lease should keep stepIndex {step_index} and null "
                f"leaseTo/issuedAt/expiresAt: {short(frame)}")


async def run(url: str, timeout: float) -> str:
    run_id = uuid.uuid4().hex[:12]
    session_id = f"accept-{run_id}"
    teacher = Client("teacher", url, session_id, f"t-{run_id}", "Ada Teacher", "teacher",
                     "web", timeout)
    student = Client("student", url, session_id, f"s-{run_id}", "Bo Student", "student",
                     "tablet", timeout)
    both = [teacher, student]
    try:
        # Connect: chat.sync then presence.snapshot, each current to a seq.
        await teacher.connect()
        sync = await teacher.expect_first("chat.sync", is_type("chat.sync", sessionId=session_id))
        require(sync["data"].get("messages") == [],
                f"teacher: a fresh session should sync no messages: {short(sync)}")
        snap = await teacher.expect_first(
            "presence.snapshot", is_type("presence.snapshot", sessionId=session_id))
        roster = {p.get("participantId"): p for p in snap["data"].get("participants", [])}
        me = roster.get(teacher.participant_id)
        require(me is not None and me.get("status") == "online" and me.get("role") == "teacher",
                f"teacher: presence.snapshot should show the teacher online: {short(snap)}")

        await student.connect()
        await student.expect_first("chat.sync", is_type("chat.sync", sessionId=session_id))
        snap = await student.expect_first(
            "presence.snapshot", is_type("presence.snapshot", sessionId=session_id))
        roster = {p.get("participantId"): p for p in snap["data"].get("participants", [])}
        require(roster.get(teacher.participant_id, {}).get("status") == "online"
                and roster.get(student.participant_id, {}).get("status") == "online",
                f"student: presence.snapshot should show both online: {short(snap)}")
        joined = await teacher.expect(
            "presence.event for the student joining",
            is_type("presence.event", participantId=student.participant_id, status="online"),
        )
        require(joined["data"].get("name") == student.name
                and joined["data"].get("role") == "student",
                f"teacher: the student's presence.event has wrong name/role: {short(joined)}")

        # Keepalive.
        await student.send("system.ping", {})
        pong = await student.expect("system.pong", is_type("system.pong"))
        require(isinstance(pong["data"].get("serverTime"), str),
                f"student: system.pong without serverTime: {short(pong)}")

        # Chat, both ways; the sender sees its own message too.
        await check_chat(teacher, both, f"m-t-{run_id}", "Welcome! Open page 3.")
        await check_chat(student, both, f"m-s-{run_id}", "On it \u2014 merci \U0001f44d")

        # Presence with extra, both ways.
        await check_presence_extra(student, teacher, {"cursor": {"x": 12, "y": 34},
                                                      "color": "#a1b2c3"})
        await check_presence_extra(teacher, student, {"hand": "down", "page": 3})

        # Typing, both ways.
        await check_typing(student, teacher)
        await check_typing(teacher, student)

        # Lease: the student takes and releases it, then the teacher.
        await check_lease(student, both, 3)
        await check_lease(teacher, both, 5)

        # A clean close shows the leaver offline to the other.
        await student.close()
        await teacher.expect(
            "presence.event with the student offline after a clean close",
            is_type("presence.event", participantId=student.participant_id, status="offline"),
        )
        return (f"ok: teacher and student in session {session_id} saw each other's chat, "
                f"presence, typing and lease changes ({teacher.received + student.received} "
                f"frames, seq up to {teacher.last_live_seq})")
    finally:
        for client in both:
            try:
                await client.close()
            except Exception:
                pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", nargs="?", default="ws://127.0.0.1:8080/ws",
                        help="the bridge's WebSocket URL (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds to wait for each expected frame (default: %(default)s)")
    args = parser.parse_args()
    try:
        summary = asyncio.run(run(args.url, args.timeout))
    except CheckFailed as failure:
        print(f"FAIL: {failure}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("FAIL: interrupted", file=sys.stderr)
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
