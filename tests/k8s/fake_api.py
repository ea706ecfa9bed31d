"""A small in-process Kubernetes API server on 127.0.0.1: the recorded contract of what atft asks a cluster.

No API server can run where these tests run, so the real ``kubernetes`` and ``kubeflow-training`` clients talk
to this one over real HTTP. It implements only the namespaced REST paths atft calls -- create (POST), get,
list (``labelSelector``/``fieldSelector`` equality), watch (``watch=true``, ``resourceVersion``,
``timeoutSeconds``), delete, and ``pods/NAME/log`` (``follow``) -- with the answers a real server gives:
201 with the stored object, 404 ``NotFound``, 409 ``AlreadyExists``, 403 ``Forbidden``, 401 without the
bearer token, all as ``v1 Status`` bodies. Every request is recorded (method, path, query, body) so tests
assert exactly what was sent. Keep it honest: anything it does not implement answers 400/404/405 loudly
rather than pretending.

It serves the training operator's ``kubeflow.org/v1`` pytorchjobs and Kubeflow Trainer v2's
``trainer.kubeflow.org/v1alpha1`` trainjobs and trainingruntimes (``DEFAULT_RESOURCES``); a test leaves a group
out to play a cluster without that operator.

Job state is driven by tests: :meth:`FakeApiServer.set_status` changes an object (watchers get ``MODIFIED``),
:meth:`FakeApiServer.remove` deletes one (``DELETED``), and :meth:`FakeApiServer.on_watch` queues status
changes that start when a watch on that object opens, so a waiting client sees Created -> Running ->
Succeeded as events, deterministically.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

TOKEN = "atft-test-token"
_PATH = re.compile(r"^/(api/v1|apis/[^/]+/[^/]+)/namespaces/([^/]+)/([^/]+)(?:/([^/]+)(?:/(log))?)?$")
# prefix -> plurals this server serves; a CRD that is not installed answers 404 like a real server.
DEFAULT_RESOURCES = {
    "api/v1": {"pods", "configmaps", "serviceaccounts", "secrets", "services", "persistentvolumeclaims"},
    "apis/networking.k8s.io/v1": {"networkpolicies"},
    "apis/batch/v1": {"jobs"},
    "apis/kubeflow.org/v1": {"pytorchjobs"},
    "apis/trainer.kubeflow.org/v1alpha1": {"trainjobs", "trainingruntimes"},
    "apis/monitoring.coreos.com/v1": {"prometheusrules", "servicemonitors", "podmonitors"},
}
_VERBS = {"POST": "create", "GET": "get", "DELETE": "delete"}


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any


@dataclass
class _Event:
    rv: int
    type: str
    obj: dict[str, Any]
    key: tuple[str, str, str, str]


@dataclass
class _State:
    objects: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict)
    events: list[_Event] = field(default_factory=list)
    rv: int = 0


class FakeApiServer:
    """Start with ``with FakeApiServer() as api:``; ``api.kubeconfig(path)`` writes a kubeconfig for it."""

    def __init__(self, resources: Mapping[str, set[str]] = DEFAULT_RESOURCES) -> None:
        self.resources = {k: set(v) for k, v in resources.items()}
        self.requests: list[Request] = []
        self.logs: dict[tuple[str, str], str] = {}
        self.forbidden: set[tuple[str, str]] = set()  # (verb, plural)
        self.pending: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
        self.step_s = 0.05
        self.expire_watches = 0  # answer this many watches with 410 Expired, as after an etcd compaction
        self._state = _State()
        self._cond = threading.Condition()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def __enter__(self) -> FakeApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()

    def kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": TOKEN}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester", "namespace": namespace}}],
            "current-context": "fake",
        }
        path.write_text(yaml.safe_dump(cfg))
        return path

    # --- what tests use to set the scene and drive state ---------------------------------------------------
    def put(self, prefix: str, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        with self._cond:
            return self._store(("ADDED", (prefix, plural, meta["namespace"], meta["name"]), copy.deepcopy(obj)))

    def set_status(self, prefix: str, plural: str, ns: str, name: str, status: dict[str, Any]) -> None:
        with self._cond:
            obj = copy.deepcopy(self._state.objects[(prefix, plural, ns, name)])
            obj["status"] = status
            self._store(("MODIFIED", (prefix, plural, ns, name), obj))

    def remove(self, prefix: str, plural: str, ns: str, name: str) -> None:
        """Delete an object as another client would (watchers get ``DELETED``)."""
        with self._cond:
            self._store(
                ("DELETED", (prefix, plural, ns, name), copy.deepcopy(self._state.objects[(prefix, plural, ns, name)]))
            )

    def on_watch(self, prefix: str, plural: str, ns: str, name: str, statuses: list[dict[str, Any]]) -> None:
        self.pending[(prefix, plural, ns, name)] = list(statuses)

    def get(self, prefix: str, plural: str, ns: str, name: str) -> dict[str, Any] | None:
        with self._cond:
            return copy.deepcopy(self._state.objects.get((prefix, plural, ns, name)))

    def calls(self, method: str | None = None, plural: str | None = None) -> list[Request]:
        return [
            r
            for r in self.requests
            if (method is None or r.method == method) and (plural is None or f"/{plural}" in r.path)
        ]

    # --- the store -----------------------------------------------------------------------------------------
    def _store(self, change: tuple[str, tuple[str, str, str, str], dict[str, Any]]) -> dict[str, Any]:
        kind, key, obj = change
        self._state.rv += 1
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(self._state.rv)
        if kind == "ADDED":
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
            meta["namespace"] = key[2]
        if kind == "DELETED":
            self._state.objects.pop(key)
        else:
            self._state.objects[key] = obj
        self._state.events.append(_Event(self._state.rv, kind, copy.deepcopy(obj), key))
        self._cond.notify_all()
        return copy.deepcopy(obj)

    def _start_pending(self, keys: list[tuple[str, str, str, str]]) -> None:
        for key in keys:
            if statuses := self.pending.pop(key, None):
                threading.Thread(target=self._play, args=(key, statuses), daemon=True).start()

    def _play(self, key: tuple[str, str, str, str], statuses: list[dict[str, Any]]) -> None:
        for status in statuses:
            time.sleep(self.step_s)
            self.set_status(*key, status)


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}  # fmt: skip


def _matches(obj: dict[str, Any], query: dict[str, str]) -> bool:
    """Equality-based selectors only (what atft sends); anything else is a 400 in the handler."""
    meta = obj.get("metadata", {})
    for term in filter(None, query.get("labelSelector", "").split(",")):
        key, _, value = term.partition("=")
        if (meta.get("labels") or {}).get(key) != value:
            return False
    for term in filter(None, query.get("fieldSelector", "").split(",")):
        key, _, value = term.partition("=")
        if key == "metadata.name" and meta.get("name") != value:
            return False
        if key == "metadata.namespace" and meta.get("namespace") != value:
            return False
    return True


def _handler_for(api: FakeApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # watches and followed logs are chunked, as from a real API server

        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read api.requests
            pass

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def do_DELETE(self) -> None:
            self._serve()

        def do_PUT(self) -> None:
            self._serve()

        def do_PATCH(self) -> None:
            self._serve()

        def _serve(self) -> None:
            url = urlsplit(self.path)
            query = dict(parse_qsl(url.query))
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            api.requests.append(Request(self.command, url.path, query, body))
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self._send(401, _status(401, "Unauthorized", "Unauthorized"))
            match = _PATH.match(url.path)
            if match is None or match[3] not in api.resources.get(match[1], set()):
                return self._send(404, _status(404, "NotFound", "the server could not find the requested resource"))
            prefix, ns, plural, name, sub = match.groups()
            verb = _VERBS.get(self.command)
            if verb is None or (sub and (plural != "pods" or verb != "get")):
                return self._send(405, _status(405, "MethodNotAllowed", f"{self.command} {url.path}"))
            if verb == "get" and name is None:
                verb = "watch" if query.get("watch") in ("true", "True", "1") else "list"
            if (verb, plural) in api.forbidden:
                group = prefix.split("/")[1] if prefix.startswith("apis/") else ""
                message = (
                    f'{plural}.{group} "{name or ""}" is forbidden: User "tester" cannot {verb} resource '
                    f'"{plural}" in API group "{group}" in the namespace "{ns}"'
                )
                return self._send(403, _status(403, "Forbidden", message))
            key = (prefix, plural, ns, name or "")
            return getattr(self, f"_{verb}")(key, query, body, sub)

        def _create(self, key: tuple[str, str, str, str], query: dict[str, str], body: Any, sub: Any) -> None:
            prefix, plural, ns, _ = key
            name = (body.get("metadata") or {}).get("name", "")
            with api._cond:
                if (prefix, plural, ns, name) in api._state.objects:
                    message = f'{plural} "{name}" already exists'
                    return self._send(409, _status(409, "AlreadyExists", message))
                stored = api._store(("ADDED", (prefix, plural, ns, name), copy.deepcopy(body)))
            self._send(201, stored)

        def _get(self, key: tuple[str, str, str, str], query: dict[str, str], body: Any, sub: Any) -> None:
            obj = api.get(*key)
            if obj is None:
                return self._send(404, _status(404, "NotFound", f'{key[1]} "{key[3]}" not found'))
            if sub == "log":
                return self._send_log(key)
            self._send(200, obj)

        def _delete(self, key: tuple[str, str, str, str], query: dict[str, str], body: Any, sub: Any) -> None:
            with api._cond:
                obj = api._state.objects.get(key)
                if obj is None:
                    return self._send(404, _status(404, "NotFound", f'{key[1]} "{key[3]}" not found'))
                api._store(("DELETED", key, copy.deepcopy(obj)))
            self._send(200, _status(200, "", "") | {"status": "Success"})

        def _list(self, key: tuple[str, str, str, str], query: dict[str, str], body: Any, sub: Any) -> None:
            if not self._selectors_ok(query):
                return None
            with api._cond:
                items = [
                    copy.deepcopy(o)
                    for k, o in sorted(api._state.objects.items())
                    if k[:3] == key[:3] and _matches(o, query)
                ]
                rv = str(api._state.rv)
            self._send(200, {"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": rv}, "items": items})

        def _watch(self, key: tuple[str, str, str, str], query: dict[str, str], body: Any, sub: Any) -> None:
            if not self._selectors_ok(query):
                return None
            deadline = time.monotonic() + float(query.get("timeoutSeconds", 30))
            self._stream("application/json", self._events(key, query, deadline))

        def _events(self, key: tuple[str, str, str, str], query: dict[str, str], deadline: float) -> Iterator[bytes]:
            with api._cond:
                if api.expire_watches > 0 and "resourceVersion" in query:
                    api.expire_watches -= 1
                    yield _line(
                        "ERROR", _status(410, "Expired", f"too old resource version: {query['resourceVersion']}")
                    )
                    return
                if "resourceVersion" in query:
                    sent = int(query["resourceVersion"])
                else:  # a fresh watch starts with ADDED for what exists now
                    items = [(k, o) for k, o in sorted(api._state.objects.items()) if k[:3] == key[:3]]
                    items = [(k, o) for k, o in items if _matches(o, query)]
                    sent = api._state.rv
                    yield from (_line("ADDED", o) for _, o in items)
                api._start_pending(
                    [k for k, o in api._state.objects.items() if k[:3] == key[:3] and _matches(o, query)]
                )
                while True:
                    new = [e for e in api._state.events if e.rv > sent and e.key[:3] == key[:3]]
                    for event in new:
                        sent = event.rv
                        if _matches(event.obj, query):
                            yield _line(event.type, event.obj)
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return
                    api._cond.wait(remaining)

        def _send_log(self, key: tuple[str, str, str, str]) -> None:
            text = api.logs.get((key[2], key[3]), "")
            # followed or not, the log here ends with the container: the stream closes after the last line
            self._stream("text/plain", (line.encode() for line in text.splitlines(keepends=True)))

        def _stream(self, content_type: str, chunks: Iterator[bytes]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for chunk in chunks:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):  # the client stopped reading: a watch it ended
                self.close_connection = True

        def _selectors_ok(self, query: dict[str, str]) -> bool:
            for term in [*query.get("labelSelector", "").split(","), *query.get("fieldSelector", "").split(",")]:
                if term and (term.count("=") != 1 or "!" in term):
                    self._send(400, _status(400, "BadRequest", f"unsupported selector term {term!r}"))
                    return False
            return True

        def _send(self, code: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _line(kind: str, obj: dict[str, Any]) -> bytes:
    return (json.dumps({"type": kind, "object": obj}) + "\n").encode()
