"""``<root>/containers/``: one directory per container, laid out as Docker 20.10 does.

::

    containers/                    0710
      <id>/                        0710   (create)
        config.v2.json             0600   (create; rewritten on every state change)
        hostconfig.json            0644   (create)
        checkpoints/               0700   (create; empty)
        mounts/                    0710   (start: setupContainerMountsRoot)
        hostname hosts resolv.conf resolv.conf.hash     0644   (start: networking)
        <id>-json.log              0640   (start: the log driver)

``docker create`` leaves only the first four; :meth:`ContainerStore.write_start_files` adds the
start-time ones. Names are unique (Docker's ``/name``, validated against
``[a-zA-Z0-9][a-zA-Z0-9_.-]+``) and reserved under the data-root lock together with the write of
config.v2.json, so two concurrent ``create --name x`` cannot both win.

Use::

    store = ContainerStore(root, lock)
    c = store.create(image_id="sha256:…", config=container_config(Image="busybox", Cmd=["sh"]),
                     host_config=HostConfig.for_run(), name=None)
    store.get(c.id[:5]) == store.get(c.short_name)
"""

from __future__ import annotations

import contextlib
import json
import os
import re

from minidocker import fsutil, gojson, trace
from minidocker.container.hostconfig import HostConfig
from minidocker.container.state import Container, NetworkSettings, entrypoint_and_args
from minidocker.errors import Conflict, CorruptStore, InvalidInput, MinidockerError, NotFound
from minidocker.storage.overlay2 import remove_tree

TYPE_CHECKING = False  # not imported from typing: see minidocker/__init__.py
if TYPE_CHECKING:
    from typing import Any

    from minidocker.container.etcfiles import ResolvConf

CONFIG = "config.v2.json"
HOSTCONFIG = "hostconfig.json"
VALID_NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
_VALID_NAME = re.compile(VALID_NAME_CHARS + "+")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class AmbiguousPrefix(MinidockerError):
    """An id prefix matching more than one container (truncindex.ErrAmbiguousPrefix)."""


# pkg/namesgenerator's word lists (data, copied whole so names look like Docker's); kept as
# wrapped text rather than 344 one-word lines.
_LEFT = """
    admiring adoring affectionate agitated amazing angry awesome beautiful blissful bold boring
    brave busy charming clever cool compassionate competent condescending confident cranky crazy
    dazzling determined distracted dreamy eager ecstatic elastic elated elegant eloquent epic
    exciting fervent festive flamboyant focused friendly frosty funny gallant gifted goofy gracious
    great happy hardcore heuristic hopeful hungry infallible inspiring interesting intelligent jolly
    jovial keen kind laughing loving lucid magical mystifying modest musing naughty nervous nice
    nifty nostalgic objective optimistic peaceful pedantic pensive practical priceless quirky
    quizzical recursing relaxed reverent romantic sad serene sharp silly sleepy stoic strange
    stupefied suspicious sweet tender thirsty trusting unruffled upbeat vibrant vigilant vigorous
    wizardly wonderful xenodochial youthful zealous zen
""".split()  # noqa: SIM905
_RIGHT = """
    albattani allen almeida antonelli agnesi archimedes ardinghelli aryabhata austin babbage banach
    banzai bardeen bartik bassi beaver bell benz bhabha bhaskara black blackburn blackwell bohr
    booth borg bose bouman boyd brahmagupta brattain brown buck burnell cannon carson cartwright
    carver cerf chandrasekhar chaplygin chatelet chatterjee chebyshev cohen chaum clarke colden cori
    cray curran curie darwin davinci dewdney dhawan diffie dijkstra dirac driscoll dubinsky easley
    edison einstein elbakyan elgamal elion ellis engelbart euclid euler faraday feistel fermat fermi
    feynman franklin gagarin galileo galois ganguly gates gauss germain goldberg goldstine
    goldwasser golick goodall gould greider grothendieck haibt hamilton haslett hawking hellman
    heisenberg hermann herschel hertz heyrovsky hodgkin hofstadter hoover hopper hugle hypatia
    ishizaka jackson jang jemison jennings jepsen johnson joliot jones kalam kapitsa kare keldysh
    keller kepler khayyam khorana kilby kirch knuth kowalevski lalande lamarr lamport leakey leavitt
    lederberg lehmann lewin lichterman liskov lovelace lumiere mahavira margulis matsumoto maxwell
    mayer mccarthy mcclintock mclaren mclean mcnulty mendel mendeleev meitner meninsky merkle
    mestorf mirzakhani moore morse murdock moser napier nash neumann newton nightingale nobel
    noether northcutt noyce panini pare pascal pasteur payne perlman pike poincare poitras
    proskuriakova ptolemy raman ramanujan ride montalcini ritchie rhodes robinson roentgen rosalind
    rubin saha sammet sanderson satoshi shamir shannon shaw shirley shockley shtern sinoussi snyder
    solomon spence stonebraker sutherland swanson swartz swirles taussig tesla tharp thompson
    torvalds tu turing varahamihira vaughan visvesvaraya volhard villani wescoff wilbur wiles
    williams williamson wilson wing wozniak wright wu yalow yonath zhukovsky
""".split()  # noqa: SIM905


