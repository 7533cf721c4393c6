"""The classic builder (moby ``builder/dockerfile``): one image per instruction, one layer per
filesystem change, and a cache that finds a step's earlier result among the parent's children.

::

    b = Builder(runtime, BuildOptions(context="/src", tags=["app:1"]), out=sys.stdout)
    image_id = b.build()     # "Step 1/4 : FROM busybox" ... "Successfully tagged app:1"

Every step starts from the previous step's image and ends with a new image whose ``parent`` is it:

* metadata instructions (ENV, LABEL, CMD, ...) change the run config and commit an *empty layer*
  whose history reads ``/bin/sh -c #(nop)  ENV A=1``;
* RUN starts a real container (:class:`minidocker.container.lifecycle.Runtime`, network ``none``
  unless ``--network``) and commits its upper dir; created_by is the command (with ``|N k=v``
  in front when build args are in play);
* COPY/ADD/WORKDIR write into a fresh read-write layer (no process needed) through the one safe
  extractor, so nothing the image contains (symlinks to ``/etc``...) can make us write outside it.

The cache key is the step's *container config* (its Cmd carries ``#(nop) COPY file:<content hash>``
for COPY/ADD): a child of the parent image with an equal container config is reused.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import posixpath
import re
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from minidocker import fsutil, trace
from minidocker.build import dockerfile as dfp
from minidocker.build.context import BuildContext, Source
from minidocker.errors import InvalidInput, MinidockerError, NotFound
from minidocker.image import config as imgconfig
from minidocker.image import reference
from minidocker.image.commit import child_image, register_upper

if TYPE_CHECKING:
    from minidocker.archive.tarstream import TarWriter
    from minidocker.container.lifecycle import Runtime

DEFAULT_SHELL = ["/bin/sh", "-c"]
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_COMPARED = [
    "User", "ExposedPorts", "Env", "Cmd", "Healthcheck", "ArgsEscaped", "Image", "Volumes", "WorkingDir",
    "Entrypoint", "OnBuild", "Labels", "StopSignal", "Shell", "Tty", "OpenStdin",
]  # fmt: skip


class BuildError(MinidockerError):
    """A failed build step; ``exit_code`` is the failing RUN's status, else 125."""

    def __init__(self, message: str, *, exit_code: int = 125, subject: str | None = None) -> None:
        super().__init__(message, subject=subject)
        self.exit_code = exit_code


@dataclass
class BuildOptions:
    context: str
    dockerfile: str | None = None  # path; default <context>/Dockerfile
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    no_cache: bool = False
    quiet: bool = False
    target: str | None = None
    network: str = "none"


@dataclass
class _Stage:
    name: str | None
    image_id: str | None
    config: dict[str, Any]
    args: dict[str, str | None] = field(default_factory=dict)
    maintainer: str = ""
    cmd_set: bool = False


def go_quote_list(items: list[str]) -> str:
    """Go's ``%q`` of a []string: ``["sh" "-c" "echo hi"]``."""
    return "[" + " ".join(json.dumps(i, ensure_ascii=False) for i in items) + "]"


def go_duration(ns: int) -> str:
    """Go's ``time.Duration.String``."""
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return f"{ns / size:g}{unit}"
    s = ns / 1e9
    h, rem = divmod(int(ns), 3600 * 10**9)
    m, rem = divmod(rem, 60 * 10**9)
    secs = f"{rem / 1e9:.9f}".rstrip("0").rstrip(".")
    out = f"{secs}s"
    if h or m:
        out = f"{m}m" + out
    if h:
        out = f"{h}h" + out
    return out if s else "0s"


def parse_duration(text: str) -> int:
    m = re.fullmatch(r"((?:\d+(?:\.\d+)?(?:h|m|s|ms|us|µs|ns))+)", text)
    if not m:
        raise InvalidInput(f"time: invalid duration {text!r}")
    units = {"h": 3600e9, "m": 60e9, "s": 1e9, "ms": 1e6, "us": 1e3, "µs": 1e3, "ns": 1}
    return int(sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)", text)))


def _go_char(n: int) -> str:
    if 32 <= n < 127 and chr(n) not in "'\\":
        return f"'{chr(n)}'"
    return f"'\\x{n:02x}'" if n < 256 else f"'\\u{n:04x}'"


def _env_map(env: list[str] | None) -> dict[str, str]:
    out = {}
    for e in env or []:
        k, _, v = e.partition("=")
        out[k] = v
    return out


