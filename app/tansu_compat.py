"""Make a stopping Faust worker leave its consumer group on Tansu.

Tansu numbers the first group generation 0, but aiokafka sends LeaveGroup only when the
generation is > 0. A worker stopped in generation 0 then stays group leader until its session
expires, and a restarted worker waits for it (111 s with Faust defaults; see ../shared/NOTES.md).
Apache Kafka starts generations at 1, so sending LeaveGroup for generation >= 0 changes nothing
there. The patch is applied only to the aiokafka version it was written against.
"""
from __future__ import annotations

import logging

import aiokafka
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.errors import KafkaError
from aiokafka.protocol.group import LeaveGroupRequest

log = logging.getLogger(__name__)

PATCHED_AIOKAFKA_VERSIONS = ("0.14.",)


async def _leave_group_from_generation_zero(self: GroupCoordinator) -> None:
    if self.generation >= 0 and self.member_id and self._group_instance_id is None:
        try:
            await self._send_req(LeaveGroupRequest(self.group_id, self.member_id))
        except KafkaError as error:
            log.error("LeaveGroup request failed: %s", error)
        else:
            log.info("LeaveGroup request succeeded")
    self.reset_generation()


def leave_group_from_generation_zero() -> bool:
    """Install the patch once; return whether this aiokafka version is patched."""
    if not aiokafka.__version__.startswith(PATCHED_AIOKAFKA_VERSIONS):
        log.warning("aiokafka %s not known to this patch: LeaveGroup left as is", aiokafka.__version__)
        return False
    GroupCoordinator._maybe_leave_group = _leave_group_from_generation_zero
    return True