def _randbelow(n: int) -> int:
    # os.urandom rather than the secrets module, whose import (random, hmac) costs ~1 ms per run;
    # a name needs no more than Docker's math/rand does
    return int.from_bytes(os.urandom(4), "big") % n


def random_name(retry: int = 0) -> str:
    """``namesgenerator.GetRandomName``: ``adjective_surname``, plus a digit on retries.

    >>> re.fullmatch(r"[a-z]+_[a-z]+", random_name()) is not None
    True
    """
    while True:
        name = f"{_LEFT[_randbelow(len(_LEFT))]}_{_RIGHT[_randbelow(len(_RIGHT))]}"
        if name != "boring_wozniak":  # Steve Wozniak is not boring
            break
    if retry > 0:
        name += str(_randbelow(10))
    return name


def validate_name(name: str) -> str:
    """Docker's ``reserveName`` check; returns the name with its leading ``/``.

    >>> validate_name("web-1")
    '/web-1'
    """
    bare = name[1:] if name.startswith("/") else name
    if not _VALID_NAME.fullmatch(bare):
        raise InvalidInput(
            f"Invalid container name ({name}), only {VALID_NAME_CHARS} are allowed", subject=name
        )
    return "/" + bare


def name_conflict(name: str, owner: str) -> Conflict:
    return Conflict(
        f'Conflict. The container name "{name}" is already in use by container "{owner}". '
        "You have to remove (or rename) that container to be able to reuse that name.",
        subject=name,
    )


def _created_ns(c: Container) -> int:
    try:
        return gojson.parse_rfc3339(c.created)
    except ValueError:
        return 0