class Builder:
    def __init__(self, runtime: Runtime, opts: BuildOptions, out: TextIO) -> None:
        self.rt = runtime
        self.stores = runtime.stores
        self.opts = opts
        self.out = out
        self.stages: list[_Stage] = []
        self.meta_args: dict[str, str | None] = {}
        self.step = 0
        self.total = 0
        self._child_map: dict[str | None, list[str]] | None = None
        self.held: list[str] = []  # -q: the progress (and RUN output) kept back
        self.escape = "\\"
        path = opts.dockerfile or os.path.join(opts.context, "Dockerfile")
        if not os.path.isabs(path) and opts.dockerfile and not os.path.exists(path):
            path = os.path.join(opts.context, opts.dockerfile)
        self.dockerfile_path = path
        self.context = BuildContext(opts.context)

    # -- output ---------------------------------------------------------------------------------
    def say(self, text: str) -> None:
        if self.opts.quiet:
            self.held.append(text + "\n")  # shown only if the build fails, as the docker CLI does
            return
        self.out.write(text + "\n")
        self.out.flush()

    # -- driver -----------------------------------------------------------------------------------
    def build(self) -> str:
        """Run the build; returns the image ID. With ``-q`` a failure first writes the progress it
        held back (RUN output included) to stderr, then raises."""
        try:
            return self._build()
        except MinidockerError:
            if self.opts.quiet and self.held:
                import sys

                sys.stderr.write("".join(self.held))
                sys.stderr.flush()
            raise

    def _build(self) -> str:
        try:
            with open(self.dockerfile_path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise InvalidInput(
                f"Cannot locate specified Dockerfile: {os.path.basename(self.dockerfile_path)} ({e.strerror})",
                subject=self.dockerfile_path,
            ) from None
        from minidocker.units import human_size

        size = self.context.upload_size(self.dockerfile_path)
        # the docker CLI's progress line ends its last update with "\r\r\n", tty or not
        self.say(f"Sending build context to Docker daemon  {human_size(size, 4)}\r\r")
        if not text.strip():
            raise BuildError(
                f"the Dockerfile ({os.path.basename(self.dockerfile_path)}) cannot be empty",
                subject=self.dockerfile_path,
            )
        df = dfp.parse(text)
        self.escape = df.escape
        meta: list[dfp.Instruction] = []
        stages: list[list[dfp.Instruction]] = []
        for ins in df.instructions:
            if ins.cmd == "from":
                stages.append([ins])
            elif not stages:
                if ins.cmd != "arg":
                    raise BuildError(
                        f"Dockerfile:{ins.line} : no build stage in current context "
                        f"(file with no instructions or {ins.cmd.upper()} before FROM)"
                    )
                meta.append(ins)
            else:
                stages[-1].append(ins)
        if not stages:
            raise BuildError("Dockerfile: no build stage in current context (file with no FROM)")
        seen: set[str] = set()
        for st in stages:
            stage_name = self._stage_name(st[0])
            if stage_name in seen:
                raise BuildError(f"Dockerfile:{st[0].line} a stage name already used: {stage_name}")
            if stage_name:
                seen.add(stage_name)
        if self.opts.target:
            names = [self._stage_name(s[0]) for s in stages]
            if self.opts.target not in names:
                raise BuildError(f"failed to reach build target {self.opts.target} in Dockerfile")
            stages = stages[: names.index(self.opts.target) + 1]
        # `--label`: dockerd 20.10 appends one LABEL step per label, by key, taken literally
        last_line = stages[-1][-1].line
        for key, value in sorted(self.opts.labels.items()):
            pair = f"{key}={value}"
            stages[-1].append(
                dfp.Instruction(
                    "label", [], f"LABEL {pair}", last_line, rest=pair, literal_pairs=[(key, value)]
                )
            )
        self.total = len(meta) + sum(len(s) for s in stages)
        for ins in meta:
            self._begin(ins)
            for k, v in self._arg_pairs(ins, {}):
                self.meta_args[k] = v
        stage: _Stage | None = None
        for instructions in stages:
            for ins in instructions:
                self._begin(ins)
                try:
                    if ins.cmd == "from":
                        stage = self._from(ins)
                    else:
                        assert stage is not None
                        self._dispatch(stage, ins)
                except BuildError as e:
                    if str(e).startswith("Dockerfile:"):
                        raise
                    # RUN failures, ONBUILD triggers...: the line of the instruction at fault
                    raise BuildError(
                        f"Dockerfile:{ins.line} {e}", exit_code=e.exit_code, subject=e.subject
                    ) from e
                except MinidockerError as e:
                    raise BuildError(
                        f"Dockerfile:{ins.line} {ins.cmd.upper()}: {e}", subject=e.subject
                    ) from e
                assert stage is not None
                if stage.image_id:
                    self.say(f" ---> {stage.image_id[7:19]}")
        assert stage is not None
        if stage.image_id is None:
            raise BuildError("No image was generated. Is your Dockerfile empty?")
        image_id = stage.image_id
        if self.opts.quiet:
            self.out.write(image_id + "\n")
        self.say(f"Successfully built {image_id[7:19]}")
        for t in self.opts.tags:
            ref = reference.parse(t).with_default_tag()
            self.stores.refs.add_tag(ref, image_id, force=True)
            self.stores.images.set_last_updated(image_id)
            self.say(f"Successfully tagged {ref.familiar_string()}")
        return image_id

    def _begin(self, ins: dfp.Instruction) -> None:
        self.step += 1
        self.say(f"Step {self.step}/{self.total} : {ins.original}")

    @staticmethod
    def _stage_name(ins: dfp.Instruction) -> str | None:
        words = ins.args if isinstance(ins.args, list) else []
        if len(words) == 3 and words[1].lower() == "as":
            return words[2].lower()
        return None

    # -- FROM ------------------------------------------------------------------------------------
    def _from(self, ins: dfp.Instruction) -> _Stage:
        words = ins.args if isinstance(ins.args, list) else []
        if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
            raise BuildError(f"Dockerfile:{ins.line} FROM requires either one or three arguments")
        env = {k: v for k, v in {**self.meta_args, **self.opts.build_args}.items() if v is not None}
        env = {k: self.opts.build_args.get(k, v) for k, v in env.items() if k in self.meta_args}
        name = dfp.expand(words[0], env, self.escape)
        if not name:
            raise BuildError(f"Dockerfile:{ins.line} FROM requires the name of an image")
        image_id: str | None = None
        config: dict[str, Any] = {}
        if name.lower() == "scratch":
            pass
        else:
            by_stage = {s.name: s for s in self.stages if s.name}
            if name.lower() in by_stage:
                image_id = by_stage[name.lower()].image_id
            else:
                from minidocker.image import images

                try:
                    image_id = images.resolve(self.stores, name)
                except NotFound:
                    raise BuildError(
                        f"Dockerfile:{ins.line} FROM: pull access denied for {name}, repository does not "
                        "exist (minidocker builds from local images only)",
                        subject=name,
                    ) from None
            if image_id:
                config = dict(self.stores.images.get(image_id).get("config") or {})
        config = imgconfig.container_config(**{k: v for k, v in config.items() if k in _ALL_FIELDS})
        config["OpenStdin"] = False
        config["StdinOnce"] = False
        env_list = list(config.get("Env") or [])
        if not any(e.startswith("PATH=") for e in env_list):
            config["Env"] = [*env_list, DEFAULT_PATH]
        config["Image"] = image_id or ""
        stage = _Stage(self._stage_name(ins), image_id, config)
        self.stages.append(stage)
        triggers = list(config.get("OnBuild") or [])
        if triggers:
            stage.config["OnBuild"] = None
            self.say(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}")
            for t in triggers:
                tins = dfp.parse(t).instructions[0]
                tins.line = ins.line  # a trigger's errors point at the FROM that ran it
                if tins.cmd in ("onbuild", "from", "maintainer"):
                    raise BuildError(f"{tins.cmd.upper()} isn't allowed as an ONBUILD trigger")
                self._dispatch(stage, tins)
        return stage

    # -- dispatch --------------------------------------------------------------------------------
    def _env(self, stage: _Stage) -> dict[str, str]:
        """What ``$VAR`` sees: the declared build args, overridden by ENV."""
        out: dict[str, str] = {}
        for k, v in stage.args.items():
            val = self.opts.build_args.get(k, v)
            if val is not None:
                out[k] = val
        out.update(_env_map(stage.config.get("Env")))
        return out

    def _word(self, stage: _Stage, text: str) -> str:
        return dfp.expand(text, self._env(stage), self.escape)

    def _arg_pairs(self, ins: dfp.Instruction, env: dict[str, str]) -> list[tuple[str, str | None]]:
        words = ins.args if isinstance(ins.args, list) else []
        if not words:
            raise BuildError(f"Dockerfile:{ins.line} ARG requires at least one argument")
        out: list[tuple[str, str | None]] = []
        for w in words:
            if "=" in w:
                k, _, v = w.partition("=")
                out.append((dfp.expand(k, env, self.escape), dfp.expand(v, env, self.escape)))
            else:
                out.append((dfp.expand(w, env, self.escape), None))
        return out

    def _dispatch(self, stage: _Stage, ins: dfp.Instruction) -> None:
        cfg = stage.config
        cmd = ins.cmd
        shell = list(cfg.get("Shell") or DEFAULT_SHELL)
        if cmd in ("run",):
            self._run(stage, ins)
            return
        if cmd in ("copy", "add"):
            self._copy(stage, ins)
            return
        if cmd == "workdir":
            wd = self._word(stage, ins.rest)
            if not wd:
                raise BuildError(f"Dockerfile:{ins.line} WORKDIR requires exactly one argument")
            cfg["WorkingDir"] = posixpath.normpath(posixpath.join(cfg.get("WorkingDir") or "/", wd))
            self._workdir(stage)
            return
        if cmd == "env":
            pairs = dfp.key_values(list(ins.args), self._env(stage), "env", self.escape)
            cfg["Env"] = _replace_in_place(cfg.get("Env") or [], pairs)
            comment = "ENV " + " ".join(f"{k}={v}" for k, v in pairs)
        elif cmd == "label":
            pairs = ins.literal_pairs or dfp.key_values(
                list(ins.args), self._env(stage), "label", self.escape
            )
            labels = dict(cfg.get("Labels") or {})
            labels.update(pairs)
            cfg["Labels"] = labels
            comment = "LABEL " + " ".join(f"{k}={v}" for k, v in pairs)
        elif cmd == "arg":
            arg_pairs = self._arg_pairs(ins, self._env(stage))
            for k, v in arg_pairs:
                if v is None and k in self.meta_args:
                    v = self.meta_args[k]
                stage.args[k] = v
            comment = "ARG " + " ".join(k if v is None else f"{k}={v}" for k, v in arg_pairs)
        elif cmd == "expose":
            ports = [self._word(stage, w) for w in ins.args]
            exposed = dict(cfg.get("ExposedPorts") or {})
            for p in ports:
                exposed[p if "/" in p else f"{p}/tcp"] = {}
            cfg["ExposedPorts"] = exposed
            comment = "EXPOSE " + " ".join(sorted(ports))  # moby sorts them for the history
        elif cmd == "volume":
            vols_list = list(ins.args) if ins.json_form else [self._word(stage, w) for w in ins.args]
            if not vols_list or any(not v.strip() for v in vols_list):
                raise BuildError(f"Dockerfile:{ins.line} VOLUME specified can not be an empty string")
            vols = dict(cfg.get("Volumes") or {})
            for v in vols_list:
                vols[v] = {}
            cfg["Volumes"] = vols
            comment = "VOLUME [" + " ".join(vols_list) + "]"
        elif cmd == "user":
            cfg["User"] = self._word(stage, ins.rest)
            comment = "USER " + cfg["User"]
        elif cmd == "stopsignal":
            sig = self._word(stage, ins.rest)
            from minidocker.container.create import parse_signal

            parse_signal(sig)
            cfg["StopSignal"] = sig
            comment = "STOPSIGNAL " + sig
        elif cmd in ("cmd", "entrypoint"):
            value = list(ins.args) if ins.json_form else [*shell, ins.rest]
            if cmd == "cmd":
                cfg["Cmd"] = value
                stage.cmd_set = True
                comment = "CMD " + go_quote_list(value)
            else:
                cfg["Entrypoint"] = value if (ins.json_form or ins.rest) else None
                if not stage.cmd_set:
                    cfg["Cmd"] = None
                comment = "ENTRYPOINT " + go_quote_list(value)
            cfg["ArgsEscaped"] = False
        elif cmd == "shell":
            if not ins.json_form:
                raise BuildError(f"Dockerfile:{ins.line} SHELL requires the arguments to be in JSON form")
            cfg["Shell"] = list(ins.args)
            comment = "SHELL [" + " ".join(ins.args) + "]"
        elif cmd == "onbuild":
            trigger = ins.rest.strip()
            first = trigger.split(None, 1)[0].upper() if trigger else ""
            if first in ("ONBUILD", "FROM", "MAINTAINER"):
                raise BuildError(f"Dockerfile:{ins.line} {first} isn't allowed as an ONBUILD trigger")
            cfg["OnBuild"] = [*(cfg.get("OnBuild") or []), trigger]
            comment = "ONBUILD " + trigger
        elif cmd == "maintainer":
            stage.maintainer = ins.rest.strip()
            comment = "MAINTAINER " + stage.maintainer
        elif cmd == "healthcheck":
            comment = self._healthcheck(stage, ins, shell)
        else:  # pragma: no cover - the parser only lets known instructions through
            raise BuildError(f"Dockerfile:{ins.line} unknown instruction: {cmd.upper()}")
        probe = copy.deepcopy(cfg)
        # the shell in effect *after* the step (SHELL's own history line uses the new one)
        probe["Cmd"] = [*(cfg.get("Shell") or DEFAULT_SHELL), "#(nop) ", comment]
        self._commit_nop(stage, probe)

    def _healthcheck(self, stage: _Stage, ins: dfp.Instruction, shell: list[str]) -> str:
        rest = ins.rest.strip()
        kind, _, body = rest.partition(" ")
        hc: dict[str, Any]
        if kind.upper() == "NONE":
            hc = {"Test": ["NONE"]}
        elif kind.upper() == "CMD":
            body = body.strip()
            test: list[str] | None = None
            if body.startswith("["):
                with contextlib.suppress(ValueError):
                    v = json.loads(body)
                    if isinstance(v, list):
                        test = ["CMD", *v]
            if test is None:
                test = ["CMD-SHELL", body]
            hc = {"Test": test}
            for flag, key in (
                ("interval", "Interval"),
                ("timeout", "Timeout"),
                ("start-period", "StartPeriod"),
            ):
                if flag in ins.flags:
                    hc[key] = parse_duration(ins.flags[flag])
            if "retries" in ins.flags:
                hc["Retries"] = int(ins.flags["retries"])
        else:
            raise BuildError(f'Dockerfile:{ins.line} Unknown type "{kind}" in HEALTHCHECK (try CMD)')
        stage.config["Healthcheck"] = hc
        test_q = go_quote_list(hc["Test"])
        durs = " ".join(json.dumps(go_duration(hc.get(k, 0)), ensure_ascii=False)
                        for k in ("Interval", "Timeout", "StartPeriod"))  # fmt: skip
        return f"HEALTHCHECK &{{{test_q} {durs} {_go_char(hc.get('Retries', 0))}}}"

    # -- commits ---------------------------------------------------------------------------------
    def _cached(self, stage: _Stage, probe: dict[str, Any]) -> str | None:
        if self.opts.no_cache:
            return None
        want = {k: probe.get(k) or None for k in _COMPARED}
        for cand in sorted(self._children().get(stage.image_id, [])):
            try:
                cc = self.stores.images.get(cand).get("container_config") or {}
            except (NotFound, ValueError):
                continue
            if {k: cc.get(k) or None for k in _COMPARED} == want:
                return cand
        return None

    def _children(self) -> dict[str | None, list[str]]:
        """parent image ID (None: no parent) -> children, read once per build: one ``parent`` file
        per image instead of one per image per step (``_use`` adds what this build makes)."""
        if self._child_map is None:
            self._child_map = {}
            for image_id in self.stores.images.ids():
                parent = self.stores.images.get_parent(image_id)
                self._child_map.setdefault(parent, []).append(image_id)
        return self._child_map

    def _use(self, stage: _Stage, image_id: str) -> None:
        if self._child_map is not None:
            siblings = self._child_map.setdefault(stage.image_id, [])
            if image_id not in siblings and image_id != stage.image_id:
                siblings.append(image_id)
        stage.image_id = image_id
        stage.config["Image"] = image_id  # updateRunConfig: the next step's parent

    def _commit_nop(self, stage: _Stage, probe: dict[str, Any]) -> None:
        probe["Image"] = stage.image_id or ""
        hit = self._cached(stage, probe)
        if hit:
            self.say(" ---> Using cache")
            self._use(stage, hit)
            return
        cid = self._nop_container()
        image_id = child_image(
            self.stores, stage.image_id, config=copy.deepcopy(stage.config), container_cfg=probe,
            layer=None, author=stage.maintainer, container_id=cid,
        )  # fmt: skip
        self.say(f"Removing intermediate container {cid[:12]}")
        self._use(stage, image_id)

    def _nop_container(self) -> str:
        """The classic builder creates (never starts) a container for each step it commits, also
        metadata-only ones, and prints its ID; nothing of a container is needed to change a config,
        so we only name one: the ID goes into the progress lines and the image's ``container``."""
        cid = fsutil.random_id()
        self.say(f" ---> Running in {cid[:12]}")
        return cid

    @contextlib.contextmanager
    def _rw_layer(self, stage: _Stage) -> Any:
        """A scratch read-write layer on the stage's image, mounted: yields (mount, root path)."""
        cid = fsutil.random_id()
        top = self.stores.top_layer(stage.image_id) if stage.image_id else None
        mount = self.stores.layers.create_rw_layer(cid, top)
        try:
            root = self.stores.driver.get(mount.mount_id)
            try:
                yield mount, root
            finally:
                self.stores.driver.put(mount.mount_id)
        finally:
            self.stores.layers.remove_rw_layer(cid)

    def _commit_layer(
        self, stage: _Stage, probe: dict[str, Any], write: Any, *, container: bool = False
    ) -> None:
        """A step that writes files without running anything (COPY, ADD, WORKDIR). ``container``:
        the classic builder shows it as a container (WORKDIR does; COPY/ADD write into a bare
        read-write layer and print nothing)."""
        probe["Image"] = stage.image_id or ""
        hit = self._cached(stage, probe)
        if hit:
            self.say(" ---> Using cache")
            self._use(stage, hit)
            return
        cid = self._nop_container() if container else ""
        with self._rw_layer(stage) as (mount, root):
            write(root)
            self.stores.driver.put(mount.mount_id)
            layer = register_upper(self.stores, self.stores.driver.diff_path(mount.mount_id), mount.parent)
            image_id = child_image(
                self.stores, stage.image_id, config=copy.deepcopy(stage.config), container_cfg=probe,
                layer=layer, author=stage.maintainer, container_id=cid,
            )  # fmt: skip
        if container:
            self.say(f"Removing intermediate container {cid[:12]}")
        self._use(stage, image_id)

    # -- WORKDIR ---------------------------------------------------------------------------------
    def _workdir(self, stage: _Stage) -> None:
        wd = stage.config["WorkingDir"]
        shell = list(stage.config.get("Shell") or DEFAULT_SHELL)
        probe = copy.deepcopy(stage.config)
        probe["Cmd"] = [*shell, f"#(nop) WORKDIR {wd}"]

        def write(root: str) -> None:
            _write_entries(root, [(d, None) for d in _missing_dirs(root, wd)], 0, 0)

        self._commit_layer(stage, probe, write, container=True)

    # -- RUN -------------------------------------------------------------------------------------
    def _run(self, stage: _Stage, ins: dfp.Instruction) -> None:
        from minidocker.container.create import RunOptions

        if stage.image_id is None:
            raise BuildError(f"Dockerfile:{ins.line} RUN: no image to run in (FROM scratch has no shell)")
        cfg = stage.config
        shell = list(cfg.get("Shell") or DEFAULT_SHELL)
        cmd = list(ins.args) if ins.json_form else [*shell, _heredoc_script(ins)]
        env_keys = set(_env_map(cfg.get("Env")))
        arg_env = []
        for k, v in stage.args.items():
            val = self.opts.build_args.get(k, v)
            if val is not None and k not in env_keys:
                arg_env.append(f"{k}={val}")
        arg_env.sort()
        save_cmd = [f"|{len(arg_env)}", *arg_env, *cmd] if arg_env else cmd
        probe = copy.deepcopy(cfg)
        probe["Cmd"] = save_cmd
        probe["Entrypoint"] = None
        probe["Image"] = stage.image_id
        hit = self._cached(stage, probe)
        if hit:
            self.say(" ---> Using cache")
            self._use(stage, hit)
            return
        opts = RunOptions(
            image=stage.image_id, cmd=cmd, entrypoint=[""], env=arg_env, network=self.opts.network,
            user=cfg.get("User") or "", workdir=cfg.get("WorkingDir") or "",
        )  # fmt: skip
        c, _ = self.rt.create(opts)
        self.say(f" ---> Running in {c.id[:12]}")
        try:
            code = self._start_and_wait(c)
            if code != 0:
                raise BuildError(
                    f"The command '{' '.join(cmd)}' returned a non-zero code: {code}", exit_code=code
                )
            mount = self.stores.layers.get_mount(c.id)
            self.stores.driver.put(mount.mount_id)
            layer = register_upper(self.stores, self.stores.driver.diff_path(mount.mount_id), mount.parent)
            image_id = child_image(
                self.stores, stage.image_id, config=copy.deepcopy(cfg), container_cfg=probe, layer=layer,
                author=stage.maintainer, container_id=c.id,
            )  # fmt: skip
        finally:
            self.say(f"Removing intermediate container {c.id[:12]}")
            with contextlib.suppress(NotFound):
                self.rt.remove(c.id, force=True, volumes=True)
        self._use(stage, image_id)

    def _start_and_wait(self, c: Any) -> int:
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        if not self.opts.quiet:
            return int(self.rt.start(c, foreground=True).wait())
        # -q: the container writes to our fds 1 and 2 directly: into a file instead, kept with
        # the held-back progress
        saved = (os.dup(1), os.dup(2))
        with tempfile.TemporaryFile(dir=self.stores.tmp) as capture:
            os.dup2(capture.fileno(), 1)
            os.dup2(capture.fileno(), 2)
            try:
                return int(self.rt.start(c, foreground=True).wait())
            finally:
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.close(saved[0])
                os.close(saved[1])
                capture.seek(0)
                self.held.append(capture.read(1 << 20).decode("utf-8", "replace"))

    # -- COPY / ADD ------------------------------------------------------------------------------
    def _copy(self, stage: _Stage, ins: dfp.Instruction) -> None:
        cfg = stage.config
        name = ins.cmd.upper()
        words = list(ins.args) if ins.json_form else list(ins.args)
        env = self._env(stage)
        words = words if ins.json_form else [dfp.expand(w, env, self.escape) for w in words]
        if len(words) < 2:
            raise BuildError(f"Dockerfile:{ins.line} {name} requires at least two arguments")
        srcs, dest = words[:-1], words[-1]
        # `COPY <<EOF /dest`: heredoc sources become files of that name (BuildKit's syntax)
        marker_at = [i for i, w in enumerate(ins.args[:-1]) if not ins.json_form and _is_marker(w)]
        if len(marker_at) != len(ins.heredocs):
            raise BuildError(f"Dockerfile:{ins.line} {name}: heredoc markers and bodies do not match")
        docs = dict(zip(marker_at, ins.heredocs, strict=True))
        for s in (w for i, w in enumerate(srcs) if i not in docs):
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", s):
                if name == "COPY":
                    raise BuildError(f"Dockerfile:{ins.line} COPY: source can't be a URL: {s}")
                raise BuildError(
                    f"Dockerfile:{ins.line} ADD {s}: remote URLs need network access, which minidocker "
                    "builds do not have",
                    subject=s,
                )
        for flag in ins.flags:
            if flag not in ("chown", "from", "chmod"):
                raise BuildError(f"Dockerfile:{ins.line} Unknown flag: {flag}")
        from_ = ins.flags.get("from")
        if from_ and name == "ADD":
            raise BuildError(f"Dockerfile:{ins.line} ADD does not support --from")
        with contextlib.ExitStack() as es:
            ctx = self.context
            if from_:
                ctx = es.enter_context(self._source_image(from_))
            sources: list[Source] = []
            heredoc_dir = es.enter_context(tempfile.TemporaryDirectory(dir=self.stores.tmp)) if docs else ""
            try:
                for i, word in enumerate(srcs):
                    doc = docs.get(i)
                    if doc is None:
                        sources += ctx.sources([word])
                        continue
                    content = dfp.expand_heredoc(doc.content, env, self.escape) if doc.expand else doc.content
                    path = os.path.join(heredoc_dir, doc.name)
                    with open(path, "w", encoding="utf-8") as f:
                        f.write(content)
                    os.chmod(path, 0o644)
                    sources.append(Source(doc.name, path, False))
            except InvalidInput as e:
                raise BuildError(
                    f"Dockerfile:{ins.line} {name} failed: {e}".replace("COPY failed: ", "")
                ) from None
            multi = len(sources) > 1
            if multi and not dest.endswith("/"):
                raise BuildError(
                    f"Dockerfile:{ins.line} When using {name} with more than one source file, "
                    "the destination must be a directory and end with a /"
                )
            raw_dest = dest
            if not dest.startswith("/"):
                dest = posixpath.join(cfg.get("WorkingDir") or "/", dest) + (
                    "/" if dest.endswith("/") else ""
                )
            h = ctx.content_hash(sources, owners=bool(from_))
            chown = ins.flags.get("chown")
            chmod = ins.flags.get("chmod")
            # moby performCopy's comment, flags glued to the hash as dockerd 20.10 writes them;
            # --chmod (BuildKit-only in Docker) goes in the same way so it is part of the key too
            flags = (f"--chown={chown}" if chown else "") + (f"--chmod={chmod}" if chmod else "")
            shell = list(cfg.get("Shell") or DEFAULT_SHELL)
            probe = copy.deepcopy(cfg)
            probe["Cmd"] = [*shell, f"#(nop) {name} {flags}{h} in {raw_dest} "]

            def write(root: str) -> None:
                # without --chown: the context arrives root-owned (the docker CLI's tar), while files
                # from an image (--from) keep their owners, as in dockerd
                uid, gid = (
                    _resolve_chown(root, chown) if chown else ((KEEP_OWNER, KEEP_OWNER) if from_ else (0, 0))
                )
                mode = int(chmod, 8) if chmod else None
                _copy_into(root, ctx, sources, dest, uid, gid, mode, extract=name == "ADD" and not from_)

            self._commit_layer(stage, probe, write)

    @contextlib.contextmanager
    def _source_image(self, ref: str) -> Any:
        """``COPY --from``: a stage (by name or index) or an image, mounted read-only-ish."""
        by_name = {s.name: s for s in self.stages if s.name}
        image_id: str | None
        if ref.lower() in by_name:
            image_id = by_name[ref.lower()].image_id
        elif ref.isdigit() and int(ref) < len(self.stages) - 1:
            image_id = self.stages[int(ref)].image_id
        else:
            from minidocker.image import images

            image_id = images.resolve(self.stores, ref)
        tmp = _Stage(None, image_id, {})
        with self._rw_layer(tmp) as (_, root):
            yield BuildContext(root)


def _is_marker(word: str) -> bool:
    return bool(dfp.heredoc_markers("RUN " + word))


def _heredoc_script(ins: dfp.Instruction) -> str:
    """The shell-form RUN text, heredocs included (BuildKit's syntax):

    * ``RUN <<EOF`` alone: the body is the script (``/bin/sh -c <body>``);
    * ``RUN cmd <<EOF ...``: the command line and its bodies go to the shell, which reads the
      heredocs itself (``/bin/sh -c 'cmd <<EOF\\n...\\nEOF'``).
    """
    if not ins.heredocs:
        return ins.rest
    words = dfp.split_words(ins.rest)
    if all(_is_marker(w) for w in words):
        if len(ins.heredocs) != 1:
            raise BuildError(f"Dockerfile:{ins.line} RUN: a script from more than one heredoc is ambiguous")
        body = ins.heredocs[0].content
        if body.startswith("#!"):
            raise BuildError(
                f"Dockerfile:{ins.line} RUN: heredoc scripts with a #! interpreter line are not supported; "
                "use RUN <interpreter> <<EOF"
            )
        return body
    text = ins.rest
    for doc in ins.heredocs:
        text += "\n" + doc.content + doc.name
    return text


_ALL_FIELDS = {
    "Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "ExposedPorts", "Tty",
    "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck", "ArgsEscaped", "Image", "Volumes", "WorkingDir",
    "Entrypoint", "NetworkDisabled", "MacAddress", "OnBuild", "Labels", "StopSignal", "StopTimeout", "Shell",
}  # fmt: skip


def _replace_in_place(env: list[str], pairs: list[tuple[str, str]]) -> list[str]:
    out = list(env)
    for k, v in pairs:
        for i, e in enumerate(out):
            if e.partition("=")[0] == k:
                out[i] = f"{k}={v}"
                break
        else:
            out.append(f"{k}={v}")
    return out


# -- writing into a layer ----------------------------------------------------------------------------
def _exists_in(root: str, rel: str) -> tuple[bool, bool]:
    """(exists, is_dir) for ``rel`` resolved inside ``root`` (symlinks stay inside)."""
    from minidocker.kernel import fs

    rfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = fs.openat2(rfd, rel or ".", os.O_PATH | os.O_CLOEXEC, fs.RESOLVE_IN_ROOT)
    except (FileNotFoundError, NotADirectoryError):
        return False, False
    finally:
        os.close(rfd)
    try:
        import stat as st

        return True, st.S_ISDIR(os.fstat(fd).st_mode)
    finally:
        os.close(fd)


def _missing_dirs(root: str, path: str) -> list[str]:
    """The components of absolute ``path`` that do not exist in ``root``, outermost first."""
    parts = [p for p in path.split("/") if p]
    missing = []
    for i in range(1, len(parts) + 1):
        rel = "/".join(parts[:i])
        if not _exists_in(root, rel)[0]:
            missing.append(rel)
    return missing


def _dir_header(name: str, uid: int, gid: int) -> Any:
    import time

    from minidocker.archive.tarstream import TarHeader

    h = TarHeader(name=name.rstrip("/") + "/", typeflag=b"5", mode=0o40755, uid=uid, gid=gid,
                  mtime_ns=int(time.time()) * 1_000_000_000)  # fmt: skip
    h.raw_name = h.name.encode("utf-8", "surrogateescape")
    return h


KEEP_OWNER = -1  # _write_entries: leave each entry's uid/gid as the source has them


def _write_entries(root: str, entries: list[tuple[str, str | None]], uid: int, gid: int,
                   mode: int | None = None) -> None:  # fmt: skip
    """Write (name inside root, host source path or None for a new dir) through the safe extractor."""
    from minidocker.archive.extract import untar
    from minidocker.archive.tarstream import TarReader, TarWriter, header_from_stat

    if not entries:
        return
    with tempfile.TemporaryFile() as f:
        w: TarWriter = TarWriter(f)
        for name, src in entries:
            if src is None:
                w.add(_dir_header(name, max(uid, 0), max(gid, 0)))
                continue
            h = header_from_stat(src, name)
            if uid != KEEP_OWNER:
                h.uid, h.gid = uid, gid
            h.uname, h.gname = "", ""
            if mode is not None and h.typeflag in (b"0", b"5"):
                h.mode = (h.mode & ~0o7777) | mode
            if h.typeflag == b"0":
                with open(src, "rb") as content:
                    w.add(h, content)
            else:
                w.add(h)
        w.close()
        f.seek(0)
        untar(TarReader(f), root, symlinks="chroot")
    trace.emit(lambda: f"copied {len(entries)} entries into {root}")


def _is_archive(path: str) -> bool:
    from minidocker.archive.compress import decompress

    try:
        with open(path, "rb") as raw:
            stream, _ = decompress(raw)
            block = stream.read(512)
    except (OSError, MinidockerError, EOFError, ValueError):
        return False
    return len(block) == 512 and block[257:262] == b"ustar"


def _copy_into(root: str, ctx: BuildContext, sources: list[Source], dest: str, uid: int, gid: int,
               mode: int | None, *, extract: bool) -> None:  # fmt: skip
    dest_is_dir = dest.endswith("/") or len(sources) > 1
    clean = posixpath.normpath(dest).lstrip("/")
    exists, is_dir = _exists_in(root, clean) if clean else (True, True)
    if is_dir:
        dest_is_dir = True
    entries: list[tuple[str, str | None]] = []
    for src in sources:
        if src.is_dir:
            target = clean
            if target and not exists:
                entries += [(d, None) for d in _missing_dirs(root, "/" + target)]
                exists = True
            entries += [(f"{target}/{n}" if target else n, p) for n, p in ctx.walk(src)]
        elif extract and _is_archive(src.path):
            target = clean
            _write_entries(root, entries, uid, gid, mode)
            entries = []
            if target and not exists:
                _write_entries(root, [(d, None) for d in _missing_dirs(root, "/" + target)], 0, 0)
                exists = True
            _extract_archive(root, src.path, target)
        else:
            if dest_is_dir:
                if clean and not exists:
                    entries += [(d, None) for d in _missing_dirs(root, "/" + clean)]
                    exists = True
                name = f"{clean}/{src.base}" if clean else src.base
            else:
                name = clean
            entries.append((name, src.path))
    _write_entries(root, entries, uid, gid, mode)


def _extract_archive(root: str, archive: str, target: str) -> None:
    """ADD of a local tar: unpacked (owners kept) through the safe extractor, rooted at ``target``."""
    from minidocker.archive.compress import decompress
    from minidocker.archive.extract import untar
    from minidocker.archive.tarstream import TarReader
    from minidocker.kernel import fs

    rfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        dfd = fs.openat2(rfd, target or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, fs.RESOLVE_IN_ROOT)
    finally:
        os.close(rfd)
    try:
        with open(archive, "rb") as raw:
            stream, _ = decompress(raw)
            untar(TarReader(stream), f"/proc/self/fd/{dfd}/.", symlinks="chroot")
    finally:
        os.close(dfd)


def _resolve_chown(root: str, spec: str) -> tuple[int, int]:
    """``--chown=user:group`` with names looked up in the image's /etc/passwd and /etc/group."""
    from minidocker.namespaces import users

    def read(rel: str) -> bytes | None:
        from minidocker.kernel import fs

        rfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fd = fs.openat2(rfd, rel, os.O_RDONLY | os.O_CLOEXEC, fs.RESOLVE_IN_ROOT)
        except OSError:
            return None
        finally:
            os.close(rfd)
        with os.fdopen(fd, "rb") as f:
            return f.read(1 << 20)

    user, _, group = spec.partition(":")
    # moby parseChownFlag: a missing group means "the same name or number as the user"
    u = users.resolve(f"{user}:{group or user}", read("etc/passwd"), read("etc/group"))
    return u.uid, u.gid
