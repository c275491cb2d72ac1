"""A local stand-in for the Hugging Face Hub, for the tests: a real HTTP server on 127.0.0.1.

It serves what ``huggingface_hub`` 2.x asks of the Hub when it downloads and uploads a model repo:

- ``HEAD``/``GET /{owner}/{name}/resolve/{revision}/{filename}`` with ``X-Repo-Commit``, ``ETag`` and
  ``Content-Length``, and 404s carrying the ``X-Error-Code`` the client turns into its error classes;
- ``GET /api/models/{owner}/{name}``: the repo's id, whether it is private, and its main branch's commit;
- ``POST /api/repos/create``, ``/api/models/{repo}/branch/{branch}``, ``/api/models/{repo}/preupload/{revision}``
  (every file "regular", so its bytes travel base64 in the commit), ``/api/models/{repo}/commit/{revision}`` and
  ``/api/validate-yaml``; every request is recorded, and commits become downloadable.

Repos live in memory: commits are ``{filename: bytes}``, branches point at commits. A test can make the server
serve damaged bytes for one file (:meth:`HubServer.serve`) without changing what the commit records.

:func:`client` is the other side, run by the tests in a fresh process so that the ``HF_*`` variables are read when
``huggingface_hub`` is imported, as for a user.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import torch
from typing_extensions import Self


@dataclass
class Request:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class Served:
    """Bytes served for one file of one commit in place of the committed ones, and the length announced by HEAD."""

    data: bytes
    head_size: int
    cut: bool = False  # GET announces head_size too, then closes the connection after data: a download cut short


@dataclass
class HubServer:
    """The Hub on ``http://127.0.0.1:<free port>``; start with :meth:`start` (or ``with``), stop with :meth:`stop`."""

    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    branches: dict[tuple[str, str], str] = field(default_factory=dict)  # (repo_id, branch) -> commit
    repos: set[str] = field(default_factory=set)
    private: set[str] = field(default_factory=set)  # the repos created private
    requests: list[Request] = field(default_factory=list)
    served: dict[tuple[str, str], Served] = field(default_factory=dict)  # (commit, filename) -> what to serve
    refused: dict[str, tuple[int, dict[str, str]]] = field(default_factory=dict)  # repo_id -> status, headers
    url: str = ""  # set by start, kept after stop so that clients can find the server gone
    _httpd: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def start(self) -> HubServer:
        hub = self

        class Handler(_Handler):
            server_state = hub

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = "http://{}:{}".format(*self._httpd.server_address[:2])
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port; later requests are refused."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join()
            self._httpd = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def publish(self, repo_id: str, files: dict[str, bytes] | str | Path, branch: str = "main") -> str:
        """Commit ``files`` (a dict, or every file of a folder) on top of ``branch``; returns the commit id."""
        if not isinstance(files, dict):
            files = {path.name: path.read_bytes() for path in sorted(Path(files).iterdir()) if path.is_file()}
        self.repos.add(repo_id)
        parent = self.branches.get((repo_id, branch))
        tree = {**self.commits.get(parent, {}), **files}
        digest = hashlib.sha1(f"{repo_id}\n{parent}\n{len(self.commits)}".encode())
        for name in sorted(tree):
            digest.update(name.encode() + b"\0" + hashlib.sha256(tree[name]).digest())
        commit = digest.hexdigest()
        self.commits[commit] = tree
        self.branches[(repo_id, branch)] = commit
        return commit

    def serve(self, commit: str, filename: str, data: bytes, head_size: int | None = None, cut: bool = False) -> None:
        """Serve ``data`` for ``filename`` at ``commit``, HEAD (and with ``cut``, GET) announcing ``head_size`` bytes
        (default: its own)."""
        self.served[(commit, filename)] = Served(data, len(data) if head_size is None else head_size, cut)

    def refuse(self, repo_id: str, status: int, **headers: str) -> None:
        """Answer every download from ``repo_id`` with ``status`` and ``headers`` (``X-Error-Code`` and
        ``X-Error-Message`` as the Hub sends them: a gated repo, a token without access, an outage)."""
        self.refused[repo_id] = (status, {key.replace("_", "-"): value for key, value in headers.items()})

    def received(self, method: str, path_start: str) -> list[Request]:
        """The requests received with this method whose path starts with ``path_start``."""
        return [r for r in self.requests if r.method == method and r.path.startswith(path_start)]


