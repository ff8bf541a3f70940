"""A session spoken as a page speaks it: Gradio's queue protocol on the load test's one event loop.

gradio_client gives each client threads that wait for their answers by polling (every 50 ms,
and every millisecond while a result is read) and opens a new connection for every call's
event stream; thirty of them in one process took most of a core of the two the server runs
on, and the time their own threads waited for that core was counted as the server's latency.
A page does what a `Wire` does, with no thread of its own:

- it holds the session's heartbeat stream open while it is open (`open`); Gradio runs the
  page's unload event, which frees the session's run, when that stream ends (`close`);
- a call joins the queue with a POST and reads its answer from the session's event stream,
  which is open while any of the session's calls waits for an answer (`call`).
"""

from __future__ import annotations

import asyncio
import json
import secrets

import httpx

API = "gradio_api"


class AppError(Exception):
    """The server answered a call with an error (its message, as Gradio sent it)."""


class Endpoints:
    """The app's named endpoints, read once from its /config: each one's function index, where
    among its inputs the session's state goes (a client sends nothing there), and the value a
    fresh page shows in each of the others (what goes where a call gives fewer arguments)."""

    def __init__(self, config: dict):
        comps = {c["id"]: c for c in config.get("components", [])}
        self.fns: dict[str, tuple[int, list[tuple[bool, object]]]] = {}
        for i, dep in enumerate(config.get("dependencies", [])):
            name = dep.get("api_name")
            if name and dep.get("api_visibility", "public") != "private" and dep.get("backend_fn", True):
                inputs = [comps.get(c, {}) for c in dep.get("inputs", [])]
                self.fns[name] = (dep.get("id", i), [(c.get("type") == "state", (c.get("props") or {}).get("value"))
                                                     for c in inputs])

    @classmethod
    async def read(cls, http: httpx.AsyncClient, url: str) -> Endpoints:
        response = await http.get(f"{url}config")
        response.raise_for_status()
        return cls(response.json())

    def payload(self, api_name: str, args: tuple) -> tuple[int, list]:
        """(function index, data): `args` in the endpoint's order, None where its state goes, and
        the page's initial values after the last of `args`."""
        name = api_name.lstrip("/")
        if name not in self.fns:
            raise AppError(f"no endpoint /{name}; this server has {', '.join('/' + n for n in self.fns)}")
        fn_index, inputs = self.fns[name]
        values, rest = iter(args), object()
        data = []
        for is_state, initial in inputs:
            value = None if is_state else next(values, rest)
            data.append(initial if value is rest else value)
        return fn_index, data


class Wire:
    """One session of the app, as a page holds it. `open` before calls; `close` ends it."""

    def __init__(self, http: httpx.AsyncClient, url: str, endpoints: Endpoints):
        self.http, self.url, self.endpoints = http, url, endpoints
        self.session_hash = secrets.token_hex(6)
        self._answers: dict[str, asyncio.Future] = {}
        self._reader: asyncio.Task | None = None
        self._heartbeat: asyncio.Task | None = None

    async def open(self, timeout: float) -> None:
        """Start the heartbeat stream; returns once the server has answered it."""
        alive = asyncio.get_running_loop().create_future()
        self._heartbeat = asyncio.create_task(self._beat(alive))
        try:
            await asyncio.wait_for(asyncio.shield(alive), timeout)
        except BaseException:
            await self.close()
            raise

    async def _beat(self, alive: asyncio.Future) -> None:
        try:
            async with self.http.stream("GET", f"{self.url}{API}/heartbeat/{self.session_hash}") as response:
                response.raise_for_status()
                async for _ in response.aiter_bytes():
                    if not alive.done():
                        alive.set_result(True)
        except Exception as e:  # noqa: BLE001 - the open that waits for it says why
            if not alive.done():
                alive.set_exception(e)
        finally:
            if not alive.done():
                alive.set_exception(ConnectionError("the server closed the heartbeat stream"))

    async def close(self) -> None:
        """End the session as a closed tab does: its heartbeat stream and event stream end."""
        for task in (self._heartbeat, self._reader):
            if task is not None:
                task.cancel()
        for task in (self._heartbeat, self._reader):
            if task is not None:
                try:
                    await task
                except BaseException:  # noqa: BLE001 - cancelled, or already failed: either way gone
                    pass
        self._heartbeat = self._reader = None
        for answer in self._answers.values():
            if not answer.done():
                answer.set_exception(ConnectionError("the session was closed"))
        self._answers.clear()

    async def call(self, api_name: str, *args, timeout: float) -> list:
        """The endpoint's outputs for `args`; AppError if the server answers with an error,
        TimeoutError after `timeout` seconds (the call is then cancelled on the server)."""
        fn_index, data = self.endpoints.payload(api_name, args)
        body = {"data": data, "event_data": None, "fn_index": fn_index, "trigger_id": None,
                "session_hash": self.session_hash}
        response = await self.http.post(f"{self.url}{API}/queue/join", json=body, timeout=timeout)
        response.raise_for_status()
        event_id = response.json()["event_id"]
        answer = self._answers[event_id] = asyncio.get_running_loop().create_future()
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read())
        try:
            message = await asyncio.wait_for(answer, timeout)
        except TimeoutError:
            self._answers.pop(event_id, None)
            asyncio.create_task(self._cancel(event_id, fn_index))
            raise
        output = message.get("output") or {}
        if not message.get("success", True):
            raise AppError(output.get("error") or message.get("title") or "the server refused the call")
        return output.get("data", [])

    async def _cancel(self, event_id: str, fn_index: int) -> None:
        try:
            await self.http.post(f"{self.url}{API}/cancel", json={"event_id": event_id, "fn_index": fn_index,
                                                                 "session_hash": self.session_hash})
        except httpx.HTTPError:
            pass

    async def _read(self) -> None:
        """The session's event stream, while answers are due: each completed call's message goes
        to the call waiting for it. The server ends the stream when none waits; a call that joined
        just then gets a new one."""
        try:
            async with self.http.stream("GET", f"{self.url}{API}/queue/data",
                                        params={"session_hash": self.session_hash}) as response:
                response.raise_for_status()
                buffer = ""
                async for text in response.aiter_text():
                    buffer += text
                    while "\n\n" in buffer:
                        block, buffer = buffer.split("\n\n", 1)
                        if block.startswith("data:"):
                            self._dispatch(json.loads(block[5:]))
        except (httpx.HTTPError, ValueError) as e:
            self._fail(ConnectionError(f"event stream: {type(e).__name__}: {e}"))
            return
        if self._answers:  # joined as the stream closed: read on in a new one
            self._reader = asyncio.create_task(self._read())

    def _dispatch(self, message: dict) -> None:
        kind = message.get("msg")
        if kind == "process_completed":
            answer = self._answers.pop(message.get("event_id"), None)
            if answer is not None and not answer.done():
                answer.set_result(message)
        elif kind == "unexpected_error":
            self._fail(AppError(message.get("message") or "unexpected error"))

    def _fail(self, error: Exception) -> None:
        for answer in self._answers.values():
            if not answer.done():
                answer.set_exception(error)
        self._answers.clear()
