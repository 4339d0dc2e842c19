"""An Azure upload's state: the blocks staged for it, as kept in ``uploads.driver_state``.

Each writer stages its blocks under a fresh random nonce, so two requests racing on one
upload never overwrite each other's blocks; block ``i`` of a writer is ``nonce + i``. Azure
wants every block id of one blob to have the same length (Azurite does not check it):
:func:`block_id` makes them all :data:`BLOCK_ID_LENGTH` characters, and a state holding
anything else is refused. A blob has at most :data:`MAX_BLOCKS` committed blocks.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass

NONCE_LENGTH = 16
INDEX_DIGITS = 8
BLOCK_ID_LENGTH = NONCE_LENGTH + INDEX_DIGITS
MAX_BLOCKS = 50_000
_NONCE = re.compile(f"[0-9a-f]{{{NONCE_LENGTH}}}")


class BadStateError(ValueError):
    """The state is not one this driver wrote."""


def new_nonce() -> str:
    return secrets.token_hex(NONCE_LENGTH // 2)


def block_id(nonce: str, index: int) -> str:
    """The id of a writer's ``index``-th block: always :data:`BLOCK_ID_LENGTH` long."""
    if not _NONCE.fullmatch(nonce) or not 0 <= index < 10**INDEX_DIGITS:
        raise BadStateError(f"no block id for nonce {nonce!r} and index {index}")
    return f"{nonce}{index:0{INDEX_DIGITS}d}"


@dataclass(frozen=True)
class Block:
    id: str
    size: int


@dataclass(frozen=True)
class StagedBlocks:
    """The blocks an upload keeps, in order."""

    blocks: tuple[Block, ...] = ()

    @property
    def size(self) -> int:
        return sum(block.size for block in self.blocks)

    def plus(self, more: list[Block]) -> StagedBlocks:
        if len(self.blocks) + len(more) > MAX_BLOCKS:
            raise BadStateError(f"an Azure blob holds at most {MAX_BLOCKS} blocks")
        return StagedBlocks((*self.blocks, *more))

    def encode(self) -> bytes:
        return json.dumps({"v": 1, "blocks": [[b.id, b.size] for b in self.blocks]}).encode()

    @classmethod
    def decode(cls, data: bytes | None) -> StagedBlocks:
        if data is None:
            return cls()
        try:
            document = json.loads(data)
            if document.get("v") != 1:
                raise BadStateError("unknown state version")
            blocks = tuple(Block(str(i), int(s)) for i, s in document["blocks"])
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise BadStateError(f"not an Azure upload state: {exc}") from None
        for block in blocks:
            if len(block.id) != BLOCK_ID_LENGTH or block.size < 0:
                raise BadStateError(f"block id {block.id!r} is not {BLOCK_ID_LENGTH} long")
        return cls(blocks)
