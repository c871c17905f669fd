"""Server metrics in the Prometheus text exposition format (version 0.0.4)."""

from __future__ import annotations

__all__ = ["RTT_BUCKETS", "Metrics", "resident_bytes"]

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

RTT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass
class Metrics:
    """Counters and gauges; ``render()`` gives the /metrics body."""

    connections: int = 0
    sessions: int = 0
    connections_total: int = 0
    messages_in: Counter[str] = field(default_factory=Counter)
    messages_out: Counter[str] = field(default_factory=Counter)
    bytes_in: int = 0
    bytes_out: int = 0
    replays: int = 0
    replayed_messages: int = 0
    continuity_lost: int = 0
    retransmits: int = 0
    auth_rejected: int = 0
    rate_limited: int = 0
    closes: Counter[int] = field(default_factory=Counter)
    rtt_counts: list[int] = field(default_factory=lambda: [0] * (len(RTT_BUCKETS) + 1))
    rtt_sum: float = 0.0
    #: ``wsp serve --record`` (rendered only when recording is on)
    recording: bool = False
    record_sessions: int = 0
    record_skipped: Counter[str] = field(default_factory=Counter)
    record_files: int = 0
    record_bytes: int = 0
    record_errors: int = 0
    #: ``--broker nats://`` (rendered only with a networked broker)
    broker: str = ""
    broker_up: bool = True
    broker_stored: int = 0
    broker_duplicates: int = 0
    broker_retries: int = 0
    sessions_saved: int = 0
    sessions_resumed_remote: int = 0
    sessions_taken: int = 0
    presence: dict[str, int] = field(default_factory=dict)

    def observe_rtt(self, rtt: float) -> None:
        self.rtt_sum += rtt
        for i, bound in enumerate(RTT_BUCKETS):
            if rtt <= bound:
                self.rtt_counts[i] += 1
                return
        self.rtt_counts[-1] += 1

    def render(self) -> str:
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
            lines.append(f"# HELP wsp_{name} {help_text}")
            lines.append(f"# TYPE wsp_{name} {kind}")
            for labels, value in samples:
                lines.append(
                    f"wsp_{name}{labels} {value:g}"
                    if isinstance(value, float)
                    else f"wsp_{name}{labels} {value}"
                )

        metric("connections", "gauge", "Open WebSocket connections.", [("", self.connections)])
        metric("sessions", "gauge", "Sessions held (attached or resumable).", [("", self.sessions)])
        metric(
            "connections_total", "counter", "Connections accepted.", [("", self.connections_total)]
        )
        metric(
            "messages_in_total",
            "counter",
            "wsp messages received, by type.",
            [(f'{{type="{k}"}}', v) for k, v in sorted(self.messages_in.items())],
        )
        metric(
            "messages_out_total",
            "counter",
            "wsp messages sent, by type.",
            [(f'{{type="{k}"}}', v) for k, v in sorted(self.messages_out.items())],
        )
        metric(
            "bytes_in_total", "counter", "WebSocket payload bytes received.", [("", self.bytes_in)]
        )
        metric(
            "bytes_out_total", "counter", "WebSocket payload bytes sent.", [("", self.bytes_out)]
        )
        metric(
            "replays_total", "counter", "Subscribes answered with a replay.", [("", self.replays)]
        )
        metric(
            "replayed_messages_total",
            "counter",
            "Messages sent again from history.",
            [("", self.replayed_messages)],
        )
        metric(
            "continuity_lost_total",
            "counter",
            "ContinuityLost answers.",
            [("", self.continuity_lost)],
        )
        metric(
            "retransmits_total",
            "counter",
            "Messages retransmitted after an RTO.",
            [("", self.retransmits)],
        )
        metric(
            "auth_rejected_total",
            "counter",
            "Handshakes refused for credentials.",
            [("", self.auth_rejected)],
        )
        metric(
            "rate_limited_total",
            "counter",
            "Connections closed by the rate limit.",
            [("", self.rate_limited)],
        )
        metric(
            "closes_total",
            "counter",
            "Connections closed by the server, by close code.",
            [(f'{{code="{k}"}}', v) for k, v in sorted(self.closes.items())],
        )
        lines.append("# HELP wsp_rtt_seconds Heartbeat round-trip times.")
        lines.append("# TYPE wsp_rtt_seconds histogram")
        total = 0
        for bound, count in zip(RTT_BUCKETS, self.rtt_counts, strict=False):
            total += count
            lines.append(f'wsp_rtt_seconds_bucket{{le="{bound:g}"}} {total}')
        total += self.rtt_counts[-1]
        lines.append(f'wsp_rtt_seconds_bucket{{le="+Inf"}} {total}')
        lines.append(f"wsp_rtt_seconds_sum {self.rtt_sum:g}")
        lines.append(f"wsp_rtt_seconds_count {total}")
        if self.recording:
            metric(
                "record_sessions_total",
                "counter",
                "Sessions recorded (wsp serve --record).",
                [("", self.record_sessions)],
            )
            metric(
                "record_skipped_total",
                "counter",
                "WebSocket connections not recorded, by reason (tls, inspect).",
                [(f'{{reason="{k}"}}', v) for k, v in sorted(self.record_skipped.items())],
            )
            metric(
                "record_files_total",
                "counter",
                "Recording files started (sessions and their rotated parts).",
                [("", self.record_files)],
            )
            metric(
                "record_bytes_total",
                "counter",
                "Bytes written to recording files.",
                [("", self.record_bytes)],
            )
            metric(
                "record_errors_total",
                "counter",
                "Recordings ended by a write failure (the session went on).",
                [("", self.record_errors)],
            )
        if self.broker:
            self._render_broker(metric)
        rss = resident_bytes()
        if rss is not None:  # the standard process metric: what wsp fuzz watches
            lines.append("# HELP process_resident_memory_bytes Resident memory size in bytes.")
            lines.append("# TYPE process_resident_memory_bytes gauge")
            lines.append(f"process_resident_memory_bytes {rss}")
        return "\n".join(lines) + "\n"

    def _render_broker(self, metric: Any) -> None:
        metric("broker_up", "gauge", f"Whether {self.broker} is reachable.",
               [("", int(self.broker_up))])
        metric("broker_stored_total", "counter", "Publishes stored by the broker.",
               [("", self.broker_stored)])
        metric("broker_duplicates_total", "counter",
               "Publishes the broker had stored already (sent again after a resume).",
               [("", self.broker_duplicates)])
        metric("broker_retries_total", "counter",
               "Broker requests tried again (timeouts, outages).", [("", self.broker_retries)])
        metric("sessions_saved_total", "counter", "Session snapshots written for resume.",
               [("", self.sessions_saved)])
        metric("sessions_resumed_remote_total", "counter",
               "Sessions resumed here from another node's snapshot.",
               [("", self.sessions_resumed_remote)])
        metric("sessions_taken_total", "counter",
               "Sessions of this node resumed on another node.", [("", self.sessions_taken)])
        metric("presence", "gauge", "Sessions subscribed to a topic, over all nodes.",
               [(f'{{topic="{_label(t)}"}}', n) for t, n in sorted(self.presence.items())])


def _label(value: str) -> str:
    """A Prometheus label value, escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def resident_bytes() -> int | None:
    """This process's resident memory (Linux: /proc/self/statm), or None."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    import os

    return pages * os.sysconf("SC_PAGE_SIZE")
