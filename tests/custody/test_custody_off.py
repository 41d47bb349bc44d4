"""An instance without ``custody init`` keeps working unencrypted, and says so plainly."""

from __future__ import annotations

import json
import urllib.request

from tests.conftest import run_cli


def test_without_custody_the_home_page_and_custody_status_say_footage_is_unencrypted(
    server: tuple[str, object, str],
) -> None:
    url, data, _ = server
    home = urllib.request.urlopen(url + "/", timeout=10).read().decode()
    assert "Footage on this server is stored unencrypted." in home
    assert "custodes custody init" in home
    out = run_cli("custody", "status", "--server", url).stdout.decode()
    assert "custody is off" in out and "unencrypted" in out
    st = json.loads(run_cli("custody", "status", "--server", url, "--json").stdout)
    assert st["custody"] is False
