"""When and whether the reference server pushes a device, and what it does with the answer.

Owns: the push policy around :class:`~emulator.mdm.wns_sender.WnsSender` (which owns the
token cache, the one refresh on 401 and the raw-push headers):

* push only to the newest ChannelURI a device reported, and only while it is active: never
  after 404/410 until the device reports a new one (C4, C5, C8);
* at most ``pushes_per_hour`` sends per device, counting only what reached WNS (D4) [PUSH];
* after 406/500/503, nothing to that channel before ``Retry-After`` [WNSHDR], then one resend
  on the clock with exponential back-off, up to ``max_push_attempts`` (D1, D2);
* 400/403/413 are never resent unchanged (D3); an untrusted host is never contacted (B5);
* WNS unreachable or a token refused: logged, retried like a 503.

Must not: sleep (retries are timers on the clock) or decide sessions (``omadm.py``).
"""

from __future__ import annotations

from typing import Any

import aiohttp

from emulator.clock import HOUR, SECOND, Clock, Timer
from emulator.mdm.config import MdmConfig
from emulator.mdm.store import DeviceRow, MdmStore, PushRow
from emulator.mdm.wns_sender import PushResult, TokenError, WnsSender

PAYLOAD = b"dmemu: please check in"  # a raw push's body carries no meaning for DMClient [PUSH]


class Pusher:
    def __init__(
        self, config: MdmConfig, store: MdmStore, clock: Clock, sender: WnsSender, log: Any
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.sender = sender
        self.log = log
        self._in_flight: set[str] = set()
        self._retries: dict[str, Timer] = {}

    async def push(self, device_id: str, reason: str) -> PushRow:
        """Push one device now (or say why not); every outcome lands in the push log."""
        row = self.store.devices[device_id]
        now = self.clock.now()
        uri = row.channel_uri
        if row.channel_state != "active" or uri is None:
            why = row.channel_gone_reason or "the device has not reported a ChannelURI yet"
            return self._log(row, reason, "no_channel", f"no usable channel ({why})")
        if row.retry_at is not None and now < row.retry_at:
            self._schedule(row)
            return self._log(row, reason, "deferred", "WNS asked to wait (Retry-After)")
        if device_id in self._in_flight:
            return self._log(row, reason, "coalesced", "a push to this device is in flight")
        if reason != "retry" and (
            self.store.sent_since(device_id, now - HOUR) >= self.config.pushes_per_hour
        ):
            return self._log(
                row,
                reason,
                "rate_limited",
                f"{self.config.pushes_per_hour} pushes in the last hour",
            )
        self._in_flight.add(device_id)
        try:
            result = await self.sender.push(uri, PAYLOAD)
        except TokenError as exc:
            result = PushResult(0, None, None, "token_error", str(exc))
        except (aiohttp.ClientError, TimeoutError) as exc:
            result = PushResult(0, None, None, "unreachable", f"WNS unreachable: {exc!r}")
        finally:
            self._in_flight.discard(device_id)
        return self._outcome(row, uri, reason, result)

    def _outcome(self, row: DeviceRow, uri: str, reason: str, result: PushResult) -> PushRow:
        now = self.clock.now()
        current = row.channel_uri == uri  # the device may have reported a new one meanwhile
        action = result.action
        if action in ("delivered", "dropped", "fix", "refused"):
            row.clear_backoff()
        elif action == "stop" and current:
            row.channel_state, row.channel_gone_reason = "gone", str(result.status)
            row.clear_backoff()
        elif action in ("retry", "token_error", "unreachable") and current:
            row.push_attempts += 1
            if row.push_attempts >= self.config.max_push_attempts:
                row.clear_backoff()
                action = "gave_up"
            else:
                backoff = self.config.backoff_base_s * SECOND * 2 ** (row.push_attempts - 1)
                row.retry_at = max(result.retry_at or 0, now + backoff)  # never before Retry-After
                self._schedule(row)
        self.store.save(row)
        return self._record(row, uri, reason, result, action)

    def _log(self, row: DeviceRow, reason: str, action: str, description: str) -> PushRow:
        """A push not sent (no channel, waiting, rate-limited ...), with the reason."""
        skipped = PushResult(0, None, None, action, description)
        return self._record(row, row.channel_uri, reason, skipped, action)

    def _record(
        self, row: DeviceRow, uri: str | None, reason: str, result: PushResult, action: str
    ) -> PushRow:
        self.log.info(
            "mdm.push" if result.status else "mdm.push_skipped",
            device_id=row.device_id,
            reason=reason,
            status=result.status,
            action=action,
            msg_id=result.msg_id,
        )
        return self.store.log_push(
            PushRow(
                id=0,
                device_id=row.device_id,
                at=self.clock.now(),
                channel_uri=uri,
                reason=reason,
                http_status=result.status,
                wns_status=result.wns_status,
                msg_id=result.msg_id,
                action=action,
                description=result.description,
            )
        )

    def _schedule(self, row: DeviceRow) -> None:
        """One pending resend per device, at its ``retry_at`` on the clock."""
        assert row.retry_at is not None
        timer = self._retries.get(row.device_id)
        if timer is not None and not timer.cancelled and timer.when == row.retry_at:
            return
        if timer is not None:
            timer.cancel()
        self._retries[row.device_id] = self.clock.call_at(row.retry_at, self._fire, row.device_id)

    def _fire(self, device_id: str) -> None:
        self._retries.pop(device_id, None)
        self.clock.spawn(self.push(device_id, "retry"), name=f"mdm-retry-{device_id}")

    def cancel_all(self) -> None:
        for timer in self._retries.values():
            timer.cancel()
        self._retries.clear()
