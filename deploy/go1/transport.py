"""The bridge's UDP socket: LowCmd bytes out to the robot, validated LowState packets in.

Like the SDK, the socket binds a local port and sends to the leg MCU at the address in
`BridgeConfig` (a `FakeGo1` on 127.0.0.1 in tests). Datagrams from any other address, of the wrong
length or with a bad CRC are dropped and counted, never parsed further.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from dhal.deploy.go1.packets import LOW_STATE_LENGTH, LowState, PacketError, unpack_low_state

# Enough to drain a burst of states after a scheduling hiccup without growing without bound.
_MAX_DATAGRAMS_PER_POLL = 64


@dataclass
class LinkCounters:
    sent: int = 0
    send_errors: int = 0
    received: int = 0  # valid LowStates
    crc_errors: int = 0
    wrong_length: int = 0
    foreign: int = 0  # datagrams from an address other than the robot's


class UdpLink:
    def __init__(self, robot_host: str, robot_port: int, local_host: str, local_port: int):
        self.robot_address = (socket.gethostbyname(robot_host), robot_port)
        self.counters = LinkCounters()
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._socket.bind((local_host, local_port))
        except OSError as error:
            self._socket.close()
            raise OSError(f"cannot bind the bridge's UDP port {local_host}:{local_port}: {error}") from error
        self._socket.setblocking(False)

    @property
    def local_address(self) -> tuple[str, int]:
        host, port = self._socket.getsockname()
        return host, port

    def send(self, packet: bytes) -> None:
        try:
            self._socket.sendto(packet, self.robot_address)
            self.counters.sent += 1
        except OSError:
            # A full buffer or an unplugged cable must not stop the loop; the watchdogs see the result.
            self.counters.send_errors += 1

    def receive_latest(self) -> LowState | None:
        """The newest valid LowState among the datagrams waiting, or None if there was none."""
        latest: LowState | None = None
        for _ in range(_MAX_DATAGRAMS_PER_POLL):
            try:
                data, sender = self._socket.recvfrom(2 * LOW_STATE_LENGTH)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # e.g. ICMP "port unreachable" reported on the socket
                continue
            if sender != self.robot_address:
                self.counters.foreign += 1
                continue
            if len(data) != LOW_STATE_LENGTH:
                self.counters.wrong_length += 1
                continue
            try:
                latest = unpack_low_state(data)
            except PacketError:
                self.counters.crc_errors += 1
                continue
            self.counters.received += 1
        return latest

    def close(self) -> None:
        self._socket.close()