class ContainerStore:
    """Create, find, save, rename and remove containers under ``<data-root>/containers``."""

    def __init__(self, data_root: str, lock: fsutil.DataRootLock) -> None:
        self.data_root = data_root
        self.root = os.path.join(data_root, "containers")
        self.lock = lock

    def setup(self) -> None:
        fsutil.makedirs(self.root, 0o710)

    # -- paths ----------------------------------------------------------------------------------
    def dir(self, container_id: str) -> str:
        return os.path.join(self.root, container_id)

    def log_path(self, container_id: str) -> str:
        """``<id>-json.log``: what ``LogPath`` is set to at start."""
        return os.path.join(self.dir(container_id), f"{container_id}-json.log")

    # -- reading --------------------------------------------------------------------------------
    def ids(self) -> list[str]:
        """Ids of every container with a readable config.v2.json."""
        out = []
        with contextlib.suppress(FileNotFoundError), os.scandir(self.root) as it:
            for e in it:
                if _HEX64.fullmatch(e.name) and os.path.isfile(os.path.join(e.path, CONFIG)):
                    out.append(e.name)
        return sorted(out)

    def load(self, container_id: str) -> Container:
        """Read ``containers/<id>`` (both JSON files)."""
        d = self.dir(container_id)
        try:
            with open(os.path.join(d, CONFIG), "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raise NotFound(f"No such container: {container_id}", subject=container_id) from None
        try:
            hc: HostConfig | None = None
            with contextlib.suppress(FileNotFoundError), open(os.path.join(d, HOSTCONFIG), "rb") as f:
                hc = HostConfig.from_json(f.read())
            return Container.from_json(raw, hc)
        except (ValueError, TypeError, KeyError) as e:
            raise CorruptStore(
                f"container {container_id}: unreadable {CONFIG}: {e}", subject=container_id
            ) from e

    def list(self) -> list[Container]:
        """Every container, newest first (``ps`` order); unreadable ones are skipped."""
        out = []
        for cid in self.ids():
            with contextlib.suppress(NotFound, CorruptStore):
                out.append(self.load(cid))
        out.sort(key=_created_ns, reverse=True)  # not the strings: Go trims fraction zeros
        return out

    def names(self) -> dict[str, str]:
        """``/name`` -> container id (of every readable container; no order needed, so no
        timestamps parsed and no HostConfig built: ``create`` asks this every time)."""
        out: dict[str, str] = {}
        for cid in self.ids():
            try:
                with open(os.path.join(self.dir(cid), CONFIG), "rb") as f:
                    name = json.loads(f.read()).get("Name")
            except (OSError, ValueError, AttributeError):
                continue  # gone meanwhile, or unreadable: list() skips it too
            if isinstance(name, str):
                out[name] = cid
        return out

    def get(self, ref: str) -> Container:
        """``daemon.GetContainer``: full id, then exact name, then unique id prefix.

        Errors: ``invalid name or ID supplied: ""``; ``No such container: x``;
        ``Multiple IDs found with provided prefix: a``.
        """
        if not ref:
            raise InvalidInput(f'invalid name or ID supplied: "{ref}"', subject=ref)
        if _HEX64.fullmatch(ref) and os.path.isfile(os.path.join(self.dir(ref), CONFIG)):
            return self.load(ref)
        containers = self.list()
        name = ref if ref.startswith("/") else "/" + ref
        for c in containers:
            if c.name == name:
                return c
        matches = [c for c in containers if c.id.startswith(ref)]
        if not matches:
            raise NotFound(f"No such container: {ref}", subject=ref)
        if len(matches) > 1:
            raise AmbiguousPrefix(f"Multiple IDs found with provided prefix: {ref}", subject=ref)
        return matches[0]

    # -- writing --------------------------------------------------------------------------------
    def _write(self, c: Container, *, sync: bool = True) -> None:
        # Docker's ToDisk: config.v2.json first, then hostconfig.json, both AtomicWriteFile
        d = self.dir(c.id)
        fsutil.atomic_write(os.path.join(d, CONFIG), c.to_json(), 0o600, sync=sync)
        # Most saves change only the state (config.v2.json); hostconfig.json is rewritten only when
        # its bytes change: a read is ~100x cheaper than the fsync'd write (issue 3, "Speed").
        hostconfig = c.host_config.to_json()
        path = os.path.join(d, HOSTCONFIG)
        try:
            with open(path, "rb") as f:
                unchanged = f.read() == hostconfig
        except FileNotFoundError:
            unchanged = False
        if not unchanged:
            fsutil.atomic_write(path, hostconfig, 0o644, sync=sync)

    def save(self, c: Container, *, sync: bool = True) -> None:
        """Persist ``c`` (after any state change) atomically, under the data-root lock.

        ``sync=False`` skips the fsync (still atomic for readers): only for a record that is
        removed right after (a ``--rm`` container's exit), where durability buys nothing."""
        with self.lock.held():
            if not os.path.isdir(self.dir(c.id)):
                raise NotFound(f"No such container: {c.id}", subject=c.id)
            self._write(c, sync=sync)

    def _reserve_name(self, name: str | None, container_id: str, taken: dict[str, str]) -> str:
        if name:
            full = validate_name(name)
            if full in taken:
                raise name_conflict(full, taken[full])
            return full
        # generateNewName: six tries (digits appended from the second on), then the short id
        for i in range(6):
            candidate = "/" + random_name(i)
            if candidate not in taken:
                return candidate
        return "/" + container_id[:12]

    def create(
        self,
        *,
        image_id: str,
        config: dict[str, Any],
        host_config: HostConfig,
        name: str | None = None,
        driver: str = "overlay2",
        managed: bool = False,
    ) -> Container:
        """``docker create``'s on-disk part: id, name, hostname, ``containers/<id>/`` with
        config.v2.json, hostconfig.json and ``checkpoints/``. ``config`` is a
        ``container.Config`` dict in Go order (Image = what the user typed); it is updated with
        the generated hostname. The RW layer (``layerdb/mounts/<id>``) is the caller's job.
        """
        self.setup()
        config = dict(config)
        path, args = entrypoint_and_args(config.get("Entrypoint"), config.get("Cmd"))
        with self.lock.held():
            container_id = fsutil.random_id()
            while os.path.exists(self.dir(container_id)):
                container_id = fsutil.random_id()
            full_name = self._reserve_name(name, container_id, self.names())
            if not config.get("Hostname"):
                # generateHostname: the short id, or the host's name when sharing its network
                if host_config.network_mode == "host":
                    from minidocker.container.etcfiles import host_hostname  # (the monitor's module)

                    config["Hostname"] = host_hostname()
                else:
                    config["Hostname"] = container_id[:12]
            c = Container(
                id=container_id,
                name=full_name,
                image=image_id,
                path=path,
                args=args,
                config=config,
                managed=managed,
                driver=driver,
                network_settings=NetworkSettings.for_create(host_config.network_mode, anonymous=not name),
                host_config=host_config,
            )
            d = self.dir(container_id)
            os.mkdir(d, 0o710)
            try:
                os.chmod(d, 0o710)
                os.mkdir(os.path.join(d, "checkpoints"), 0o700)
                os.chmod(os.path.join(d, "checkpoints"), 0o700)
                self._write(c)
            except BaseException:
                remove_tree(d)
                raise
        trace.emit(lambda: f"created container {container_id} {full_name}")
        return c

    def rename(self, ref: str, new_name: str) -> Container:
        """``docker rename``: same checks and messages as ``ContainerRename``."""
        if not ref or not new_name:
            raise InvalidInput("Neither old nor new names may be empty")
        with self.lock.held():
            c = self.get(ref)
            full = new_name if new_name.startswith("/") else "/" + new_name
            if c.name == full:
                raise InvalidInput("Renaming a container with the same name as its current name")
            try:
                full = self._reserve_name(full, c.id, self.names())
            except MinidockerError as e:
                raise type(e)(f"Error when allocating new name: {e}", subject=e.subject) from e
            c.name = full
            c.network_settings.is_anonymous_endpoint = False
            self._write(c)
        return c

    def remove(self, container_id: str) -> None:
        """Delete ``containers/<id>``. config.v2.json goes first so a crash mid-way never leaves a
        half-deleted directory that still loads as a container."""
        d = self.dir(container_id)
        with self.lock.held():
            if not os.path.isdir(d):
                raise NotFound(f"No such container: {container_id}", subject=container_id)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(d, CONFIG))
            remove_tree(d)
        trace.emit(lambda: f"removed container {container_id}")

    # -- start-time files -----------------------------------------------------------------------
    def write_start_files(self, c: Container, *, hosts: bytes | None, resolv: ResolvConf | None) -> None:
        """What Docker adds to ``containers/<id>/`` at start: ``mounts/`` (0710), ``hostname``,
        ``hosts``, ``resolv.conf`` and ``resolv.conf.hash`` (0644), and the matching paths in
        ``c`` (saved by the caller with the rest of the start state). ``hosts``/``resolv`` come
        from :mod:`minidocker.container.etcfiles`; ``None`` writes no such file (host networking
        on a host without ``/etc/hosts``). ``container:<x>`` networking writes none of these:
        the container takes the other one's paths and hostname instead."""
        d = self.dir(c.id)
        with self.lock.held():
            mounts = os.path.join(d, "mounts")
            if not os.path.isdir(mounts):
                os.mkdir(mounts, 0o710)
                os.chmod(mounts, 0o710)
            # hostname, hosts, resolv.conf: rewritten on every start, and Docker writes them without
            # an fsync (BuildHostnameFile, etchosts.Build, resolvconf.Build: os.WriteFile); we keep
            # the rename so `exec`/`cp` never read half a file. resolv.conf.hash is fsync'd, as
            # libnetwork's ioutils.AtomicWriteFile does.
            from minidocker.container.etcfiles import hostname_file

            c.hostname_path = os.path.join(d, "hostname")
            hostname = hostname_file(c.config.get("Hostname") or "")
            fsutil.atomic_write(c.hostname_path, hostname, 0o644, sync=False)
            c.hosts_path = os.path.join(d, "hosts")
            if hosts is not None:
                fsutil.atomic_write(c.hosts_path, hosts, 0o644, sync=False)
            c.resolv_conf_path = os.path.join(d, "resolv.conf")
            if resolv is not None:
                fsutil.atomic_write(c.resolv_conf_path, resolv.content, 0o644, sync=False)
                if resolv.hash is not None:
                    fsutil.atomic_write(c.resolv_conf_path + ".hash", resolv.hash.encode(), 0o644)
