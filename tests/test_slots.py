"""Worker slots: each worker process on a machine holds its own, for as long as it lives."""

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from workers import slots, tasks
from workers.slots import NoFreeSlot, Slot, UnsafeSlotsDir, acquire_slot


@pytest.fixture
def taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Slot]]:
    """Slots taken by a test, in a folder of its own, released at the end."""
    monkeypatch.setattr(slots, "SLOTS_DIR", str(tmp_path))
    held: list[Slot] = []
    yield held
    for slot in held:
        slot.lock_file.close()


def test_a_held_slot_is_not_given_twice(taken: list[Slot]) -> None:
    taken += [acquire_slot(62000, 4), acquire_slot(62000, 4)]
    assert [(slot.number, slot.uid) for slot in taken] == [(0, 62000), (1, 62001)]


def test_a_released_slot_is_given_again(taken: list[Slot]) -> None:
    acquire_slot(62000, 4).lock_file.close()
    taken.append(acquire_slot(62000, 4))
    assert taken[0].number == 0


def test_no_free_slot_is_a_clear_error(taken: list[Slot]) -> None:
    taken += [acquire_slot(62000, 2), acquire_slot(62000, 2)]
    with pytest.raises(NoFreeSlot, match="2 worker slots"):
        acquire_slot(62000, 2)


def test_a_folder_others_may_write_in_is_refused(taken: list[Slot], tmp_path: Path) -> None:
    tmp_path.chmod(0o777)  # as /tmp itself: anyone could have planted links in it
    with pytest.raises(UnsafeSlotsDir, match="only its owner may write"):
        acquire_slot(62000, 2)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the folder to another user")
def test_a_folder_made_by_another_user_is_refused(taken: list[Slot], tmp_path: Path) -> None:
    os.chown(tmp_path, 65534, 65534)
    with pytest.raises(UnsafeSlotsDir, match="found uid 65534"):
        acquire_slot(62000, 2)


def test_a_planted_link_is_not_followed_nor_its_target_touched(taken: list[Slot], tmp_path: Path) -> None:
    target = tmp_path.parent / f"{tmp_path.name}-precious"
    target.write_text("keep me")
    (tmp_path / "slot-0.lock").symlink_to(target)
    with pytest.raises(UnsafeSlotsDir, match=r"slot-0\.lock"):
        acquire_slot(62000, 2)
    assert target.read_text() == "keep me"


def test_a_lock_file_that_exists_is_reused_not_truncated(taken: list[Slot], tmp_path: Path) -> None:
    (tmp_path / "slot-0.lock").write_text("left by an earlier worker")
    taken.append(acquire_slot(62000, 2))
    assert taken[0].number == 0
    assert (tmp_path / "slot-0.lock").read_text() == "left by an earlier worker"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root workers take a slot")
@pytest.mark.usefixtures("taken", "worker_slot_given_back")
def test_the_worker_keeps_its_slot_locked_for_its_whole_life() -> None:
    slot = tasks.worker_slot()
    assert slot is not None
    assert tasks.worker_slot() is slot
    assert tasks.worker_sandbox().program_uid == slot.uid  # its programs run as the slot's uid
    with open(slot.lock_file.name, "wb") as other, pytest.raises(BlockingIOError):
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
