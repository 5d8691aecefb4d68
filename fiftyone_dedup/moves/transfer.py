"""One file of a move, moved out or brought back: a resumable, idempotent
transfer.

Moving a file into the duplicates folder and bringing it back on restore
are the same transfer in opposite directions: from an *origin* to a
*target* that must not exist, by an atomic no-clobber rename (or a copy
that is verified, then the origin removed, across file systems). Run again
after a kill at any point, it finds where the file is and finishes: a file
already at its target counts as transferred, and an interrupted copy (the
file at both ends) loses its origin. What differs between the two
directions (the words of the outcomes, what proves the origin unchanged)
is a :class:`Transfer` subclass: :data:`OUT` and :data:`BACK`. Pure
Python; no FiftyOne.
"""

import errno
import os
import stat

from fiftyone_dedup.moves import fileops


class DiskFullError(OSError):
    """The duplicates folder's file system is full."""


def is_file_with(path, sha):
    """Whether ``path`` is a regular file (not a link) with checksum ``sha``.

    Args:
        path: a path
        sha: a SHA-256 hex digest

    Returns:
        a bool (False if it cannot be read)
    """
    try:
        return (
            not os.path.islink(path) and os.path.isfile(path) and fileops.sha256_file(path) == sha
        )
    except OSError:
        return False


class Transfer:
    """The transfer of a file entry of a move in one direction.

    Subclasses say which end is the origin, the outcome words, and the
    messages; :meth:`run` is the transfer itself.
    """

    #: the outcome of a file transferred
    done = None

    #: the outcome of a file that cannot be transferred for a reason of
    #: its paths (unsafe, something in the way)
    refused = None

    def ends(self, m, e, dup):
        """``(origin, target, target_folder)``: the paths of an entry and
        the folder the target must stay inside.

        Raises:
            fiftyone_dedup.moves.fileops.UnsafePathError: for a path that
                leaves its folder
        """
        raise NotImplementedError

    def run(self, m, e, dup):
        """Transfers (or finishes transferring) one file.

        Args:
            m: the move's :class:`fiftyone_dedup.moves.model.Manifest`
            e: the :class:`fiftyone_dedup.moves.model.FileEntry`
            dup: the duplicates folder

        Returns:
            ``(outcome, reason)``: ``(self.done, None)`` or a reason it was
            not transferred

        Raises:
            DiskFullError: when moving out fills the duplicates folder
        """
        try:
            origin, target, top = self.ends(m, e, dup)
        except fileops.UnsafePathError as ex:
            return self.refused, str(ex)
        if os.path.isdir(os.path.dirname(target)):
            fileops.remove_temp_files(os.path.dirname(target), [os.path.basename(target)])
        o_ex, t_ex = os.path.lexists(origin), os.path.lexists(target)
        if t_ex and not o_ex:
            return self.arrived(m, e, target)
        if not o_ex:
            return "skipped", self.neither(origin, target)
        if t_ex:
            # a copy across file systems was interrupted before the origin went
            if is_file_with(origin, e.sha256) and is_file_with(target, e.sha256):
                os.unlink(origin)
                return self.done, None
            return self.both(e, origin, target)
        problem = self.origin_problem(e, origin)
        if problem:
            return "skipped", problem
        try:
            fileops.makedirs_inside(top, os.path.dirname(target))
            how = fileops.move_file(origin, target, e.sha256)
        except fileops.UnsafePathError as ex:
            return self.refused, str(ex)
        except OSError as ex:
            return self.move_error(ex, origin, target, dup)
        return self.moved(how, e, origin, target)

    def arrived(self, m, e, target):
        """The outcome of a file found at its target only."""
        raise NotImplementedError

    def neither(self, origin, target):
        """Why a file at neither end is skipped."""
        raise NotImplementedError

    def both(self, e, origin, target):
        """The outcome of a file at both ends that are not both it."""
        raise NotImplementedError

    def origin_problem(self, e, origin):
        """Why the file at the origin may not go, or None."""
        raise NotImplementedError

    def move_error(self, ex, origin, target, dup):
        """The outcome of an ``OSError`` while transferring."""
        raise NotImplementedError

    def moved(self, how, e, origin, target):
        """The outcome once ``fileops.move_file`` has moved it (``how``)."""
        return self.done, None


