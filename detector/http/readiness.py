"""What /readyz answers: ready or not, and why not, from a snapshot of the process's health."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Health:
    """The facts readiness is judged on (durations in seconds).

    `stalled_s`: how long the consumer loop has made no progress, once over
    metrics.stall_after_s (else 0); `commit_pending_s`: age of the oldest processed work not
    committed yet; `commit_overdue_s`: the age past which that is a stall on Kafka."""

    connected: bool
    assigned: bool
    restoring: bool
    partitions: tuple[int, ...]
    stalled_s: float
    commit_pending_s: float
    commit_overdue_s: float


def judge(health: Health) -> tuple[bool, list[str]]:
    """Ready, or not with one reason per unmet condition (for an operator to read)."""
    reasons = []
    if not health.connected:
        reasons.append("not connected to Kafka (a broker unreachable, or a topic missing)")
    if not health.assigned:
        reasons.append("no partitions assigned by the consumer group yet")
    if health.restoring:
        reasons.append("restoring the state of assigned partitions")
    if health.stalled_s:
        reasons.append(
            f"the consumer loop has not completed a step for {health.stalled_s:.0f}s (metrics.stall_after_s)"
        )
    if health.commit_pending_s > health.commit_overdue_s:
        reasons.append(
            f"stalled on Kafka: processed work not committed for {health.commit_pending_s:.0f}s "
            f"(over {health.commit_overdue_s:g}s: commit_interval_ms plus half the request timeout); "
            "a broker or coordinator is not answering"
        )
    return not reasons, reasons


def details(health: Health) -> tuple[bool, dict[str, object]]:
    """/readyz's answer: (ready, the facts and the reasons as a JSON object)."""
    ready, reasons = judge(health)
    return ready, {
        "connected": health.connected,
        "assigned": health.assigned,
        "restoring": health.restoring,
        "partitions": list(health.partitions),
        "stalled_s": round(health.stalled_s, 1),
        "commit_pending_s": round(health.commit_pending_s, 1),
        "reasons": reasons,
    }
