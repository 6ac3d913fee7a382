#!/usr/bin/env python3
"""A voice backend for meno-realtime, in Python with grpcio.

It attaches to a core with ``BackendService.Attach`` as the VOICE backend of
a tenant. Clients of the assistant dialect (``/ws/assistant``) send
``voice_start``, ``voice_data`` (base64) and ``voice_end``; the bridge decodes
the audio and the core hands this backend, in order, one ``BackendWork`` per
message. The backend writes each voice session's audio to
``<out-dir>/<voice_session_id>.<audioFormat>`` and, at ``voice_end``, answers
the connection the voice came from with one ``chat_response`` such as
"received 48213 bytes of webm audio".

The gRPC code is generated from the repository's ``proto/`` when the backend
starts (``grpc_tools.protoc``), into a temporary directory or ``--stubs-dir``.

    python3 examples/python-voice-backend/backend.py \\
        --core http://127.0.0.1:50051 --tenant default --out-dir ./voice

It attaches again, with a growing pause, whenever the stream ends, and stops
cleanly on SIGTERM or Ctrl-C. Needs ``pip install grpcio grpcio-tools``.
"""

import argparse
import asyncio
import importlib
import os
import re
import signal
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Optional

import grpc

PROTO_FILES = ["meno/realtime/v1/types.proto", "meno/realtime/v1/realtime.proto"]
DEFAULT_PROTO_DIR = Path(__file__).resolve().parents[2] / "proto"
MIN_BACKOFF = 0.2
MAX_BACKOFF = 10.0
# Names that are safe as a file name on every system.
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
SAFE_FORMAT = re.compile(r"[A-Za-z0-9]{1,16}")


def log(message: str) -> None:
    print(f"voice-backend: {message}", file=sys.stderr, flush=True)


def generate_stubs(proto_dir: Path, stubs_dir: Path):
    """Runs protoc (from grpcio-tools) on proto_dir and imports the result."""
    from grpc_tools import protoc

    import grpc_tools

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    stubs_dir.mkdir(parents=True, exist_ok=True)
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{proto_dir}",
            f"-I{well_known}",
            f"--python_out={stubs_dir}",
            f"--grpc_python_out={stubs_dir}",
            *PROTO_FILES,
        ]
    )
    if code != 0:
        raise SystemExit(f"protoc failed on {proto_dir} (exit {code})")
    # The generated modules import each other as meno.realtime.v1.*
    # (namespace packages, no __init__.py needed).
    sys.path.insert(0, str(stubs_dir))
    pb = importlib.import_module("meno.realtime.v1.realtime_pb2")
    pb_grpc = importlib.import_module("meno.realtime.v1.realtime_pb2_grpc")
    return pb, pb_grpc


@dataclass
class VoiceSession:
    """One voice session being received."""

    path: Path
    file: BinaryIO
    audio_format: str
    received: int = 0
    next_chunk: int = 0
    warned: bool = False