class Out(Transfer):
    """From the dataset folder into the duplicates folder (a move)."""

    done = "moved"
    refused = "failed"

    def ends(self, m, e, dup):
        src = fileops.join_inside(m.roots[e.root].path, e.src, "source path")
        dst = fileops.join_inside(dup, e.dst, "destination")
        return src, dst, dup

    def arrived(self, m, e, target):
        if (
            os.path.islink(target)
            or not os.path.isfile(target)
            or os.path.getsize(target) != e.size
        ):
            return "failed", f"{target} is not the file that was moved there"
        return "moved", None

    def neither(self, origin, target):
        return "file not found (removed since the move was planned)"

    def both(self, e, origin, target):
        return "failed", f"a different file exists at {target}; left in place"

    def origin_problem(self, e, origin):
        st = os.lstat(origin)
        if not stat.S_ISREG(st.st_mode):
            return "no longer a regular file"
        if (st.st_size, st.st_mtime_ns) != (e.size, e.mtime_ns):
            return "changed since the move was planned"
        return None

    def move_error(self, ex, origin, target, dup):
        if isinstance(ex, fileops.FileChangedError):
            return "skipped", "changed since the move was planned (checksum differs)"
        if isinstance(ex, FileExistsError):
            return "failed", f"{target} exists; never overwritten"
        if ex.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(
                ex.errno, f"the disk of {dup} is full ({ex.strerror}); free space and move again"
            ) from None
        return "failed", f"{ex.strerror or ex}"

    def moved(self, how, e, origin, target):
        if how == "renamed" and fileops.sha256_file(target) != e.sha256:
            # changed between the checksum and the rename: put it back
            fileops.rename_noreplace(target, origin)
            return "skipped", "changed since the move was planned (checksum differs)"
        return "moved", None


class Back(Transfer):
    """From the duplicates folder back into the dataset folder (a
    restore); only a file that was moved, and has its recorded checksum."""

    done = "restored"
    refused = "skipped"

    def ends(self, m, e, dup):
        root = m.roots[e.root].path
        src = fileops.join_inside(root, e.src, "source path")
        dst = fileops.join_inside(dup, e.dst, "destination")
        return dst, src, root

    def arrived(self, m, e, target):
        # back already (an earlier restore), or never moved
        if m.outcomes.get(e.n, (None,))[0] == "moved":
            return "restored", None
        return "skipped", "was not moved"

    def neither(self, origin, target):
        return f"missing: neither {target} nor {origin} exists"

    def both(self, e, origin, target):
        problem = self.origin_problem(e, origin)
        if problem:
            return "skipped", problem
        return (
            "skipped",
            f"a different file now exists at {target}; the moved one stays at {origin}",
        )

    def origin_problem(self, e, origin):
        if os.path.islink(origin) or not os.path.isfile(origin):
            return f"{origin} is not a regular file; left"
        if not is_file_with(origin, e.sha256):
            return f"{origin} changed since the move (checksum differs); left"
        return None

    def move_error(self, ex, origin, target, dup):
        if isinstance(ex, FileExistsError):
            return "skipped", f"a file now exists at {target}; the moved one stays at {origin}"
        return "skipped", f"cannot move back: {ex.strerror or ex}"


OUT = Out()
BACK = Back()


def move_out(m, e, dup):
    """Moves (or finishes moving) a file of a move into the duplicates
    folder; see :meth:`Transfer.run`. Returns ``(outcome, reason)``:
    ``"moved"``, ``"skipped"`` or ``"failed"``."""
    return OUT.run(m, e, dup)


def bring_back(m, e, dup):
    """Brings (or finishes bringing) a moved file back to its dataset
    folder; see :meth:`Transfer.run`. Returns ``(outcome, reason)``:
    ``"restored"`` or ``"skipped"``."""
    return BACK.run(m, e, dup)