class _Handler(BaseHTTPRequestHandler):
    server_state: HubServer

    def log_message(self, *args: Any) -> None:
        pass  # the tests read the recorded requests instead

    def _record(self) -> tuple[Request, list[str]]:
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(self.command, self.path, dict(self.headers.items()), self.rfile.read(length))
        self.server_state.requests.append(request)
        return request, [unquote(part) for part in urlsplit(self.path).path.strip("/").split("/")]

    def _send(self, status: int, headers: dict[str, str] | None = None, body: bytes = b"",
              length: int | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, payload: Any, status: int = 200) -> None:
        self._send(status, {"Content-Type": "application/json"}, json.dumps(payload).encode())

    def _error(self, code: str, headers: dict[str, str] | None = None) -> None:
        self._send(404, {"X-Error-Code": code, "X-Error-Message": code, **(headers or {})})

    def do_HEAD(self) -> None:
        self._resolve()

    def do_GET(self) -> None:
        self._resolve()

    def _resolve(self) -> None:
        state = self.server_state
        _, parts = self._record()
        if len(parts) == 4 and parts[:2] == ["api", "models"] and self.command == "GET":  # a repo's information
            repo_id = "/".join(parts[2:])
            if repo_id not in state.repos:
                return self._error("RepoNotFound")
            return self._json({"id": repo_id, "private": repo_id in state.private,
                                "sha": state.branches.get((repo_id, "main"))})
        if len(parts) != 5 or parts[2] != "resolve":
            return self._error("EntryNotFound")
        repo_id, revision, filename = "/".join(parts[:2]), parts[3], parts[4]
        if repo_id in state.refused:
            status, headers = state.refused[repo_id]
            return self._send(status, headers)
        if repo_id not in state.repos:
            return self._error("RepoNotFound")
        commit = state.branches.get((repo_id, revision), revision)
        if commit not in state.commits:
            return self._error("RevisionNotFound")
        if filename not in state.commits[commit]:
            return self._error("EntryNotFound", {"X-Repo-Commit": commit})
        genuine = state.commits[commit][filename]
        served = state.served.get((commit, filename), Served(genuine, len(genuine)))
        headers = {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha256(genuine).hexdigest()}"',
                   "Content-Type": "application/octet-stream"}
        length = served.head_size if self.command == "HEAD" or served.cut else len(served.data)
        self._send(200, headers, served.data, length=length)

    def do_POST(self) -> None:
        state = self.server_state
        request, parts = self._record()
        if parts[:3] == ["api", "repos", "create"]:
            payload = json.loads(request.body)
            repo_id = f"{payload['organization']}/{payload['name']}"
            if repo_id in state.repos:
                return self._json({"error": "You already created this model repo",
                                   "url": f"http://{self.headers['Host']}/{repo_id}"}, status=409)
            state.repos.add(repo_id)
            if payload.get("private") or payload.get("visibility") == "private":  # huggingface_hub < 1.0, 1.0 on
                state.private.add(repo_id)
            return self._json({"url": f"http://{self.headers['Host']}/{repo_id}", "name": repo_id})
        if parts[:2] == ["api", "validate-yaml"]:
            return self._json({"errors": [], "warnings": []})
        if len(parts) == 6 and parts[:2] == ["api", "models"]:
            repo_id, action, revision = "/".join(parts[2:4]), parts[4], parts[5]
            if repo_id not in state.repos:
                return self._error("RepoNotFound")
            if action == "branch":
                if (repo_id, revision) in state.branches:
                    return self._json({"error": "branch exists"}, status=409)
                start = state.branches.get((repo_id, "main"))
                state.branches[(repo_id, revision)] = start
                return self._json({})
            if action == "preupload":
                files = json.loads(request.body)["files"]
                return self._json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                             for f in files]})
            if action == "commit":
                lines = [json.loads(line) for line in request.body.splitlines() if line.strip()]
                files = {line["value"]["path"]: base64.b64decode(line["value"]["content"])
                         for line in lines if line["key"] == "file"}
                commit = state.publish(repo_id, files, branch=revision)
                return self._json({"commitUrl": f"http://{self.headers['Host']}/{repo_id}/commit/{commit}",
                                   "commitOid": commit, "pullRequestUrl": None})
        return self._error("EntryNotFound")


def fingerprint(model: torch.nn.Module) -> str:
    """A digest of every weight of ``model``, to tell which checkpoint a load gave."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def client(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run ``from_pretrained(*call["args"], **call["kwargs"])`` for each call; the fingerprint or the error."""
    from np_draw import NPDraw

    results = []
    for call in calls:
        try:
            model = NPDraw.from_pretrained(*call.get("args", []), **call.get("kwargs", {}))
            results.append({"fingerprint": fingerprint(model)})
        except Exception as error:  # noqa: BLE001 - any error is a result: the test compares its class and message
            results.append({"error": type(error).__name__, "message": str(error)})
    return results