class VoiceBackend:
    def __init__(self, args, pb, pb_grpc):
        self.args = args
        self.pb = pb
        self.pb_grpc = pb_grpc
        self.out_dir = Path(args.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.metadata = ()
        if args.grpc_token_file:
            token = Path(args.grpc_token_file).read_text().strip()
            if not token:
                raise SystemExit(f"{args.grpc_token_file} is empty")
            self.metadata = (("authorization", f"Bearer {token}"),)
        # (connection id, voice session id) -> the session being written.
        self.sessions: dict[tuple[str, str], VoiceSession] = {}
        self.attached = False

    def channel(self) -> grpc.aio.Channel:
        core = self.args.core
        if core.startswith("https://"):
            return grpc.aio.secure_channel(
                core[len("https://") :], grpc.ssl_channel_credentials()
            )
        return grpc.aio.insecure_channel(core.removeprefix("http://"))

    async def run_forever(self) -> None:
        """Attaches, serves until the stream ends, and attaches again."""
        backoff = MIN_BACKOFF
        while True:
            self.attached = False
            try:
                await self.attach_once()
                log("the core ended the stream")
            except grpc.aio.AioRpcError as err:
                log(f"backend stream failed: {err.code().name}: {err.details()}")
            except Exception as err:  # keep serving whatever went wrong
                log(f"backend stream failed: {type(err).__name__}: {err}")
            # The core tells the clients of unfinished voice sessions.
            self.close_all("the stream ended")
            if self.attached:
                backoff = MIN_BACKOFF
            log(f"attaching again in {backoff:.1f} s")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def attach_once(self) -> None:
        pb = self.pb
        async with self.channel() as channel:
            stub = self.pb_grpc.BackendServiceStub(channel)
            call = stub.Attach(metadata=self.metadata)
            # The first upstream item must be hello.
            await call.write(
                pb.BackendUpstream(
                    hello=pb.BackendHello(
                        tenant=self.args.tenant,
                        kind=pb.BACKEND_KIND_VOICE,
                        backend_id=self.args.backend_id,
                    )
                )
            )
            await call.initial_metadata()
            if call.done():
                # Refused at once (a wrong token, a bad hello): read() raises.
                await call.read()
                return
            self.attached = True
            # Scripts (and the end-to-end tests) wait for this line.
            print(
                f"attached to {self.args.core} as voice backend "
                f"{self.args.backend_id!r} of tenant {self.args.tenant!r}",
                flush=True,
            )
            while True:
                work = await call.read()
                if work == grpc.aio.EOF:
                    return
                reply = self.handle(work)
                if reply is not None:
                    await call.write(reply)

    def handle(self, work):
        """Takes one piece of work; returns the reply to send, if any."""
        item = work.WhichOneof("item")
        if item == "voice_start":
            return self.start(work)
        if item == "voice_data":
            self.data(work)
            return None
        if item == "voice_end":
            return self.end(work)
        log(f"ignoring work a voice backend does not take: {item}")
        return None

    def start(self, work):
        start = work.voice_start
        voice_id = start.voice_session_id
        if not SAFE_ID.fullmatch(voice_id):
            return self.reply_error(work, f"voice session id {voice_id!r} is not a safe file name")
        audio_format = start.audio_format if SAFE_FORMAT.fullmatch(start.audio_format) else "bin"
        key = (work.connection_id, voice_id)
        if key in self.sessions:
            self.close(key, "started again")
        path = self.out_dir / f"{voice_id}.{audio_format}"
        self.sessions[key] = VoiceSession(path, open(path, "wb"), audio_format)
        log(f"voice session {voice_id} started ({audio_format}) -> {path}")
        return None

    def data(self, work) -> None:
        data = work.voice_data
        session = self.sessions.get((work.connection_id, data.voice_session_id))
        if session is None:
            log(f"audio for a voice session not started here: {data.voice_session_id}")
            return
        # chunk_index counts 0, 1, 2, ... within a session; the core keeps
        # the order, so a gap is worth a line in the log (once per session).
        if data.chunk_index != session.next_chunk and not session.warned:
            log(
                f"voice session {data.voice_session_id}: chunk {data.chunk_index}, "
                f"expected {session.next_chunk}"
            )
            session.warned = True
        session.next_chunk = data.chunk_index + 1
        session.file.write(data.audio)
        session.received += len(data.audio)

    def end(self, work):
        voice_id = work.voice_end.voice_session_id
        session = self.sessions.pop((work.connection_id, voice_id), None)
        if session is None:
            return self.reply_error(work, f"voice session {voice_id!r} was not started here")
        session.file.close()
        log(f"voice session {voice_id} ended: {session.received} bytes in {session.path}")
        pb = self.pb
        return self.reply(
            work,
            pb.DirectMessage(
                chat_response=pb.ChatResponse(
                    message_id=str(uuid.uuid4()),
                    content=f"received {session.received} bytes of {session.audio_format} audio",
                    is_complete=True,
                )
            ),
        )

    def reply(self, work, message):
        """A reply addressed to the connection `work` came from."""
        return self.pb.BackendUpstream(
            reply=self.pb.BackendReply(
                connection_id=work.connection_id,
                user_id=work.user.user_id,
                message=message,
                trace_id=work.trace_id,
            )
        )

    def reply_error(self, work, text: str):
        error = self.pb.DirectError(code="InvalidArgument", message=text, retryable=False)
        return self.reply(work, self.pb.DirectMessage(error=error))

    def close(self, key, why: str) -> None:
        session = self.sessions.pop(key)
        session.file.close()
        log(f"voice session {key[1]} closed ({why}) after {session.received} bytes")

    def close_all(self, why: str) -> None:
        for key in list(self.sessions):
            self.close(key, why)


def parse_args(argv: Optional[list] = None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    env = os.environ.get
    parser.add_argument(
        "--core",
        default=env("MENO_CORE", "http://127.0.0.1:50051"),
        help="the core's gRPC address (http://host:port, https://host:port or host:port)",
    )
    parser.add_argument("--tenant", default=env("MENO_TENANT", "default"))
    parser.add_argument(
        "--out-dir",
        default=env("MENO_VOICE_OUT_DIR", "voice"),
        help="where <voice_session_id>.<audioFormat> files are written",
    )
    parser.add_argument(
        "--grpc-token-file",
        default=env("MENO_GRPC_TOKEN_FILE"),
        help="the core's gRPC token, sent as authorization: Bearer <token>",
    )
    parser.add_argument("--backend-id", default=env("MENO_BACKEND_ID", "example-voice-py"))
    parser.add_argument(
        "--proto-dir",
        default=str(DEFAULT_PROTO_DIR),
        help="the directory holding meno/realtime/v1/*.proto (default: the repository's proto/)",
    )
    parser.add_argument(
        "--stubs-dir",
        default=None,
        help="generate the Python gRPC code here and keep it (default: a temporary directory)",
    )
    return parser.parse_args(argv)


async def serve(args, pb, pb_grpc) -> None:
    backend = VoiceBackend(args, pb, pb_grpc)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runner = asyncio.create_task(backend.run_forever())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([runner, stopping], return_when=asyncio.FIRST_COMPLETED)
    runner.cancel()
    try:
        await runner
    except asyncio.CancelledError:
        pass
    backend.close_all("stopping")
    log("stopped")


def main() -> None:
    args = parse_args()
    proto_dir = Path(args.proto_dir)
    if args.stubs_dir:
        pb, pb_grpc = generate_stubs(proto_dir, Path(args.stubs_dir))
        asyncio.run(serve(args, pb, pb_grpc))
    else:
        with tempfile.TemporaryDirectory(prefix="meno-stubs-") as stubs_dir:
            pb, pb_grpc = generate_stubs(proto_dir, Path(stubs_dir))
            asyncio.run(serve(args, pb, pb_grpc))


if __name__ == "__main__":
    main()
