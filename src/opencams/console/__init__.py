"""The web console at `/console` (docs/console.md): sign-in with an AccessKey (or STS
credentials), the account's spaces, numbers and groups, the API's actions under the same RAM
policies, the audit log, and the built-in simulator's control panel.

    session.py    the sealed session cookie, CSRF tokens, sign-in failure limits
    web.py        who is signed in, forms, rendering, sign-in and sign-out
    pages.py      the pages and actions (through rpc.endpoint.Endpoint.invoke)
    simulator.py  the simulator's control API, called in process
"""

from __future__ import annotations

from opencams.console.pages import Console
from opencams.console.session import Sessions, SignInGuard
from opencams.console.simulator import SimulatorControls

__all__ = ["Console", "Sessions", "SignInGuard", "SimulatorControls"]
