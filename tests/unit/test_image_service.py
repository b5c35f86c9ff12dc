"""The image service with inline blocking, in-memory SQLite and an in-process extractor."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred, ensureDeferred

from pyd.core.errors import Conflict, InvalidParameter, NotFound, SystemError_
from pyd.core.records import CommitSource
from pyd.engine.commit import CommitService
from pyd.engine.contracts import CommitMeta
from tests.fakes.images import FakeCommitContainers, make_image_service
from tests.helpers.images import File, busybox_image_tar, files_layer, image_config, write_image_tar
from tests.helpers.sync import run_sync as run


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path


def _load(svc, path: str) -> list[str]:
    lines: list[str] = []
    with open(path, "rb") as f:
        run(svc.load(f, lines.append))
    return lines


def _layer_dirs(root: Path) -> list[str]:
    return sorted(os.listdir(root / "storage" / "layers"))


class LoadTests:
    """docker load into the store."""

    def test_load_creates_image_and_layers(self, tmp: Path) -> None:
        """A loaded image is listed with its tag, its id is the config digest."""
        svc, events, _, _ = make_image_service(str(tmp))
        built = busybox_image_tar(tmp / "bb.tar", "pyd-t/bb:1", extra_files={"/a": "a"})
        assert _load(svc, built.path) == ["Loaded image: pyd-t/bb:1\n"]
        img = run(svc.resolve("pyd-t/bb:1"))
        assert img.id == built.id
        assert img.repo_tags == ("pyd-t/bb:1",)
        assert img.diff_ids == built.diff_ids
        assert len(_layer_dirs(tmp)) == 2
        assert ("image", "load", built.id) in [e[:3] for e in events.rows()]
        # extracted with full fidelity
        diff = run(svc.image_layer_dirs(img.id))[-1]
        assert os.readlink(os.path.join(diff, "bin", "sh")) == "busybox"
        assert os.stat(os.path.join(diff, "tmp")).st_mode & 0o7777 == 0o1777
        assert os.stat(os.path.join(diff, "home", "app")).st_uid == 1000

    def test_load_from_memory_and_gzip(self, tmp: Path) -> None:
        """Archives that are not seekable plain files (BytesIO, gzip) are staged by copying."""
        import gzip

        svc, *_ = make_image_service(str(tmp))
        built = busybox_image_tar(tmp / "bb.tar", "pyd-t/mem:1", extra_files={"/a": "a"})
        data = Path(built.path).read_bytes()
        run(svc.load(io.BytesIO(data), [].append))
        assert run(svc.resolve("pyd-t/mem:1")).id == built.id
        run(svc.delete("pyd-t/mem:1"))
        (tmp / "bb.tar.gz").write_bytes(gzip.compress(data))
        assert _load(svc, str(tmp / "bb.tar.gz")) == ["Loaded image: pyd-t/mem:1\n"]
        assert len(_layer_dirs(tmp)) == 2

    def test_same_layers_shared(self, tmp: Path) -> None:
        """Two images with the same base share its layer; loading twice adds nothing."""
        svc, *_ = make_image_service(str(tmp))
        a = busybox_image_tar(tmp / "a.tar", "pyd-t/a:1")
        b = busybox_image_tar(tmp / "b.tar", "pyd-t/b:1", extra_files={"/b": "b"})
        _load(svc, a.path)
        _load(svc, b.path)
        _load(svc, b.path)
        assert len(_layer_dirs(tmp)) == 2
        run(svc.delete("pyd-t/a:1"))
        assert len(_layer_dirs(tmp)) == 2  # base still used by b
        items = run(svc.delete("pyd-t/b:1"))
        assert [i.kind for i in items] == ["Untagged", "Deleted", "Deleted", "Deleted"]
        assert _layer_dirs(tmp) == []

    def test_tag_moves_to_new_image(self, tmp: Path) -> None:
        """Loading another image with the same tag leaves the old one dangling."""
        svc, *_ = make_image_service(str(tmp))
        a = busybox_image_tar(tmp / "a.tar", "pyd-t/x:1")
        b = busybox_image_tar(tmp / "b.tar", "pyd-t/x:1", extra_files={"/b": "b"})
        _load(svc, a.path)
        lines = _load(svc, b.path)
        assert lines[0] == (
            f"The image pyd-t/x:1 already exists, renaming the old one with ID {a.id} "
            "to empty string\n"
        )
        dangling = run(svc.list_images(filters={"dangling": ["true"]}))
        assert [i.id for i in dangling] == [a.id]

    def test_tampered_layer_refused(self, tmp: Path) -> None:
        """A layer that does not match its diff id is refused and leaves nothing behind."""
        svc, *_ = make_image_service(str(tmp))
        layer = files_layer({"/a": "a"})
        cfg = image_config(["sha256:" + "0" * 64])
        write_image_tar(tmp / "bad.tar", [layer], cfg, ["pyd-t/bad:1"], fmt="docker")
        with pytest.raises(InvalidParameter, match="layer digest mismatch"):
            _load(svc, str(tmp / "bad.tar"))
        assert run(svc.list_images(all_=True)) == []
        assert _layer_dirs(tmp) == []
        assert os.listdir(tmp / "storage" / "tmp") == []

    def test_tampered_blob_name_refused(self, tmp: Path) -> None:
        """A config stored under another digest's name is refused."""
        svc, *_ = make_image_service(str(tmp))
        built = busybox_image_tar(tmp / "ok.tar", "pyd-t/t:1")
        bad = tmp / "bad.tar"
        with tarfile.open(built.path) as src, tarfile.open(bad, "w") as dst:
            for m in src.getmembers():
                data = src.extractfile(m).read() if m.isfile() else None
                if m.name == "blobs/sha256/" + built.id[7:]:
                    data = data.replace(b'"sh"', b'"ls"')
                dst.addfile(m, io.BytesIO(data) if data is not None else None)
        with pytest.raises(InvalidParameter, match="digest"):
            _load(svc, str(bad))
        assert _layer_dirs(tmp) == []

    def test_truncated_archive_refused(self, tmp: Path) -> None:
        """A truncated archive is refused with an error."""
        svc, *_ = make_image_service(str(tmp))
        built = busybox_image_tar(tmp / "ok.tar", "pyd-t/t:1")
        data = Path(built.path).read_bytes()
        (tmp / "cut.tar").write_bytes(data[: len(data) // 2])
        with pytest.raises(InvalidParameter):
            _load(svc, str(tmp / "cut.tar"))
        assert run(svc.list_images(all_=True)) == []
        assert _layer_dirs(tmp) == []

    def test_truncated_gzip_says_truncated(self, tmp: Path) -> None:
        """A gzip'd archive cut short before its first entry: the message says so (tarfile's
        C{empty file} misled); an empty upload says empty."""
        import gzip

        svc, *_ = make_image_service(str(tmp))
        built = busybox_image_tar(tmp / "ok.tar", "pyd-t/t:1")
        cut = gzip.compress(Path(built.path).read_bytes())[:40]
        with pytest.raises(InvalidParameter) as e:
            run(svc.load(io.BytesIO(cut), lambda _line: None))
        assert str(e.value) == "failed to read archive: the archive is truncated or corrupt"
        with pytest.raises(InvalidParameter) as e:
            run(svc.load(io.BytesIO(b""), lambda _line: None))
        assert str(e.value) == "failed to read archive: the archive is empty"
        assert run(svc.list_images(all_=True)) == []

    def test_hostile_layer_refused(self, tmp: Path) -> None:
        """A layer with a ../ member is refused; nothing is written outside the store."""
        svc, *_ = make_image_service(str(tmp))
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            ti = tarfile.TarInfo("../../escaped")
            ti.size = 1
            tf.addfile(ti, io.BytesIO(b"x"))
        layer = buf.getvalue()
        import hashlib

        cfg = image_config(["sha256:" + hashlib.sha256(layer).hexdigest()])
        write_image_tar(tmp / "evil.tar", [layer], cfg, ["pyd-t/evil:1"])
        with pytest.raises(InvalidParameter, match="outside of the layer"):
            _load(svc, str(tmp / "evil.tar"))
        assert not (tmp / "storage" / "escaped").exists()
        assert _layer_dirs(tmp) == []


class DeleteTests:
    """dockerd's rmi rules."""

    def test_in_use_by_container(self, tmp: Path) -> None:
        """Untagging the last name of an image a container uses needs force."""
        svc, _, containers, _ = make_image_service(str(tmp))
        built = busybox_image_tar(tmp / "bb.tar", "pyd-t/bb:1")
        _load(svc, built.path)
        containers.uses[built.id] = [("c" * 64, False)]
        with pytest.raises(Conflict) as e:
            run(svc.delete("pyd-t/bb:1"))
        assert str(e.value) == (
            'conflict: unable to remove repository reference "pyd-t/bb:1" (must force) - '
            f"container cccccccccccc is using its referenced image {built.id[7:19]}"
        )
        # like dockerd, a forced untag of the last name deletes the (stopped-container) image
        items = run(svc.delete("pyd-t/bb:1", force=True))
        assert [(i.kind, i.value) for i in items][:2] == [
            ("Untagged", "pyd-t/bb:1"),
            ("Deleted", built.id),
        ]

    def test_delete_action_timed_only_when_removed(self, tmp: Path) -> None:
        """dockerd's engine_daemon_image_actions_seconds{action="delete"} counts the deletes
        that removed an image, not those that only untagged one."""
        svc, _, _, _ = make_image_service(str(tmp))
        actions: list[str] = []
        svc.on_action = lambda action, seconds: actions.append(action)
        built = busybox_image_tar(tmp / "bb.tar", "pyd-t/bb:1")
        _load(svc, built.path)
        run(svc.tag(built.id, "pyd-t/bb", "2"))
        run(svc.delete("pyd-t/bb:2"))
        assert actions == []
        run(svc.delete("pyd-t/bb:1"))
        assert actions == ["delete"]

    def test_running_container_cannot_be_forced(self, tmp: Path) -> None:
        """Deleting by id an image a running container uses fails even with force."""
        svc, _, containers, _ = make_image_service(str(tmp))
        built = busybox_image_tar(tmp / "bb.tar", "pyd-t/bb:1")
        _load(svc, built.path)
        containers.uses[built.id] = [("d" * 64, True)]
        with pytest.raises(Conflict) as e:
            run(svc.delete(built.id[7:19], force=True))
        assert str(e.value) == (
            f"conflict: unable to delete {built.id[7:19]} (cannot be forced) - image is being "
            "used by running container dddddddddddd"
        )

    def test_rw_layer_keeps_layers(self, tmp: Path) -> None:
        """A writable layer keeps its image's layers after a forced image delete."""
        svc, *_ = make_image_service(str(tmp))
        built = busybox_image_tar(tmp / "bb.tar", "pyd-t/bb:1")
        _load(svc, built.path)
        cid = "e" * 64
        run(svc.create_rw_layer(cid, built.id))
        with pytest.raises(Conflict, match="stopped container eeeeeeeeeeee"):
            run(svc.delete(built.id))
        run(svc.delete(built.id, force=True))
        assert len(_layer_dirs(tmp)) == 1
        run(svc.remove_rw_layer(cid))
        assert _layer_dirs(tmp) == []

    def test_untag_of_a_build_step_with_children(self, tmp: Path) -> None:
        """Issue 15: a tagged build step that a later build grew from (a shared cached prefix,
        an earlier stage) has a child. dockerd's untag by name then answers 200 with only the
        Untagged line and keeps the image, as it is not dangling (C{imageIsDangling} counts
        children); the child's delete later takes it along. By id it is a hard conflict."""
        svc, *_ = make_image_service(str(tmp))
        built = busybox_image_tar(tmp / "bb.tar")
        _load(svc, built.path)

        def step(parent: str, cid: str, cmd: str) -> str:
            run(svc.create_rw_layer(cid, parent))
            meta = CommitMeta(cmd, "", empty_layer_ok=True)
            img = run(svc.commit(cid, {"Env": [cmd]}, meta, cache_key=cmd))
            run(svc.remove_rw_layer(cid))
            return img.id

        first = step(built.id, "a" * 64, "ENV A=1")
        second = step(first, "b" * 64, "ENV B=1")
        run(svc.tag(first, "pyd-t/first", "latest"))
        run(svc.tag(second, "pyd-t/second", "latest"))
        items = run(svc.delete("pyd-t/first"))
        assert [(i.kind, i.value) for i in items] == [("Untagged", "pyd-t/first:latest")]
        assert run(svc.resolve(first)).id == first
        with pytest.raises(Conflict) as e:
            run(svc.delete(first, force=True))
        assert str(e.value) == (
            f"conflict: unable to delete {first[7:19]} (cannot be forced) - "
            "image has dependent child images"
        )
        items = run(svc.delete("pyd-t/second"))
        assert [(i.kind, i.value) for i in items] == [
            ("Untagged", "pyd-t/second:latest"),
            ("Deleted", second),
            ("Deleted", first),
        ]
        assert run(svc.resolve(built.id)).id == built.id

    def test_unknown(self, tmp: Path) -> None:
        """An unknown name is a 404 with dockerd's text."""
        svc, *_ = make_image_service(str(tmp))
        with pytest.raises(NotFound, match="No such image: nope:latest"):
            run(svc.delete("nope:latest"))


class SaveTests:
    """docker save."""

    def test_round_trip(self, tmp: Path) -> None:
        """A saved image loads into another store with the same id and layers."""
        svc, *_ = make_image_service(str(tmp / "one"))
        built = busybox_image_tar(
            tmp / "bb.tar", "pyd-t/bb:1", extra_files={"/x": File(b"x", 0o4755)}
        )
        _load(svc, built.path)
        path = run(svc.save_to_file(["pyd-t/bb:1"]))
        other, *_ = make_image_service(str(tmp / "two"))
        assert _load(other, path) == ["Loaded image: pyd-t/bb:1\n"]
        img = run(other.resolve("pyd-t/bb:1"))
        assert img.id == built.id and img.diff_ids == built.diff_ids
        run(svc.discard(path))
        assert not os.path.exists(path)

    def test_a_layer_changed_on_disk_is_refused(self, tmp: Path) -> None:
        """A stored layer's file that changed since it was extracted: the save fails with a
        plain 500 naming the file inside the layer (no tar with other bytes under the layer's
        digest), and its staging file is gone."""
        svc, *_ = make_image_service(str(tmp / "one"))
        built = busybox_image_tar(tmp / "bb.tar", "pyd-t/bb:1", extra_files={"/x": "xyz"})
        _load(svc, built.path)
        [changed] = (tmp / "one").glob("**/layers/*/diff/x")
        changed.write_bytes(b"other content")
        staging = {p.name for p in (tmp / "one").glob("**/tmp/*")}
        with pytest.raises(SystemError_) as e:
            run(svc.save_to_file(["pyd-t/bb:1"]))
        assert (
            str(e.value)
            == "failed to read a stored layer: a file of the layer changed on disk: 'x'"
        )
        assert {p.name for p in (tmp / "one").glob("**/tmp/*")} == staging


class ListTests:
    """docker images filters."""

    def test_filters(self, tmp: Path) -> None:
        """before/since/until/label/reference/dangling select like dockerd."""
        svc, *_ = make_image_service(str(tmp))
        a = busybox_image_tar(tmp / "a.tar", "pyd-t/a:1", config={"Labels": {"k": "v"}})
        b = busybox_image_tar(tmp / "b.tar", "other/b:2", extra_files={"/b": "b"})
        _load(svc, a.path)
        _load(svc, b.path)

        def ids(**filters: list[str]) -> list[str]:
            return [i.id for i in run(svc.list_images(filters=filters))]

        assert set(ids()) == {a.id, b.id}
        assert ids(label=["k=v"]) == [a.id]
        assert ids(label=["k"]) == [a.id]
        assert ids(reference=["pyd-t/*"]) == [a.id]
        assert ids(reference=["other/b:2"]) == [b.id]
        assert ids(dangling=["true"]) == []
        assert ids(until=["2000-01-01T00:00:00Z"]) == []
        assert set(ids(until=["1h"])) == {a.id, b.id}  # created in 2023, clock is 2027
        with pytest.raises(InvalidParameter):
            ids(dangling=["maybe"])
        with pytest.raises(NotFound):
            ids(before=["nope"])


class SaveByIdTests:
    """docker save by id, and of several names."""

    def test_by_id_untagged_and_several(self, tmp: Path) -> None:
        """By id the archive carries no tags (load prints the id); two names keep both tags."""
        svc, *_ = make_image_service(str(tmp / "one"))
        a = busybox_image_tar(tmp / "a.tar", "pyd-t/a:1")
        b = busybox_image_tar(tmp / "b.tar", "pyd-t/b:1", extra_files={"/b": "b"})
        _load(svc, a.path)
        _load(svc, b.path)
        by_id = run(svc.save_to_file([a.id[7:19]]))
        other, *_ = make_image_service(str(tmp / "two"))
        assert _load(other, by_id) == [f"Loaded image ID: {a.id}\n"]
        both = run(svc.save_to_file(["pyd-t/a:1", "pyd-t/b:1"]))
        third, *_ = make_image_service(str(tmp / "three"))
        assert sorted(_load(third, both)) == [
            "Loaded image: pyd-t/a:1\n",
            "Loaded image: pyd-t/b:1\n",
        ]
        with pytest.raises(NotFound):
            run(svc.save_to_file(["pyd-t/a:1", "nope"]))


class PruneTests:
    """docker image prune."""

    def test_prune(self, tmp: Path) -> None:
        """Dangling images go; tagged ones stay unless dangling=false."""
        svc, *_ = make_image_service(str(tmp))
        a = busybox_image_tar(tmp / "a.tar", "pyd-t/x:1")
        b = busybox_image_tar(tmp / "b.tar", "pyd-t/x:1", extra_files={"/b": "b"})
        _load(svc, a.path)
        _load(svc, b.path)
        report = run(svc.prune({}))
        assert next((i.kind, i.value) for i in report.deleted) == ("Deleted", a.id)
        assert report.space_reclaimed == 0  # the base layer is shared with b
        report = run(svc.prune({"dangling": ["false"]}))
        assert ("Deleted", b.id) in [(i.kind, i.value) for i in report.deleted]
        assert report.space_reclaimed > 1_000_000
        assert _layer_dirs(tmp) == []


class StartupTests:
    """Crash leftovers are swept at start."""

    def test_sweep(self, tmp: Path) -> None:
        """Staging leftovers, layer dirs without rows and unused layer rows are removed."""
        _svc, *_ = make_image_service(str(tmp))
        storage = tmp / "storage"
        (storage / "tmp" / "s-half").mkdir()
        (storage / "layers" / ("f" * 64) / "diff").mkdir(parents=True)
        _svc2, *_ = make_image_service(str(tmp))
        assert os.listdir(storage / "tmp") == []
        assert _layer_dirs(tmp) == []

    def test_rw_layer_without_container(self, tmp: Path) -> None:
        """A writable layer no container row owns (a build's scratch layer, or a create cut by
        a crash) is removed at start with its directory; a container's stays."""
        from sqlalchemy import insert

        from pyd.state.models import ContainerRow

        svc, _events, _containers, repo = make_image_service(str(tmp))
        built = busybox_image_tar(tmp / "bb.tar")
        _load(svc, built.path)
        scratch, owned = "a" * 64, "b" * 64
        run(svc.create_rw_layer(scratch, built.id))
        run(svc.create_rw_layer(owned, built.id))
        run(
            repo._db.transaction(
                lambda conn: conn.execute(
                    insert(ContainerRow).values(
                        id=owned,
                        name="/c",
                        image_id=built.id,
                        image_ref="x",
                        created=0,
                        status="created",
                        config={},
                        host_config={},
                        state={},
                    )
                )
            )
        )
        run(svc.start())
        assert [r.container_id for r in run(repo.all_rw())] == [owned]
        assert sorted(os.listdir(tmp / "storage" / "containers")) == [owned]
        assert len(_layer_dirs(tmp)) == len(built.diff_ids)


class BuildSliceTests:
    """The builder's slice of the store (L{pyd.engine.contracts.BuildImages}): a commit with a
    L{CommitMeta}, the build cache's C{find_child}, tags."""

    def test_empty_step_commit(self, tmp: Path) -> None:
        """With empty_layer_ok an empty diff adds no layer: the history entry is marked
        empty_layer, carries created_by and author, and the top keys are added; the cache key
        finds the image only over the same parent."""
        svc, *_ = make_image_service(str(tmp))
        built = busybox_image_tar(tmp / "bb.tar")
        _load(svc, built.path)
        run(svc.create_rw_layer("L" * 64, built.id))
        meta = CommitMeta("/bin/sh -c true", "me", top={"docker_version": "28.2.2"},
                          empty_layer_ok=True)  # fmt: skip
        img = run(svc.commit("L" * 64, {"Env": []}, meta, cache_key="k"))
        last = img.config["history"][-1]
        assert (last["created_by"], last["author"], last["empty_layer"]) == (
            "/bin/sh -c true",
            "me",
            True,
        )
        assert img.config["docker_version"] == "28.2.2"
        assert img.diff_ids == built.diff_ids
        assert img.parent_id == built.id
        assert run(svc.find_child(built.id, "k")).id == img.id
        assert run(svc.find_child("sha256:" + "0" * 64, "k")) is None
        assert run(svc.find_child(built.id, "other")) is None
        assert run(svc.tag(img.id, "pyd-t/built", "v1")) == "pyd-t/built:v1"
        assert run(svc.resolve("pyd-t/built:v1")).id == img.id

    def test_changed_step_commit(self, tmp: Path) -> None:
        """A diff becomes a layer; without empty_layer_ok even an empty one does (docker
        commit)."""
        svc, *_ = make_image_service(str(tmp))
        built = busybox_image_tar(tmp / "bb.tar")
        _load(svc, built.path)
        for cid in ("a" * 64, "b" * 64):
            run(svc.create_rw_layer(cid, built.id))
        upper = run(svc.rw_layer_paths("a" * 64))["UpperDir"]
        with open(os.path.join(upper, "f"), "w") as f:
            f.write("hi\n")
        changed = run(svc.commit("a" * 64, {}, CommitMeta("x")))
        empty = run(svc.commit("b" * 64, {}, CommitMeta("y")))
        assert len(changed.diff_ids) == len(built.diff_ids) + 1
        assert len(empty.diff_ids) == len(built.diff_ids) + 1
        assert "empty_layer" not in empty.config["history"][-1]
        with pytest.raises(NotFound):
            run(svc.commit("c" * 64, {}, CommitMeta("z")))


class CommitTests:
    """docker commit (L{CommitService}): pause around the commit, and what the image records."""

    def _setup(self, tmp: Path, running: bool = True, pause_error: bool = False):
        svc, events, *_ = make_image_service(str(tmp))
        built = busybox_image_tar(tmp / "bb.tar")
        _load(svc, str(tmp / "bb.tar"))
        cid = "c" * 64
        run(svc.create_rw_layer(cid, built.id))
        upper = run(svc.rw_layer_paths(cid))["UpperDir"]
        with open(os.path.join(upper, "f"), "w") as f:
            f.write("hi\n")
        config = {"Image": "pyd-test/busybox", "Cmd": ["sh", "-c", "echo hi > /f"]}
        containers = FakeCommitContainers(
            CommitSource(cid, config, running, "c1"), pause_error=pause_error
        )
        svc.docker_version = "28.2.2"
        events.events.clear()
        return CommitService(containers, svc, events), events, containers.calls, cid

    def test_pauses_running_container(self, tmp: Path) -> None:
        """The default pauses a running container before the layer is read and unpauses it
        after; the image records the container, its command as history and the version;
        events are dockerd 28's image create, image tag, container commit."""
        svc, events, calls, cid = self._setup(tmp)
        img = run(svc.commit_container("c1", "pyd-t/x:1", {}, comment="m"))
        assert calls == ["pause for commit", "unpause"]
        cfg = img.config
        assert cfg["container"] == cid
        assert cfg["container_config"]["Cmd"] == ["sh", "-c", "echo hi > /f"]
        assert cfg["docker_version"] == "28.2.2"
        assert cfg["history"][-1]["created_by"] == "sh -c echo hi > /f"
        assert [(t, a) for t, a, *_ in events.rows()] == [
            ("image", "create"),
            ("image", "tag"),
            ("container", "commit"),
        ]
        assert events.events[-1].attributes == {
            "comment": "m",
            "image": "pyd-test/busybox",
            "imageID": img.id,
            "imageRef": "pyd-t/x:1",
            "name": "c1",
        }

    def test_no_pause(self, tmp: Path) -> None:
        """pause=False, or a stopped container, is committed without pausing."""
        svc, _events, calls, _ = self._setup(tmp)
        run(svc.commit_container("c1", None, {}, pause=False))
        assert calls == []
        svc, _events, calls, _ = self._setup(tmp / "stopped", running=False)
        run(svc.commit_container("c1", None, {}))
        assert calls == []

    def test_pause_refused(self, tmp: Path) -> None:
        """A container that cannot be paused (already paused) is committed as it is and not
        unpaused afterwards."""
        svc, _events, calls, _ = self._setup(tmp, pause_error=True)
        img = run(svc.commit_container("c1", None, {}))
        assert img.id.startswith("sha256:")
        assert calls == []


def test_import_url_must_be_http() -> None:
    """docker import <url>: file:, host paths, other schemes and malformed URLs are the
    client's 400, refused before anything is fetched (issue 12, 'Also')."""
    from pyd.core.errors import InvalidParameter
    from pyd.engine.images.archive import check_import_url

    for url in ("file:///etc/passwd", "/etc/passwd", "ftp://h/x", "gopher://x", "http//x",
                "::", "http://[::1", "http://"):  # fmt: skip
        with pytest.raises(InvalidParameter):
            check_import_url(url)
    check_import_url("http://127.0.0.1:5000/x.tar")
    check_import_url("https://example.invalid/rootfs.tar.gz")


class _HeldExtractor:
    """An extractor whose extractions finish when the test says (on the in-process one)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.waiting: list[tuple[object, Any]] = []
        self.most = 0

    def extract(self, src: Any, dest: str, split_dir: str) -> Deferred[dict[str, Any]]:
        d: Deferred[dict[str, Any]] = Deferred()
        self.waiting.append(((src, dest, split_dir), d))
        self.most = max(self.most, len(self.waiting))
        return d

    def release(self) -> None:
        args, d = self.waiting.pop(0)
        self.inner.extract(*args).chainDeferred(d)  # type: ignore[attr-defined]  # InProcessExtractor


class ParallelExtractionTests:
    """The layers of one image are extracted two at a time and recorded in order."""

    def _image(self, tmp: Path, layers: list[bytes]) -> str:
        import hashlib

        cfg = image_config(["sha256:" + hashlib.sha256(x).hexdigest() for x in layers])
        write_image_tar(tmp / "img.tar", layers, cfg, ["pyd-t/par:1"], fmt="docker")
        return str(tmp / "img.tar")

    def test_two_at_a_time_in_order(self, tmp: Path) -> None:
        svc, *_ = make_image_service(str(tmp))
        held = _HeldExtractor(svc._store._extractor)
        svc._store._extractor = held
        path = self._image(tmp, [files_layer({f"/l{i}": str(i)}) for i in range(4)])
        with open(path, "rb") as f:
            d = ensureDeferred(svc.load(f, [].append))
            while held.waiting:
                assert len(held.waiting) <= 2
                held.release()
            assert held.most == 2
            assert d.called
            d.addErrback(pytest.fail)
        img = run(svc.resolve("pyd-t/par:1"))
        assert len(img.diff_ids) == 4
        assert len(_layer_dirs(tmp)) == 4

    def test_a_bad_layer_fails_in_its_place_and_leaves_nothing(self, tmp: Path) -> None:
        """The second of three layers is hostile: its refusal is the error (the third was
        extracted meanwhile, and is discarded); nothing is stored or staged."""
        svc, *_ = make_image_service(str(tmp))
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            ti = tarfile.TarInfo("../../escaped")
            ti.size = 1
            tf.addfile(ti, io.BytesIO(b"x"))
        layers = [files_layer({"/a": "a"}), buf.getvalue(), files_layer({"/c": "c"})]
        with pytest.raises(InvalidParameter, match="outside of the layer"):
            _load(svc, self._image(tmp, layers))
        assert run(svc.list_images(all_=True)) == []
        assert _layer_dirs(tmp) == []
        assert os.listdir(tmp / "storage" / "tmp") == []
