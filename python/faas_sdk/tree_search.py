"""Beam search over code actions, on snapshots: each node is a frozen sandbox state, each edge
a piece of code run in a branch of its parent. Built on ExecutionPlatform.explore_parallel."""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Callable, Optional, Sequence

from .results import BranchResult

if TYPE_CHECKING:
    from .platform import ExecutionPlatform
    from .snapshot import Snapshot

__all__ = ["TreeNode", "TreeSearchResult", "explore_tree"]


@dataclasses.dataclass(eq=False)
class TreeNode:
    """One state of the search: the snapshot after running `code` in a branch of the parent."""

    snapshot: Optional["Snapshot"]  # None once released (pruned) or if the branch died
    code: Optional[str]  # the action that led here (None for the root)
    result: Optional[BranchResult]
    score: float
    depth: int
    parent: Optional["TreeNode"] = None
    children: list["TreeNode"] = dataclasses.field(default_factory=list)

    @property
    def path(self) -> list[str]:
        """The codes run from the root to this node, in order."""
        node, codes = self, []
        while node is not None and node.code is not None:
            codes.append(node.code)
            node = node.parent
        return codes[::-1]


@dataclasses.dataclass
class TreeSearchResult:
    best: TreeNode  # highest score seen at any depth (its snapshot is kept alive)
    root: TreeNode
    nodes_expanded: int
    branches_run: int

    def release(self) -> None:
        """Releases the best node's snapshot (the only one the search keeps)."""
        if self.best.snapshot is not None and self.best is not self.root:
            self.best.snapshot.release()


def explore_tree(platform: "ExecutionPlatform", root: "Snapshot",
                 expand: Callable[[TreeNode], Sequence[str]],
                 score: Callable[[BranchResult], float],
                 beam_width: int = 3, depth: int = 3,
                 goal: Optional[Callable[[TreeNode], bool]] = None,
                 max_parallel: Optional[int] = None, timeout: Optional[float] = None) -> TreeSearchResult:
    """Beam search from `root`.

    At each level every node in the beam is expanded: ``expand(node)`` returns the codes to
    try from it; each runs in its own branch of the node's snapshot (all of them in parallel)
    and ``score(result)`` rates it. The best ``beam_width`` children form the next beam; the
    other children's snapshots are released at once, so memory stays bounded by the beam.
    Stops after ``depth`` levels, when nothing is left to expand, or when ``goal(node)`` holds.
    The root snapshot is the caller's and is never released.
    """
    if beam_width < 1 or depth < 0:
        raise ValueError("beam_width must be >= 1 and depth >= 0")
    root_node = TreeNode(snapshot=root, code=None, result=None, score=-math.inf, depth=0)
    best, beam = root_node, [root_node]
    expanded = branches = 0
    for level in range(1, depth + 1):
        children: list[TreeNode] = []
        for node in beam:
            if node.snapshot is None:
                continue
            codes = list(expand(node))
            if not codes:
                continue
            expanded += 1
            results = platform.explore_parallel(codes, node.snapshot, max_parallel=max_parallel,
                                                timeout=timeout, keep=True, snapshot_end=True)
            branches += len(results)
            for code, result in zip(codes, results):
                if result.sandbox is not None:
                    result.sandbox.close()  # the end snapshot holds the state; the branch can go
                child = TreeNode(snapshot=result.snapshot, code=code, result=result,
                                 score=float(score(result)), depth=level, parent=node)
                node.children.append(child)
                children.append(child)
        if not children:
            break
        children.sort(key=lambda n: n.score, reverse=True)
        top = children[0]
        if top.score > best.score:
            best = top
        # Only states that can be expanded (their end snapshot exists) compete for the beam.
        beam = [child for child in children if child.snapshot is not None][:beam_width]
        # Release every snapshot that is neither in the new beam nor the best so far.
        keep = set(map(id, beam)) | {id(best)}
        for node in _all_below(root_node):
            if id(node) not in keep and node is not root_node and node.snapshot is not None:
                node.snapshot.release()
                node.snapshot = None
        if goal is not None and goal(top):
            break
    for node in beam:
        if node is not best and node is not root_node and node.snapshot is not None:
            node.snapshot.release()
            node.snapshot = None
    return TreeSearchResult(best=best, root=root_node, nodes_expanded=expanded, branches_run=branches)


def _all_below(root: TreeNode):
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.children)
