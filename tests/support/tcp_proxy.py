"""A small TCP proxy of the tests' own, on loopback, for partitions between a client and etcd.

It runs on its own thread and event loop, so a test that blocks its loop (on etcdctl, say)
cannot stall the bytes it forwards. Three faults, each undone by :meth:`TcpProxy.heal`:

- :meth:`freeze`: connections stay open but no byte goes either way (a frozen link: the
  client sees no error, only silence, as behind a dropped route). Bytes sent meanwhile are
  held, as TCP holds unacknowledged data, and delivered after :meth:`heal` if the
  connection is still open by then.
- :meth:`refuse`: every connection is closed, and new ones are closed at once (a member
  that refuses connections).
- :meth:`cut`: every open connection is closed once; new ones are forwarded (a reset).
- :meth:`hold_replies`: requests still reach etcd, its replies are held (then ``cut()``
  loses them: a request etcd carried out whose reply never came back).

Nothing here mocks etcd: the proxy only forwards bytes to a real etcd.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator

from etcd_registry_tui.demo.embedded import HOST


class TcpProxy:
    """Forwards every connection made to ``127.0.0.1:port`` to ``target_port``."""

    def __init__(self, target_port: int, target_host: str = HOST, delay: float = 0.0) -> None:
        self.target = (target_host, target_port)
        #: One-way latency added to everything forwarded, each way (order kept): a slow link.
        self.delay = delay
        self.port = 0
        self.connections = 0  # connections accepted so far
        self.frozen = False
        self.refusing = False
        self.holding = False
        #: Once etcd has sent this many bytes in all, cut every link and refuse (None: never).
        self.cut_after: int | None = None
        self.replied = 0  # bytes etcd sent, over all links
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None  # set unless frozen (made on the loop)
        self._replying: asyncio.Event | None = None  # set unless frozen or holding replies
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()

    @property
    def endpoint(self) -> str:
        return f"{HOST}:{self.port}"

    # ---- life cycle ----------------------------------------------------------------------

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._listen)
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return

        async def shut() -> None:
            if self._server is not None:
                self._server.close()
            self._close_links()
            # connections still held by a freeze: end their handlers before the loop stops
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        self._call(shut)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    # ---- faults --------------------------------------------------------------------------

    def freeze(self) -> None:
        """Hold every connection open and forward nothing, either way."""
        self._set(frozen=True)

    def refuse(self) -> None:
        """Close every connection, and each new one as soon as it is accepted."""
        self._set(refusing=True)
        self.cut()

    def cut(self) -> None:
        """Close every open connection (new ones are forwarded unless refusing)."""

        async def run() -> None:
            self._close_links()

        self._call(run)

    def hold_replies(self) -> None:
        """Forward what the client sends; hold what etcd sends back."""
        self._set(holding=True)

    def cut_after_replies(self, nbytes: int) -> None:
        """Cut every link and refuse new ones once etcd has sent ``nbytes`` more bytes
        (mid-response: a watch's batch arrives in part)."""

        async def run() -> None:
            self.cut_after = self.replied + nbytes

        self._call(run)

    def heal(self) -> None:
        """Forward again: no freeze, no refusal, no held replies."""
        self._set(frozen=False, refusing=False, holding=False)

    # ---- internals -----------------------------------------------------------------------

    def _set(self, **flags: bool) -> None:
        async def run() -> None:
            for name, value in flags.items():
                setattr(self, name, value)
            assert self._flowing is not None and self._replying is not None
            if self.frozen:
                self._flowing.clear()
            else:
                self._flowing.set()
            if self.frozen or self.holding:
                self._replying.clear()
            else:
                self._replying.set()

        self._call(run)

    def _call(self, fn: Callable[[], object]) -> None:
        async def run() -> None:
            result = fn()
            if asyncio.iscoroutine(result):
                await result

        asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    async def _listen(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._replying = asyncio.Event()
        self._replying.set()
        self._server = await asyncio.start_server(self._handle, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def _close_links(self) -> None:
        for a, b in list(self._links):
            for writer in (a, b):
                with contextlib.suppress(Exception):
                    writer.transport.abort()
        self._links.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.refusing:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        link = (writer, up_writer)
        self._links.add(link)
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer, self._flowing),
                self._pipe(up_reader, writer, self._replying),
                return_exceptions=True,
            )
        finally:
            self._links.discard(link)
            for w in link:
                with contextlib.suppress(Exception):
                    w.close()

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        flowing: asyncio.Event | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        late: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send_late() -> None:  # with a delay: each chunk once its time has come
            while True:
                due, data = await late.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if not data:  # the end: all before it is sent
                    return
                writer.write(data)
                await writer.drain()

        sender = asyncio.ensure_future(send_late()) if self.delay > 0 else None
        try:
            while data := await reader.read(65536):
                assert flowing is not None
                await flowing.wait()  # frozen: hold it (and read no more)
                if flowing is self._replying and self.cut_after is not None:
                    room = self.cut_after - self.replied
                    if len(data) >= room:
                        writer.write(data[: max(0, room)])
                        await writer.drain()
                        self.replied, self.cut_after, self.refusing = self.cut_after, None, True
                        self._close_links()
                        return
                if flowing is self._replying:
                    self.replied += len(data)
                if sender is not None:
                    late.put_nowait((loop.time() + self.delay, data))
                    continue
                writer.write(data)
                await writer.drain()
            if sender is not None:
                late.put_nowait((loop.time() + self.delay, b""))
                await sender
        except (ConnectionError, OSError):
            pass
        finally:
            if sender is not None:
                sender.cancel()
            with contextlib.suppress(Exception):
                writer.close()


@contextlib.contextmanager
def tcp_proxy(target_port: int, delay: float = 0.0) -> Iterator[TcpProxy]:
    """A started :class:`TcpProxy` to ``127.0.0.1:target_port``, stopped on the way out
    (``delay``: one-way latency added each way)."""
    proxy = TcpProxy(target_port, delay=delay).start()
    try:
        yield proxy
    finally:
        proxy.stop()


__all__ = ["TcpProxy", "tcp_proxy"]
