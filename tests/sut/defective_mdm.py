"""The reference server with one defect of tests/defects.py, as a standalone process for
--server-cmd tests: ``python defective_mdm.py CHECK_ID PORT WNS_URL``. It reads the host's
wall clock (which dmemu binds through libfaketime), as `dmemu mdm` does."""

import asyncio
import sys
from urllib.parse import urlsplit

from aiohttp.resolver import DefaultResolver

from emulator.clock import WallClock
from emulator.mdm.config import MdmConfig
from emulator.mdm.server import start_mdm
from emulator.serving import stop_on_signal
from emulator.wns.config import DEMO_APP
from tests.defects import DEFECTS


async def main(check_id: str, port: int, wns_url: str) -> None:
    stop = stop_on_signal()
    config = MdmConfig(
        app=DEMO_APP,
        token_url=f"{wns_url}/accesstoken.srf",
        trusted_hosts=(urlsplit(wns_url).netloc,),
    )
    _, factory, _ = DEFECTS[check_id]
    running = await start_mdm(factory(config, WallClock(), DefaultResolver()), port=port)
    print(f"defective reference server ({check_id}) on {running.url}", flush=True)
    await stop.wait()
    await running.stop()


asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
