"""``cp`` and ``export``."""

from __future__ import annotations

import sys

import click

from minidocker.cli.context import Context

pass_ctx = click.make_pass_decorator(Context)


@click.command("cp", context_settings={"ignore_unknown_options": False})
@click.argument("src")
@click.argument("dest")
@click.option("-a", "--archive", "archive", is_flag=True, help="Archive mode (copy all uid/gid information)")
@click.option(
    "-L", "--follow-link", "follow_link", is_flag=True, help="Always follow symbol link in SRC_PATH"
)
@pass_ctx
def cp(ctx: Context, src: str, dest: str, archive: bool, follow_link: bool) -> None:
    """Copy files/folders between a container and the local filesystem.

    \b
    minidocker cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-
    minidocker cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH
    """
    from minidocker.container import cp as svc
    from minidocker.container.fs import mounted_rootfs
    from minidocker.container.volumes import VolumeStore
    from minidocker.errors import NotFound

    src_ref, src_path, dst_ref, dst_path = svc.parse_cp_args(src, dest)
    ref = src_ref if src_ref is not None else dst_ref
    assert ref is not None
    path = src_path if src_ref is not None else dst_path
    try:
        c = ctx.runtime.get(ref)
    except NotFound:
        raise svc.NoSuchPath(f"No such container:path: {ref}:{path}", subject=ref) from None
    vols = VolumeStore(ctx.stores.root, ctx.stores.lock)
    with mounted_rootfs(ctx.stores, c) as rootfs, svc.ContainerFS.for_container(c, rootfs, vols) as cfs:
        if src_ref is not None:
            if dst_path == "-" and sys.stdout.isatty():
                raise svc.CopyError("cannot copy to a terminal, use '-' only with a pipe or a file")
            svc.copy_from_container(
                cfs, ref, src_path, dst_path, follow_link=follow_link, stdout=sys.stdout.buffer
            )
            if dst_path == "-":
                sys.stdout.buffer.flush()
        else:
            svc.copy_to_container(
                cfs, c, ref, src_path, dst_path, follow_link=follow_link, copy_uid_gid=archive,
                stdin=sys.stdin.buffer,
            )  # fmt: skip


@click.command("export")
@click.argument("container")
@click.option("-o", "--output", "output", help="Write to a file, instead of STDOUT")
@pass_ctx
def export(ctx: Context, container: str, output: str | None) -> None:
    """Export a container's filesystem as a tar archive."""
    import os

    from minidocker.container import cp as svc
    from minidocker.container.fs import mounted_rootfs
    from minidocker.errors import InvalidInput

    c = ctx.runtime.get(container)
    if output is None:
        if sys.stdout.isatty():
            raise InvalidInput("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        with mounted_rootfs(ctx.stores, c) as rootfs:
            svc.export(rootfs, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    tmp = f"{output}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f, mounted_rootfs(ctx.stores, c) as rootfs:
            svc.export(rootfs, f)
        os.replace(tmp, output)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
