"""rm -f while a container's monitor starts it (issue #11). The start (process,
cgroup, veth) and its record as running are one step under the container's
lock, which rm takes too: every container process is listed by ps or was
never started. A network driver that attaches slowly holds the monitor in
the middle of that step, so the rm -f lands there every time."""

from __future__ import annotations

import os
import subprocess
import time

from harness import install_plugin
from test_fault_injection import kill_leftovers, our_cgroups, our_veths

SLOW_BRIDGE = """
    import os, time
    from berth.core.hookspecs import hookimpl
    from berth.plugins.network.bridge import BridgeDriver

    class SlowBridge(BridgeDriver):
        name = "slowbridge"

        def attach(self, net, endpoint, pid):
            open(os.environ["BT_ATTACHING"], "w").close()
            time.sleep(1.5)
            super().attach(net, endpoint, pid)

    @hookimpl
    def register_network_drivers(register):
        register("slowbridge", SlowBridge)
"""


def test_rm_f_during_the_start_leaves_no_unlisted_process(berth, tmp_path):
    install_plugin(tmp_path / "site", "btslowbridge", SLOW_BRIDGE)
    marker = tmp_path / "attaching"
    berth.env.update(PYTHONPATH=os.pathsep.join([str(tmp_path / "site")] + [p for p in [berth.env.get("PYTHONPATH")]
                                                                           if p]), BT_ATTACHING=str(marker))
    berth.image
    subnet = berth.subnet.rsplit(".", 1)[0] + f".{int(berth.subnet.rsplit('.', 1)[1]) ^ 1}"
    berth("network", "create", "-d", "slowbridge", "--subnet", f"{subnet}.0/24", "slow", check=True)
    try:
        run = berth.popen("run", "-d", "--name", "racer", "--network", "slow", berth.image, "sleep", "600",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while not marker.exists():  # the monitor has started the process and waits for its network
            assert time.monotonic() < deadline and run.poll() is None, run.communicate()
            time.sleep(0.01)
        rm = berth("rm", "-f", "racer", timeout=60)
        run.communicate(timeout=60)
        assert rm.returncode == 0, rm.stderr
        end = time.monotonic() + 10
        while our_cgroups(berth) and time.monotonic() < end:
            time.sleep(0.1)
        assert our_cgroups(berth) == {}, "a container process runs that no command lists"
        assert berth("ps", "-aq").stdout == ""
        assert berth("system", "check").returncode == 0
    finally:
        ids = berth("ps", "-aq").stdout.split()
        if ids:
            berth("rm", "-f", *ids, timeout=60)
        kill_leftovers(berth)  # what a failure left running
        berth("network", "rm", "slow", timeout=60)
    assert our_veths(berth) == []
